"""Gunicorn settings for the shortener; entry point: shortener:create_app()."""

import os

from prometheus_client import multiprocess

wsgi_app = "shortener:create_app()"

# Host networking: every service listens on loopback only.
bind = f"127.0.0.1:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Requests are bounded by the app's own timeouts (3 s connect, 5 s statement);
# the worker timeout only catches a truly stuck worker.
timeout = 30
graceful_timeout = 20
keepalive = 5

# The app writes its own JSON access line; Gunicorn's would duplicate it.
accesslog = None
errorlog = "-"
loglevel = "info"


def _metrics_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


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


def child_exit(server, worker):
    """Drop a dead worker's live-gauge files so they stop being reported."""
    if _metrics_dir():
        multiprocess.mark_process_dead(worker.pid)
