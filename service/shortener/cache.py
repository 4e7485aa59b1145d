"""Redis as a cache in front of Postgres; every failure degrades to a miss."""

import math

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import config
from .dependency import CircuitBreaker, DependencyState

KEY_PREFIX = "link:"
# Why a code cannot be followed (the refusal's error code), kept a few seconds: repeated visits to an
# unknown, disabled or expired code are answered without Postgres.
REFUSAL_PREFIX = "refused:"
# Clicks counted on redirects wait here (a hash code -> count) until a flusher claims them.
CLICKS_KEY = "clicks:pending"
# Claimed batches (each a hash renamed from CLICKS_KEY) not yet confirmed written to Postgres.
BATCHES_KEY = "clicks:batches"
# What a disabled link's key holds for a while: a tombstone that a racing cache fill cannot overwrite.
TOMBSTONE = ""
TOMBSTONE_SECONDS = 300

# A cache hit and its click, or a cached refusal, in one round trip: {url, refusal}, either nil.
# A tombstone or no key is a miss (and no click).
_FOLLOW = """
local url = redis.call('GET', KEYS[1])
if url and url ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  return {url, false}
end
return {false, redis.call('GET', KEYS[3])}
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


def refusal_key_for(code: str) -> str:
    """Return the Redis key that caches why a code cannot be followed."""
    return REFUSAL_PREFIX + code


class Cache:
    """Cache-aside storage of code -> URL with a TTL, behind a per-worker circuit breaker."""

    def __init__(self, url: str, *, socket_timeout: float, ttl_seconds: int, backoff_seconds: float = 5.0,
                 refusal_seconds: float = config.DEFAULTS["CACHE_REFUSAL_SECONDS"]):
        self.ttl_seconds = ttl_seconds
        self.refusal_seconds = refusal_seconds
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

    def follow(self, code: str) -> tuple[str | None, str | None]:
        """Return the cached URL (its click counted) or the cached refusal, in one round trip.

        (None, None) on a miss or if Redis is down.
        """
        found = self._call(self._follow, keys=[key_for(code), CLICKS_KEY, refusal_key_for(code)], args=[code])
        return tuple(found) if found else (None, None)

    def remember_and_count(self, code: str, url: str, expires_in: float | None = None) -> bool:
        """Cache a URL (never past its expiry, never over a tombstone) and count a click; False if Redis failed."""
        ttl = self.ttl_seconds if expires_in is None else min(self.ttl_seconds, math.floor(expires_in))
        pipe = self.client.pipeline(transaction=False)
        if ttl >= 1:
            # NX: a link disabled meanwhile left a tombstone that this fill must not replace.
            pipe.set(key_for(code), url, ex=ttl, nx=True)
        pipe.hincrby(CLICKS_KEY, code, 1)
        return self._call(pipe.execute) is not None

    def bury(self, code: str) -> bool:
        """Replace a code's entry with a tombstone (the link was disabled); False if Redis could not be told."""
        return self._call(self.client.set, key_for(code), TOMBSTONE, ex=TOMBSTONE_SECONDS) is not None

    def forget(self, code: str) -> bool:
        """Drop a code from the cache (tombstone and refusal included); False if Redis could not be told."""
        return self._call(self.client.delete, key_for(code), refusal_key_for(code)) is not None

    def refuse(self, code: str, refusal: str) -> None:
        """Remember for a few seconds why a code cannot be followed; a failure only costs a future query."""
        self._call(self.client.set, refusal_key_for(code), refusal, px=round(self.refusal_seconds * 1000))

    # The click batches: raise redis.RedisError, the flusher decides what a failure means.

    def claim_clicks(self, batch: str) -> bool:
        """Move the pending clicks into a new batch; False if there were none."""
        return bool(self._claim(keys=[CLICKS_KEY, batch, BATCHES_KEY]))

    def click_batches(self) -> list[str]:
        """Every claimed batch not yet confirmed written (this worker's or another's)."""
        return sorted(self.client.smembers(BATCHES_KEY))

    def batch_counts(self, batches: list[str]) -> dict[str, dict[str, int]]:
        """Each batch's clicks per code, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            pipe.hgetall(batch)
        return {batch: {code: int(n) for code, n in counts.items()} for batch, counts in zip(batches, pipe.execute())}

    def drop_batches(self, batches: list[str]) -> None:
        """Forget batches that Postgres has, in one round trip."""
        if batches:
            self.client.pipeline(transaction=False).delete(*batches).srem(BATCHES_KEY, *batches).execute()

    def pending_clicks(self) -> int:
        """Clicks in Redis not yet in Postgres (pending and claimed)."""
        claimed = self.batch_counts(self.click_batches())
        return sum(map(int, self.client.hvals(CLICKS_KEY))) + sum(sum(c.values()) for c in claimed.values())

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
