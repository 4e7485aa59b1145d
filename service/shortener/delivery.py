"""The WSGI layer around Flask: the status that leaves the server is the one counted and logged.

Flask's after_request hooks see the response the view built, not the one the client gets:
a header Gunicorn refuses to write, or an exception outside Flask's handlers, turns a 302
into Gunicorn's own 500 after they ran. This layer sits outside Flask, checks headers the
way Gunicorn does before anything is sent, and counts each exchange once, when it ends.
"""

import itertools
import logging
import re
import sys
import threading
import time
import uuid

import orjson

from . import metrics
from .logs import access_log

log = logging.getLogger("shortener.delivery")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = "shortener.request_id"
ROUTE_KEY = "shortener.route"

# Gunicorn's own rules for response headers (gunicorn.http.wsgi): a header outside them
# makes Gunicorn answer a plain 500 of its own instead of the app's response.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")

_ERROR_BODY = orjson.dumps(
    {"error": {"code": "internal_error", "message": "The server failed to handle the request."}}
)

# Redirects are most answers, and an access line costs a worker about as much CPU as the rest of
# what the app adds to a cache hit's Redis call (benchmarks/results/profile-after.md). Each is
# counted with its duration in http_requests_total; one in REDIRECT_LINE_EVERY has its access
# line (it says "sampled_one_in"), and so has every redirect that carries trace ids (tracing on:
# the line links its trace). Every other answer (2xx, every 4xx and 5xx) always has its line.
REDIRECT_LINE_EVERY = 10
_redirects = itertools.count()

# Exchanges in flight in this process, so that a worker killed for a timeout can count them.
_in_flight: dict[int, "Exchange"] = {}
_local = threading.local()


def valid_request_id(value: str | None) -> bool:
    """Tell whether a client's X-Request-ID can be echoed and logged as it is."""
    return bool(value) and len(value) <= 128 and value.isascii() and value.isprintable() and " " not in value


def invalid_header(headers) -> str | None:
    """Return the name of the first header Gunicorn would refuse to send, or None."""
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            return str(name)
        if not _TOKEN.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
            return name
    return None


class Exchange:
    """One request and the response the client got: counted once, when it ends."""

    __slots__ = ("environ", "started", "request_id", "status", "counted", "observe", "thread")

    def __init__(self, environ, request_id: str, observe: bool, timed: bool = True):
        self.environ = environ
        # None when the exchange's start is unknown (an answer Gunicorn wrote to a request it could not parse).
        self.started = time.perf_counter() if timed else None
        self.request_id = request_id
        self.status = 0
        self.counted = False
        self.observe = observe
        self.thread = threading.get_ident()

    def finish(self, status: int | None = None, reason: str | None = None) -> None:
        """Count and log the exchange with the status the client got (once)."""
        if self.counted:
            return
        self.counted = True
        _in_flight.pop(id(self), None)
        status = self.status = status or self.status or 500
        if not self.observe:
            return
        environ = self.environ
        method = metrics.method_label(environ.get("REQUEST_METHOD", ""))
        route = environ.get(ROUTE_KEY, metrics.UNMATCHED)
        elapsed = None if self.started is None else time.perf_counter() - self.started
        metrics.observe_request(method, route, status, elapsed)
        trace_ids = environ.get("shortener.trace_ids")
        sampled = 300 <= status < 400 and trace_ids is None
        if sampled and next(_redirects) % REDIRECT_LINE_EVERY:
            return
        fields = {
            "request_id": self.request_id,
            "method": method,
            "route": route,
            "path": environ.get("PATH_INFO", ""),
            "status": status,
        }
        if elapsed is not None:
            fields["duration_ms"] = round(elapsed * 1000, 3)
        if reason:
            fields["reason"] = reason
        if sampled:
            fields["sampled_one_in"] = REDIRECT_LINE_EVERY
        if trace_ids is not None:
            fields["trace_id"], fields["span_id"] = trace_ids
        access_log.info("request", extra=fields)


def current() -> Exchange | None:
    """The exchange this thread is serving, if any (for Gunicorn's error path)."""
    return getattr(_local, "exchange", None)


def forget_current() -> None:
    """Mark this thread as between requests (a worker calls this before parsing one and once it is answered)."""
    _local.exchange = None


def count_server_answer(method: str | None, path: str | None, status: int, reason: str) -> None:
    """Count and log an answer Gunicorn wrote itself, once: for the exchange it ends, or as one of its own."""
    exchange = current()
    if exchange is None:
        # No request reached the app (Gunicorn could not parse one, or failed before the app ran).
        environ = {"REQUEST_METHOD": method or "", "PATH_INFO": path or ""}
        exchange = Exchange(environ, uuid.uuid4().hex, observe=True, timed=False)
    # Counted once (finish): an exchange that already counted its failure as a 500 is the one Gunicorn answers.
    exchange.finish(status, reason)


def abandon_in_flight(status: int, reason: str) -> int:
    """Count the exchanges the dying worker's other threads hold (they get no answer); return how many.

    The thread that receives the abort signal unwinds through Gunicorn's handle_error, which
    answers (and counts) a 500: its own exchange is left to that.
    """
    here = threading.get_ident()
    pending = [exchange for exchange in list(_in_flight.values()) if exchange.thread != here]
    for exchange in pending:
        exchange.finish(status, reason)
    return len(pending)


class Delivery:
    """WSGI middleware: guards headers and exceptions, then counts what was really sent."""

    def __init__(self, wsgi_app, observe: bool = True):
        self.wsgi_app = wsgi_app
        self.observe = observe

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID")
        request_id = incoming if valid_request_id(incoming) else uuid.uuid4().hex
        environ[REQUEST_ID_KEY] = request_id
        exchange = Exchange(environ, request_id, self.observe)
        _local.exchange = exchange
        _in_flight[id(exchange)] = exchange
        captured = []

        def capture(status, headers, exc_info=None):
            captured[:] = [status, headers]
            return _no_write

        try:
            body = self.wsgi_app(environ, capture)
        except Exception:
            log.exception("unhandled error outside the app's handlers", extra={"request_id": request_id})
            return self._error(exchange, start_response, "unhandled_exception")
        status, headers = captured or ("500 INTERNAL SERVER ERROR", [])
        if self.observe:
            headers.append((REQUEST_ID_HEADER, request_id))
        refused = invalid_header(headers)
        if refused is not None:
            # Found before anything is sent: the client gets our JSON 500, and so does the count.
            log.error("response header %r cannot be sent", refused, extra={"request_id": request_id})
            if hasattr(body, "close"):
                body.close()
            return self._error(exchange, start_response, "invalid_response_header")
        exchange.status = int(status[:3])
        start_response(status, headers)
        return _Body(body, exchange)

    @staticmethod
    def _error(exchange: Exchange, start_response, reason: str):
        exchange.status = 500
        start_response(
            "500 INTERNAL SERVER ERROR",
            [("Content-Type", "application/json"), ("Content-Length", str(len(_ERROR_BODY))),
             (REQUEST_ID_HEADER, exchange.request_id)],
        )
        exchange.finish(500, reason)
        return [_ERROR_BODY]


def _no_write(_data):
    raise RuntimeError("the shortener never uses WSGI's write()")


class _Body:
    """The response body; when the server closes it, the exchange is counted."""

    __slots__ = ("_body", "_exchange", "_done")

    def __init__(self, body, exchange: Exchange):
        self._body = body
        self._exchange = exchange
        self._done = False

    def __iter__(self):
        try:
            yield from self._body
        except Exception:
            # The body failed after the headers were chosen: the server answers 500 or cuts it.
            self._exchange.finish(500, "body_failed")
            raise
        # The server asks for more only once it wrote what came before: all of it is sent.
        self._done = True
        self._exchange.finish()

    def close(self):
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            failure = sys.exc_info()[1]
            if not self._done and failure is not None and not isinstance(failure, OSError):
                # The server is unwinding from a failure to write: it answers its own 500.
                self._exchange.finish(500, "write_failed")
            else:
                self._exchange.finish()
