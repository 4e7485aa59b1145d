"""Clicks: counted in Redis with each redirect, written to Postgres in batches at least once a second.

What a Redis crash can lose: the clicks counted since the last flush (at most a second's worth
while Postgres is up; every click since Postgres went down otherwise). A batch is recorded in
Postgres with its id, so a batch written twice (a worker died after Postgres took it and before
Redis forgot it) is counted once. After a Postgres outage, the batches that waited in Redis (one
per worker per second) are written many to a transaction, so recovery takes a few round trips.
"""

import logging
import threading
import uuid

import redis

from .db import DatabaseUnavailable

log = logging.getLogger("shortener.clicks")

FLUSH_INTERVAL = 1.0
# The most batches one transaction writes: a day-long outage's backlog is written in a few
# hundred transactions, each well inside the statement timeout.
BATCHES_PER_WRITE = 1000


class ClickFlusher:
    """A worker's background thread that moves Redis's clicks to Postgres every FLUSH_INTERVAL seconds."""

    def __init__(self, cache, db, interval: float = FLUSH_INTERVAL):
        self.cache = cache
        self.db = db
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the thread once per process (the app is built before Gunicorn forks in some setups)."""
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if (self._thread is None or not self._thread.is_alive()) and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name="click-flusher", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Claim the pending clicks and write every unwritten batch, many to a transaction; return the clicks written."""
        written = 0
        try:
            self.cache.claim_clicks(f"clicks:batch:{uuid.uuid4().hex}")
            batches = self.cache.click_batches()
            for start in range(0, len(batches), BATCHES_PER_WRITE):
                chunk = batches[start:start + BATCHES_PER_WRITE]
                written += self.db.add_clicks(self.cache.batch_counts(chunk))
                self.cache.drop_batches(chunk)
        except DatabaseUnavailable:
            pass  # the batches wait in Redis until Postgres is back
        except redis.RedisError:
            pass  # the cache's state reports the outage; redirects count in Postgres meanwhile
        except Exception:
            log.exception("click flush failed")
        return written

    def stop(self, flush: bool = True) -> None:
        """Stop the thread and, by default, write what is pending (a worker's exit)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        if flush:
            self.flush()
