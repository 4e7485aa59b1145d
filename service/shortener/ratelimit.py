"""Rate limits on link creation, kept in Redis; they fail open when Redis is down."""

import logging

import redis
from flask import current_app, has_app_context
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.errors import StorageError

# Values of SHORTENER_CREATE_LIMIT that turn the limit off (e.g. for load tests).
DISABLED = frozenset({"", "0", "off", "none", "false", "disabled", "unlimited"})

_limiter_log = logging.getLogger("flask-limiter")


class RedisOutageFilter(logging.Filter):
    """Turn flask-limiter's per-request "Swallowing error" tracebacks into the cache's state.

    The limiter fails open by swallowing storage errors, but logs a stack trace
    for each; the outage is reported once by the Redis state instead, and the
    circuit breaker makes the next requests skip the limiter altogether.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, (redis.RedisError, StorageError, ConnectionError, TimeoutError)):
            return True
        if has_app_context():
            cache = current_app.extensions.get("shortener.cache")
            if cache is not None:
                cache.breaker.failed()
                cache.state.mark_down(exc)
        return False


_outage_filter = RedisOutageFilter()


def init_app(app, view_endpoint: str) -> Limiter | None:
    """Limit one view per client address, as SHORTENER_CREATE_LIMIT says; None if off."""
    spec = str(app.config["SHORTENER_CREATE_LIMIT"]).strip()
    if spec.lower() in DISABLED:
        return None
    if _outage_filter not in _limiter_log.filters:
        _limiter_log.addFilter(_outage_filter)
    timeout = app.config["REDIS_SOCKET_TIMEOUT"]
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=app.config["REDIS_URL"],
        storage_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
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
    app.view_functions[view_endpoint] = limiter.limit(spec, methods=["POST"])(view)
    return limiter
