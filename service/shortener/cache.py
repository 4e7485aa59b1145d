"""Redis as a cache in front of Postgres; every failure degrades to a miss."""

import logging

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

KEY_PREFIX = "link:"


def key_for(code: str) -> str:
    """Return the Redis key that caches a code's target URL."""
    return KEY_PREFIX + code


class Cache:
    """Cache-aside storage of code -> URL with a TTL."""

    def __init__(self, url: str, *, socket_timeout: float, ttl_seconds: int):
        self.ttl_seconds = ttl_seconds
        # Short timeouts and no retries: the cache must never make a request
        # slower than going straight to Postgres would.
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    def lookup(self, code: str) -> str | None:
        """Return the cached URL, or None on a miss or if Redis is down."""
        try:
            return self.client.get(key_for(code))
        except redis.RedisError as exc:
            log.warning("redis lookup failed: %s", exc)
            return None

    def remember(self, code: str, url: str) -> None:
        """Cache a URL; a failure only costs a future miss."""
        try:
            self.client.set(key_for(code), url, ex=self.ttl_seconds)
        except redis.RedisError as exc:
            log.warning("redis store failed: %s", exc)

    def ping(self) -> None:
        """Raise redis.RedisError if Redis does not answer."""
        self.client.ping()

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()
