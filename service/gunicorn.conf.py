"""Gunicorn settings for the shortener; entry point: shortener:create_app()."""

import math
import os

from prometheus_client import multiprocess

wsgi_app = "shortener:create_app()"

# Host networking: every service listens on loopback only.
bind = f"127.0.0.1:{os.environ.get('PORT', '5000')}"
# Two sync workers per core, by measurement (`make bench`, benchmarks/results/summary.md): a
# worker waits on Redis or Postgres for part of each request, and a second one per core fills
# that time; gthread workers did worse than either.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))
# Gunicorn's worker, counting the 500s Gunicorn answers itself (a header it cannot send).
worker_class = "shortener.workers.CountingSyncWorker"
# Under Docker's default stop timeout (10 s): in-flight requests finish and clicks are
# flushed before the container is killed.
graceful_timeout = 8
# Recycle workers now and then (a slow leak cannot grow without bound), not all at once.
max_requests = 20000
max_requests_jitter = 2000
keepalive = 5
# No control socket: it would let any local process resize or reload Gunicorn, and the image's
# user has no home to put it in (Gunicorn logged "Control server error" at every start).
control_socket_disable = True

# The app writes its own JSON access line; Gunicorn's would duplicate it.
accesslog = None
errorlog = "-"
loglevel = "info"


def _metrics_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


# The app's package (the worker class, its settings below) writes its metrics to this directory at once.
if _metrics_dir():
    os.makedirs(_metrics_dir(), exist_ok=True)

# Not "config": Gunicorn would read that name as its own setting.
from shortener import config as shortener_config  # noqa: E402  (after the metrics directory exists)

# Requests are bounded by the app's own timeouts: the worker timeout is above the slowest
# request's timeouts added up (from the same settings the app reads), so it only ever catches
# a truly stuck worker, never a request that is still waiting its turn.
WORKER_TIMEOUT_MARGIN = 5
timeout = math.ceil(shortener_config.worst_request_seconds(shortener_config.load(required=()))) + WORKER_TIMEOUT_MARGIN


def on_starting(server):
    """Empty the multiprocess metrics directory: old workers' files would be summed in."""
    path = _metrics_dir()
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        entry = os.path.join(path, name)
        if os.path.isfile(entry) or os.path.islink(entry):
            os.unlink(entry)


def worker_abort(worker):
    """A worker killed for its timeout: count the requests its threads held (their clients get no answer)."""
    from shortener import delivery

    delivery.abandon_in_flight(504, "worker_timeout")


def child_exit(server, worker):
    """Drop a dead worker's live-gauge files so they stop being reported."""
    if _metrics_dir():
        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """Write the clicks still in Redis and close the pools: a stopped worker leaves nothing behind."""
    from shortener import shutdown

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        shutdown(app)
