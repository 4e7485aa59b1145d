"""Gunicorn workers that count the responses Gunicorn answers itself (its plain 500s)."""

from gunicorn.http.errors import (
    ConfigurationProblem,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from . import delivery

# Errors Gunicorn blames on the app or itself (a 5xx), though they derive from its parse errors.
_SERVER_FAULTS = (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem)


def status_of(exc: BaseException) -> int:
    """The status Gunicorn's handle_error answers for an exception."""
    if isinstance(exc, UnsupportedTransferCoding):
        return 501
    if isinstance(exc, ParseException) and not isinstance(exc, _SERVER_FAULTS):
        return 400
    return 500


class _Counting:
    """Mixin: every request starts uncounted; an error Gunicorn answers is counted with its status."""

    def handle_request(self, *args, **kwargs):
        delivery.forget_current()
        return super().handle_request(*args, **kwargs)

    def handle_error(self, req, client, addr, exc):
        status = status_of(exc)
        if status >= 500:
            delivery.count_server_error(getattr(req, "method", None), status, type(exc).__name__)
        return super().handle_error(req, client, addr, exc)


class CountingSyncWorker(_Counting, SyncWorker):
    """Gunicorn's sync worker, counting its own 5xx answers."""


class CountingThreadWorker(_Counting, ThreadWorker):
    """Gunicorn's gthread worker, counting its own 5xx answers."""
