"""Prometheus metrics and the /metrics endpoint.

The metric names are a contract with the alert rules and dashboards.
"""

import os
import resource
import time

from flask import Blueprint, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

bp = Blueprint("metrics", __name__)

# Route label for requests that matched no rule: the raw path would let any
# scanner create unbounded label values.
UNMATCHED = "unmatched"
# The method label takes these as they are; any other method a client sends is "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"})
OTHER_METHOD = "other"
_children: dict[tuple[str, str, int], tuple] = {}

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to handle an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LINKS_CREATED = Counter("shortener_links_created_total", "Short links created.")
REDIRECTS = Counter("shortener_redirects_total", "Redirects served.")
CACHE_REQUESTS = Counter(
    "shortener_cache_requests_total",
    "Redis cache lookups on redirect, by result (hit or miss).",
    ["result"],
)
# Each redirect counts one of these: a label lookup costs a lock and a dict walk.
CACHE_HITS = CACHE_REQUESTS.labels(result="hit")
CACHE_MISSES = CACHE_REQUESTS.labels(result="miss")
# Whatever a worker saw last; across workers the most recent observation wins.
DEPENDENCY_UP = Gauge(
    "shortener_dependency_up",
    "Whether the last call to a dependency (postgres, redis) succeeded: 1 up, 0 down.",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)
# Postgres's own refusals of a call it answered (its SQLSTATE's condition, in psycopg's class
# name): not an outage of Postgres, and no breaker opens on them. Each known one is there at 0
# from the start, so that its first refusal is an increase.
DATABASE_REFUSALS = Counter(
    "shortener_database_refusals_total",
    "Calls Postgres answered with an error of its own, by error (DiskFull: it cannot write for want of disk).",
    ["error"],
)
DISK_FULL = DATABASE_REFUSALS.labels(error="DiskFull")
# The default process collector reports only the scraping worker under
# multiprocess mode; these two are summed over all workers instead.
PROCESS_MEMORY = Gauge(
    "shortener_process_resident_memory_bytes",
    "Resident memory of the service's processes, summed over live workers.",
    multiprocess_mode="livesum",
)
PROCESS_CPU = Counter(
    "shortener_process_cpu_seconds",
    "User and system CPU time used by the service's worker processes.",
)

# Process usage is sampled at most this often per worker, at the end of a request.
PROCESS_SAMPLE_INTERVAL = 1.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_process_sample = {"at": float("-inf"), "cpu": None, "pid": None}


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        # Not Linux: ru_maxrss is the peak, in KiB; better than nothing.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sample_process(force: bool = False) -> None:
    """Update this worker's memory gauge and CPU counter, at most once a second."""
    now = time.monotonic()
    pid = os.getpid()
    if pid != _process_sample["pid"]:
        # A forked worker starts its own count: the parent's CPU is not ours.
        _process_sample.update(at=float("-inf"), cpu=None, pid=pid)
    if not force and now - _process_sample["at"] < PROCESS_SAMPLE_INTERVAL:
        return
    _process_sample["at"] = now
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    previous = _process_sample["cpu"]
    PROCESS_CPU.inc(cpu if previous is None else max(cpu - previous, 0.0))
    _process_sample["cpu"] = cpu
    PROCESS_MEMORY.set(_resident_bytes())


def route_of_request() -> str:
    """Return the matched URL rule's template, or 'unmatched'."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED


def method_label(method: str) -> str:
    """Return the method as a label value: the known ones as they are, anything else as 'other'."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def observe_request(method: str, route: str, status: int, seconds: float | None) -> None:
    """Count one answered request (labels already bounded) and time it when the time is known."""
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        # Label lookups cost a lock and a dict walk each: keep the pair per label set.
        children = _children[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_REQUEST_DURATION.labels(method, route),
        )
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)
    sample_process()


def _remember_route() -> None:
    # The delivery layer counts after Flask's context is gone: leave it the route.
    request.environ["shortener.route"] = route_of_request()


def _registry():
    # Under Gunicorn each worker writes its samples to files in this directory;
    # a scrape must sum them all, whichever worker answers it.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@bp.get("/metrics")
def exposition():
    """Expose the metrics in the Prometheus text format."""
    sample_process(force=True)
    # The app's dependency probe, so the up gauges describe now, not the last request.
    probe = current_app.extensions.get("shortener.probe")
    if probe is not None:
        probe.states()
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def init_app(app, per_request: bool = True) -> None:
    """Serve /metrics and, if per_request, name each request's route for the delivery layer that counts it."""
    if per_request:
        app.before_request(_remember_route)
    app.register_blueprint(bp)
