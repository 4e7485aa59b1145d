"""Faults inside Postgres: a held table lock belongs to its stack, so drills side by side keep their own."""

import time
from types import SimpleNamespace

import psycopg

from harness.chaos.faults import LOCK_GAP, LOCK_HOLD, TableLock


def _lock_holders(database_url: str) -> int:
    """Sessions holding an ACCESS EXCLUSIVE lock on links, seen over a full hold-and-gap cycle."""
    seen = 0
    with psycopg.connect(database_url, autocommit=True) as connection:
        for _ in range(4):
            seen = max(seen, connection.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = 'links'::regclass"
                " AND mode = 'AccessExclusiveLock' AND granted").fetchone()[0])
            time.sleep((LOCK_HOLD + LOCK_GAP) / 4)
    return seen


def test_releasing_one_stacks_lock_leaves_the_others(make_app, database_url):
    make_app().test_client().get("/health/ready")  # the app creates the links table
    first, second = (SimpleNamespace(name=name, database_url=database_url) for name in ("first", "second"))
    lock = TableLock()
    lock.hold(first)
    lock.hold(second)
    try:
        lock.release(first)
        assert _lock_holders(database_url) == 1, "the second stack's lock went with the first's"
    finally:
        lock.release(second)
    assert _lock_holders(database_url) == 0
