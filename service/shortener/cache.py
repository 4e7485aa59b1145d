"""Redis as a cache in front of Postgres; every failure degrades to a miss."""

import math

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .dependency import CircuitBreaker, DependencyState

KEY_PREFIX = "link:"
# Clicks counted on redirects wait here (a hash code -> count) until a flusher claims them.
CLICKS_KEY = "clicks:pending"
# Claimed batches (each a hash renamed from CLICKS_KEY) not yet confirmed written to Postgres.
BATCHES_KEY = "clicks:batches"
# What a disabled link's key holds for a while: a tombstone that a racing cache fill cannot overwrite.
TOMBSTONE = ""
TOMBSTONE_SECONDS = 300

# A cache hit and its click in one round trip; a tombstone or no key is a miss (and no click).
_FOLLOW = """
local url = redis.call('GET', KEYS[1])
if url and url ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  return url
end
return false
"""
# Move the pending clicks to a batch of their own, atomically: new clicks go to a fresh hash.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('SADD', KEYS[3], KEYS[2])
  return 1
end
return 0
"""


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
        self._follow = self.client.register_script(_FOLLOW)
        self._claim = self.client.register_script(_CLAIM)

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

    def follow(self, code: str) -> str | None:
        """Return the cached URL and count its click, in one round trip; None on a miss or if Redis is down."""
        return self._call(self._follow, keys=[key_for(code), CLICKS_KEY], args=[code]) or None

    def remember_and_count(self, code: str, url: str, expires_in: float | None = None) -> bool:
        """Cache a URL (never past its expiry, never over a tombstone) and count a click; False if Redis failed."""
        ttl = self.ttl_seconds if expires_in is None else min(self.ttl_seconds, math.floor(expires_in))
        pipe = self.client.pipeline(transaction=False)
        if ttl >= 1:
            # NX: a link disabled meanwhile left a tombstone that this fill must not replace.
            pipe.set(key_for(code), url, ex=ttl, nx=True)
        pipe.hincrby(CLICKS_KEY, code, 1)
        return self._call(pipe.execute) is not None

    def remember(self, code: str, url: str, expires_in: float | None = None) -> None:
        """Cache a URL, never past the link's expiry; a failure only costs a future miss."""
        ttl = self.ttl_seconds if expires_in is None else min(self.ttl_seconds, math.floor(expires_in))
        if ttl >= 1:
            self._call(self.client.set, key_for(code), url, ex=ttl, nx=True)

    def bury(self, code: str) -> bool:
        """Replace a code's entry with a tombstone (the link was disabled); False if Redis could not be told."""
        return self._call(self.client.set, key_for(code), TOMBSTONE, ex=TOMBSTONE_SECONDS) is not None

    def forget(self, code: str) -> bool:
        """Drop a code from the cache (tombstone included); False if Redis could not be told."""
        return self._call(self.client.delete, key_for(code)) is not None

    # The click batches: raise redis.RedisError, the flusher decides what a failure means.

    def claim_clicks(self, batch: str) -> bool:
        """Move the pending clicks into a new batch; False if there were none."""
        return bool(self._claim(keys=[CLICKS_KEY, batch, BATCHES_KEY]))

    def click_batches(self) -> list[str]:
        """Every claimed batch not yet confirmed written (this worker's or another's)."""
        return sorted(self.client.smembers(BATCHES_KEY))

    def batch_counts(self, batch: str) -> dict[str, int]:
        """A batch's clicks per code."""
        return {code: int(count) for code, count in self.client.hgetall(batch).items()}

    def drop_batch(self, batch: str) -> None:
        """Forget a batch that Postgres has."""
        self.client.pipeline(transaction=False).delete(batch).srem(BATCHES_KEY, batch).execute()

    def pending_clicks(self) -> int:
        """Clicks in Redis not yet in Postgres (pending and claimed)."""
        total = sum(map(int, self.client.hvals(CLICKS_KEY)))
        return total + sum(sum(self.batch_counts(b).values()) for b in self.click_batches())

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
