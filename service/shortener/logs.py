"""JSON logs on stdout: one access line per request, with a request id."""

import logging
import sys

from flask import g, has_request_context, request
from pythonjsonlogger.orjson import OrjsonFormatter

from .tracing import current_trace_ids

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


def _formatter() -> OrjsonFormatter:
    # orjson: the access line is written once per request, and the stdlib encoder costs more.
    return OrjsonFormatter(
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


def _begin() -> None:
    # The delivery layer chose the id (the client's, when usable) before Flask ran.
    g.request_id = request.environ.get("shortener.request_id")
    # The access line is written after the request's span ended: it keeps the ids from here.
    ids = current_trace_ids()
    if ids is not None:
        request.environ["shortener.trace_ids"] = ids


def init_app(app, access_log: bool = True) -> None:
    """Configure logging and, if access_log, stamp the request id on every line of a request."""
    configure()
    if access_log:
        app.before_request(_begin)
