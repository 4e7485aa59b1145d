"""Prometheus metrics and the /metrics endpoint.

The metric names are a contract with the alert rules and dashboards.
"""

import os
import time

from flask import Blueprint, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

bp = Blueprint("metrics", __name__)

# Route label for requests that matched no rule: the raw path would let any
# scanner create unbounded label values.
UNMATCHED = "unmatched"

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


def route_of_request() -> str:
    """Return the matched URL rule's template, or 'unmatched'."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response):
    started = g.pop("metrics_started", None)
    route = route_of_request()
    HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    if started is not None:
        HTTP_REQUEST_DURATION.labels(request.method, route).observe(time.perf_counter() - started)
    return response


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
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def init_app(app) -> None:
    """Count and time every request, /metrics scrapes included."""
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.register_blueprint(bp)
