"""Rate limits per client, kept in Redis: creates, and wrong API keys; they fail open when Redis is down."""

import logging

import limits
import redis
from flask import current_app, has_app_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

# Values of SHORTENER_CREATE_LIMIT and SHORTENER_KEY_FAILURE_LIMIT that turn the limit off (e.g. for load tests).
DISABLED = frozenset({"", "0", "off", "none", "false", "disabled", "unlimited"})

REDIS_ERRORS = (redis.RedisError, StorageError, ConnectionError, TimeoutError)

_limiter_log = logging.getLogger("flask-limiter")


def _redis_failed(exc: BaseException) -> None:
    """Report a failed Redis call as the cache's own: its breaker skips Redis for a while, its state logs once."""
    if has_app_context():
        cache = current_app.extensions.get("shortener.cache")
        if cache is not None:
            cache.breaker.failed()
            cache.state.mark_down(exc)


class RedisOutageFilter(logging.Filter):
    """Turn flask-limiter's per-request "Swallowing error" tracebacks into the cache's state.

    The limiter fails open by swallowing storage errors, but logs a stack trace
    for each; the outage is reported once by the Redis state instead, and the
    circuit breaker makes the next requests skip the limiter altogether.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, REDIS_ERRORS):
            return True
        _redis_failed(exc)
        return False


_outage_filter = RedisOutageFilter()


def spec(settings, name: str) -> str | None:
    """A limit setting in flask-limiter syntax, or None when it is off."""
    value = str(settings[name]).strip()
    return None if value.lower() in DISABLED else value


def _storage_options(app) -> dict:
    """The limits' Redis clients, with the cache's deadline on every call."""
    timeout = app.config["REDIS_SOCKET_TIMEOUT"]
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def init_app(app, view_endpoint: str) -> Limiter | None:
    """Limit one view per client address, as SHORTENER_CREATE_LIMIT says; None if off."""
    limit = spec(app.config, "SHORTENER_CREATE_LIMIT")
    if limit is None:
        return None
    if _outage_filter not in _limiter_log.filters:
        _limiter_log.addFilter(_outage_filter)
    limiter = Limiter(
        # The client's address: the peer's, or the one the trusted proxy reports (SHORTENER_TRUSTED_PROXY_HOPS).
        key_func=get_remote_address,
        app=app,
        storage_uri=app.config["REDIS_URL"],
        storage_options=_storage_options(app),
        strategy="fixed-window",
        headers_enabled=True,
        # Fail open: a Redis outage must not stop link creation.
        swallow_errors=True,
        key_prefix="shortener-limit",
    )
    cache = app.extensions["shortener.cache"]

    @limiter.request_filter
    def redis_is_known_down() -> bool:
        # While the breaker skips Redis, so does the limiter: no timeout per create.
        return not cache.available

    view = app.view_functions[view_endpoint]
    app.view_functions[view_endpoint] = limiter.limit(limit, methods=["POST"])(view)
    return limiter


class KeyFailures:
    """Wrong API keys counted per client: past the limit, every key the client sends is refused until the window ends.

    Right keys are refused too, or a 429 for wrong keys and a 2xx for the right one would still tell
    a guesser when it hit. One Redis call per request that sends a key; none for requests without.
    """

    def __init__(self, app, limit: str):
        self.limit = limits.parse(limit)
        self.counter = FixedWindowRateLimiter(storage_from_string(app.config["REDIS_URL"], **_storage_options(app)))

    def check(self, wrong: bool) -> None:
        """Count a wrong key, or look at the count for a right one; raise a 429 past the limit, never without Redis."""
        if not current_app.extensions["shortener.cache"].available:
            return
        client = ("shortener-key-failures", get_remote_address())
        try:
            allowed = self.counter.hit(self.limit, *client) if wrong else self.counter.test(self.limit, *client)
        except REDIS_ERRORS as exc:
            _redis_failed(exc)
            return
        if not allowed:
            # The window's full length: an upper bound that costs no second Redis call.
            raise TooManyRequests(f"wrong API keys, {self.limit}", retry_after=self.limit.get_expiry())


def key_failures(app) -> KeyFailures | None:
    """The wrong-key limit SHORTENER_KEY_FAILURE_LIMIT sets; None if off."""
    limit = spec(app.config, "SHORTENER_KEY_FAILURE_LIMIT")
    return None if limit is None else KeyFailures(app, limit)
