"""Changes inside Postgres (the container keeps running): a migration that rejects writes, a held table lock,
and a migration that must go unnoticed."""

from __future__ import annotations

import threading

import psycopg

from harness.stack import Stack

LOCK_HOLD = 1.0  # seconds each lock is held: long for a request, short of the app's 5 s statement timeout
LOCK_GAP = 0.1  # seconds between two locks, in which the queued requests get through


def reject_writes(stack: Stack) -> None:
    """Install a trigger that fails every insert into links, as a broken migration would."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE OR REPLACE FUNCTION chaos_reject_writes() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'chaos: writes to links are rejected'; END $$"
        )
        connection.execute(
            "CREATE OR REPLACE TRIGGER chaos_reject_writes BEFORE INSERT ON links "
            "FOR EACH ROW EXECUTE FUNCTION chaos_reject_writes()"
        )


def accept_writes(stack: Stack) -> None:
    """Remove the trigger that reject_writes installed (a no-op when it is not there)."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        connection.execute("DROP TRIGGER IF EXISTS chaos_reject_writes ON links")
        connection.execute("DROP FUNCTION IF EXISTS chaos_reject_writes()")


# A migration as teams ship them under traffic: a nullable column (a brief exclusive lock, no
# rewrite, given up after lock_timeout rather than queueing every query behind it) and an index
# built concurrently (no lock that stops reads or writes); rolled back the same way.
_MIGRATION = (
    "SET lock_timeout = '2s'",
    "ALTER TABLE links ADD COLUMN IF NOT EXISTS campaign text",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS links_campaign ON links (campaign)",
)
_ROLLBACK = (
    "SET lock_timeout = '2s'",
    "DROP INDEX CONCURRENTLY IF EXISTS links_campaign",
    "ALTER TABLE links DROP COLUMN IF EXISTS campaign",
)


def migrate_schema(stack: Stack) -> None:
    """Apply a schema migration (a new column and its index) while the app serves."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        for statement in _MIGRATION:
            connection.execute(statement)


def roll_back_schema(stack: Stack) -> None:
    """Undo migrate_schema (a no-op when it is not applied)."""
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        for statement in _ROLLBACK:
            connection.execute(statement)


class TableLock:
    """Holds an ACCESS EXCLUSIVE lock on links, again and again, from a thread: every query on links waits.

    One lock per stack, so that drills running side by side each hold and release their own.
    """

    def __init__(self):
        self._held: dict[str, tuple[threading.Event, threading.Thread]] = {}

    def hold(self, stack: Stack) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._locker, args=(stack.database_url, stop),
                                  name=f"table-lock-{stack.name}", daemon=True)
        self._held[stack.name] = (stop, thread)
        thread.start()

    def release(self, stack: Stack) -> None:
        stop, thread = self._held.pop(stack.name, (None, None))
        if thread:
            stop.set()
            thread.join(timeout=LOCK_HOLD + 5)

    @staticmethod
    def _locker(database_url: str, stop: threading.Event) -> None:
        with psycopg.connect(database_url) as connection:
            while not stop.is_set():
                with connection.transaction():
                    connection.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
                    stop.wait(LOCK_HOLD)
                stop.wait(LOCK_GAP)
