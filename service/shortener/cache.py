"""Redis as a cache in front of Postgres; every failure degrades to a miss."""

import math

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .dependency import CircuitBreaker, DependencyState

KEY_PREFIX = "link:"


def key_for(code: str) -> str:
    """Return the Redis key that caches a code's target URL."""
    return KEY_PREFIX + code


class Cache:
    """Cache-aside storage of code -> URL with a TTL, behind a per-worker circuit breaker."""

    def __init__(self, url: str, *, socket_timeout: float, ttl_seconds: int, backoff_seconds: float = 5.0):
        self.ttl_seconds = ttl_seconds
        # Short timeouts and no retries: the cache must never make a request
        # much slower than going straight to Postgres would.
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self.breaker = CircuitBreaker(backoff_seconds)
        self.state = DependencyState("redis")

    def _call(self, operation, *args, **kwargs):
        """Run a Redis command unless the breaker is open; None when skipped or failed."""
        if not self.breaker.allows():
            return None
        try:
            result = operation(*args, **kwargs)
        except redis.RedisError as exc:
            self.breaker.failed()
            self.state.mark_down(exc)
            return None
        self.breaker.succeeded()
        self.state.mark_up()
        return result

    def lookup(self, code: str) -> str | None:
        """Return the cached URL, or None on a miss or if Redis is down."""
        return self._call(self.client.get, key_for(code))

    def remember(self, code: str, url: str, expires_in: float | None = None) -> None:
        """Cache a URL, never past the link's expiry; a failure only costs a future miss."""
        ttl = self.ttl_seconds if expires_in is None else min(self.ttl_seconds, math.floor(expires_in))
        if ttl >= 1:
            self._call(self.client.set, key_for(code), url, ex=ttl)

    def forget(self, code: str) -> bool:
        """Drop a code from the cache; False if Redis could not be told."""
        return self._call(self.client.delete, key_for(code)) is not None

    def ping(self) -> bool:
        """Tell whether Redis answers; while the breaker is open, False without asking."""
        if not self.breaker.allows():
            return False
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self.breaker.failed()
            self.state.mark_down(exc)
            return False
        self.breaker.succeeded()
        self.state.mark_up()
        return True

    @property
    def available(self) -> bool:
        """False while the breaker is skipping Redis after a failure."""
        return not self.breaker.is_open

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()
