"""JSON logs on stdout: one access line per request, with a request id."""

import logging
import sys
import time
import uuid

from flask import g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from .metrics import route_of_request
from .tracing import current_trace_ids

REQUEST_ID_HEADER = "X-Request-ID"

# Loggers whose records we want as JSON on stdout: ours and the pool's.
LOGGER_NAMES = ("shortener", "psycopg.pool")

access_log = logging.getLogger("shortener.access")


class StdoutHandler(logging.StreamHandler):
    """A stream handler that writes to whatever sys.stdout is at emit time."""

    # Resolved on each write so a replaced sys.stdout (pytest's capture) is honoured.
    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


class RequestIdFilter(logging.Filter):
    """Stamp every record logged during a request with its request id and trace id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = g.get("request_id")
        if not hasattr(record, "trace_id"):
            ids = current_trace_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


def _formatter() -> JsonFormatter:
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


_handler = StdoutHandler()
_handler.setFormatter(_formatter())
_handler.addFilter(RequestIdFilter())


def configure() -> None:
    """Attach the JSON handler once, however many apps are created."""
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _handler not in logger.handlers:
            logger.addHandler(_handler)
        logger.setLevel(logging.INFO if name == "shortener" else logging.WARNING)
        # Gunicorn or pytest may configure the root logger; don't log twice.
        logger.propagate = False


def _valid_request_id(value: str | None) -> bool:
    return bool(value) and len(value) <= 128 and value.isprintable() and " " not in value


def _begin() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER)
    g.request_id = incoming if _valid_request_id(incoming) else uuid.uuid4().hex
    g.log_started = time.perf_counter()


def _finish(response):
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    started = g.pop("log_started", None)
    duration_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
    access_log.info(
        "request",
        extra={
            "method": request.method,
            "route": route_of_request(),
            "path": request.path,
            "status": response.status_code,
            "duration_ms": duration_ms,
        },
    )
    return response


def init_app(app, access_log: bool = True) -> None:
    """Configure logging and, if access_log, log each request once it has a response."""
    configure()
    if access_log:
        app.before_request(_begin)
        app.after_request(_finish)
