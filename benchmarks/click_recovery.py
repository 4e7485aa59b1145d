"""How long the click flush after a Postgres outage takes, and that it counts every click once.

`PYTHONPATH=service:. python -m benchmarks.click_recovery [--batches 600] [--workers 2] [--repeat 3]`

A 10-minute Postgres outage at one flush a second leaves 600 claimed batches per worker in Redis.
Postgres and Redis come from the harness; each "worker" is a ClickFlusher with a cache and a pool of
its own. The batches are made as the flushers make them (clicks counted, then claimed), then every
worker flushes at once, as each does on its first tick after Postgres is back: the time until the
last flush returns is the recovery. Only the service's public calls are used, so the same script
measures any revision (point PYTHONPATH at its service/ folder).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter

import psycopg

from harness.stack import Stack
from shortener import config, migrations
from shortener.cache import CLICKS_KEY, Cache
from shortener.clicks import ClickFlusher
from shortener.db import Database

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def worker(stack: Stack) -> ClickFlusher:
    """A worker's flusher, with the app's default timeouts."""
    settings = config.DEFAULTS
    db = Database(stack.database_url, deadline_seconds=settings["DATABASE_DEADLINE_SECONDS"],
                  connect_timeout=settings["DATABASE_CONNECT_TIMEOUT"],
                  statement_timeout_ms=settings["DATABASE_STATEMENT_TIMEOUT_MS"],
                  max_size=settings["DATABASE_POOL_MAX_SIZE"])
    cache = Cache(stack.redis_url, socket_timeout=settings["REDIS_SOCKET_TIMEOUT"],
                  ttl_seconds=settings["CACHE_TTL_SECONDS"])
    return ClickFlusher(cache, db)


def leave_batches(cache: Cache, codes: list[str], batches: int, codes_per_batch: int) -> Counter:
    """Claim `batches` batches of clicks on random links, as flushes during an outage do; return the clicks."""
    clicks: Counter = Counter()
    for _ in range(batches):
        batch = Counter({code: random.randint(1, 5) for code in random.sample(codes, codes_per_batch)})
        pipe = cache.client.pipeline(transaction=False)
        for code, n in batch.items():
            pipe.hincrby(CLICKS_KEY, code, n)
        pipe.execute()
        cache.claim_clicks(f"clicks:batch:{uuid.uuid4().hex}")
        clicks += batch
    return clicks


def recover(flushers: list[ClickFlusher]) -> float:
    """Every worker flushes at once; return the seconds until the last is done."""
    threads = [threading.Thread(target=flusher.flush) for flusher in flushers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def run_once(stack: Stack, flushers: list[ClickFlusher], args) -> float:
    """One outage's worth of batches, its recovery timed and its counts checked."""
    codes = [f"rec-{uuid.uuid4().hex[:12]}" for _ in range(args.links)]
    for code in codes:
        flushers[0].db.insert_link(code, "https://example.org/recovery")
    clicks = leave_batches(flushers[0].cache, codes, args.batches * len(flushers), args.codes_per_batch)
    seconds = recover(flushers)
    with psycopg.connect(stack.database_url) as conn:
        counted = dict(conn.execute("SELECT code, clicks FROM links WHERE code = ANY(%s)", (codes,)).fetchall())
    left = flushers[0].cache.pending_clicks()
    assert counted == dict(clicks) and left == 0, f"clicks lost or counted twice ({left} left in Redis)"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=600, help="batches per worker (600: 10 minutes at 1 s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--links", type=int, default=500, help="links clicked during the outage")
    parser.add_argument("--codes-per-batch", type=int, default=20, help="links clicked in each second")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with Stack(services=("postgres", "redis")) as stack:
        migrations.migrate(stack.database_url)
        flushers = [worker(stack) for _ in range(args.workers)]
        runs = [run_once(stack, flushers, args) for _ in range(args.repeat)]
        with psycopg.connect(stack.database_url) as conn:
            ids = conn.execute("SELECT count(*) FROM click_batches").fetchone()[0]
        for flusher in flushers:
            flusher.db.close()
            flusher.cache.close()
    print(f"{args.batches} batches x {args.workers} workers ({args.codes_per_batch} of {args.links} links each):"
          f" recovery {statistics.median(runs):.2f} s median of {', '.join(f'{s:.2f}' for s in runs)};"
          f" every click counted once; {ids} batch ids in Postgres")


if __name__ == "__main__":
    main()
