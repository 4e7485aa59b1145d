"""Gunicorn workers that count the responses Gunicorn answers itself (a request it could not parse, its plain 500s)."""

from ssl import SSLError

from gunicorn.http.errors import (
    ChunkMissingTerminator,
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidChunkExtension,
    InvalidChunkSize,
    InvalidH2CPreface,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    InvalidSchemeHeaders,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from . import delivery

# The statuses of Gunicorn's handle_error (gunicorn.workers.base), first match wins; anything else is its 500.
# A response header it refused comes first: its class derives from the request's, but it is the app's fault.
_STATUSES = (
    ((InvalidResponseHeader, InvalidResponseHeaderName), 500),
    (UnsupportedTransferCoding, 501),
    (LimitRequestLine, 414),
    (LimitRequestHeaders, 431),
    (ExpectationFailed, 417),
    ((ForbiddenProxyRequest, SSLError), 403),
    ((InvalidRequestLine, InvalidRequestMethod, InvalidHTTPVersion, InvalidHeader, InvalidHeaderName,
      InvalidProxyLine, InvalidSchemeHeaders, ObsoleteFolding, InvalidH2CPreface,
      InvalidChunkSize, ChunkMissingTerminator, InvalidChunkExtension), 400),
)


def status_of(exc: BaseException) -> int:
    """The status Gunicorn's handle_error answers for an exception."""
    return next((status for kinds, status in _STATUSES if isinstance(exc, kinds)), 500)


class _Counting:
    """Mixin: each answer Gunicorn writes itself is counted once: for the exchange it ends, else as one of its own."""

    def handle(self, *args, **kwargs):
        # Whatever fails from here until the app runs (parsing, mostly) is no earlier request's.
        delivery.forget_current()
        return super().handle(*args, **kwargs)

    def handle_request(self, *args, **kwargs):
        keep_alive = super().handle_request(*args, **kwargs)
        # The exchange is answered; gthread may still fail draining its body, and that answer is another.
        delivery.forget_current()
        return keep_alive

    def handle_error(self, req, client, addr, exc):
        # A header Gunicorn refused carries the request it had parsed (as handle_error reads it).
        parsed = req if req is not None else getattr(exc, "req", None)
        delivery.count_server_answer(getattr(parsed, "method", None), getattr(parsed, "path", None),
                                     status_of(exc), type(exc).__name__)
        return super().handle_error(req, client, addr, exc)


class CountingSyncWorker(_Counting, SyncWorker):
    """Gunicorn's sync worker, counting its own answers."""


class CountingThreadWorker(_Counting, ThreadWorker):
    """Gunicorn's gthread worker, counting its own answers."""
