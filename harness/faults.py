"""Faults inside Postgres (the container keeps running): a migration that rejects writes, a held table lock."""

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


class TableLock:
    """Holds an ACCESS EXCLUSIVE lock on links, again and again, from a thread: every query on links waits."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, stack: Stack) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._locker, args=(stack.database_url,), name="table-lock", daemon=True)
        self._thread.start()

    def release(self, _stack: Stack) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=LOCK_HOLD + 5)
            self._thread = None

    def _locker(self, database_url: str) -> None:
        with psycopg.connect(database_url) as connection:
            while not self._stop.is_set():
                with connection.transaction():
                    connection.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
                    self._stop.wait(LOCK_HOLD)
                self._stop.wait(LOCK_GAP)
