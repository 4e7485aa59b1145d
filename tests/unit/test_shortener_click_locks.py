"""Click batches and row locks: flushes never deadlock each other, and a lost transaction is no outage.

The benchmark's mix (redirects and creates at once) once answered 109 creates with 503: two workers
flushed click batches touching the same links in different orders, Postgres killed one as a deadlock,
and that worker took the deadlock for an outage, refusing its creates until its breaker closed.
"""

import threading
import time
import uuid

import psycopg
import pytest

from shortener.db import CLICK_FLUSH_LOCK, DatabaseUnavailable


@pytest.fixture
def links(make_app):
    """Three new links. codes, and the app's database."""
    app = make_app()
    client = app.test_client()
    codes = [client.post("/shorten", json={"url": f"https://example.org/lock/{i}"}).get_json()["code"]
             for i in range(3)]
    return codes, app.extensions["shortener.db"], client


def test_a_deadlock_fails_one_transaction_and_not_the_worker(links, database_url):
    (first, second, _), db, client = links
    ours_waits = threading.Event()
    outcome = {}

    def ours():
        try:
            with db.connection() as conn, conn.transaction():
                conn.execute("UPDATE links SET clicks = clicks WHERE code = %s", (first,))
                ours_waits.set()
                conn.execute("UPDATE links SET clicks = clicks WHERE code = %s", (second,))
        except DatabaseUnavailable as exc:
            outcome["error"] = exc

    with psycopg.connect(database_url) as other:
        # The other side detects late, so that ours is the transaction Postgres cancels.
        other.execute("SET deadlock_timeout = '10s'")
        other.execute("UPDATE links SET clicks = clicks WHERE code = %s", (second,))
        thread = threading.Thread(target=ours)
        thread.start()
        assert ours_waits.wait(5)
        time.sleep(0.2)  # ours now waits for the row the other side holds
        other.execute("UPDATE links SET clicks = clicks WHERE code = %s", (first,))
        thread.join(10)
        other.rollback()

    assert "deadlock" in outcome["error"].detail
    assert not db.breaker.is_open and db.state.is_up is not False
    # The worker goes on creating links at once.
    assert client.post("/shorten", json={"url": "https://example.org/after-deadlock"}).status_code == 201


def test_click_batches_are_written_one_at_a_time_across_workers(links, make_app, database_url):
    (first, second, third), db, _ = links
    other_worker = make_app().extensions["shortener.db"]
    done = {}

    def flush(name, database, counts):
        database.add_clicks({f"clicks:batch:{uuid.uuid4().hex}": counts})
        # What was written when this batch was: the order of the commits, not of the threads' returns (a thread
        # may return after the batch that waited for it).
        with psycopg.connect(database_url) as conn:
            done[name] = dict(conn.execute("SELECT code, clicks FROM links WHERE code = ANY(%s)", ([first, second],)))

    with psycopg.connect(database_url) as holder:
        holder.execute("UPDATE links SET clicks = clicks WHERE code = %s", (first,))  # a redirect's row lock, say
        blocked = threading.Thread(target=flush, args=("blocked", db, {first: 1, second: 1}))
        blocked.start()
        time.sleep(0.3)
        # Touches none of the blocked batch's links, and still waits its turn: no batch can
        # then lock links in an order another batch crosses.
        waiting = threading.Thread(target=flush, args=("waiting", other_worker, {third: 1}))
        waiting.start()
        time.sleep(0.5)
        assert done == {}
        holder.rollback()
    blocked.join(10)
    waiting.join(10)
    assert done["waiting"] == {first: 1, second: 1}, "the waiting batch was written before the one it waited for"
    with psycopg.connect(database_url) as conn:
        counted = dict(conn.execute("SELECT code, clicks FROM links WHERE code = ANY(%s)", ([first, second, third],)))
    assert counted == {first: 1, second: 1, third: 1}


def test_a_transaction_whose_client_went_silent_ends_on_the_server_and_frees_the_flush_lock(make_app, database_url):
    """A client that gave up at its deadline may never be heard closing: a lossy way to Postgres drops its goodbye,
    then its kernel gives up on the socket. Postgres, waiting for the transaction's next statement, held the click
    flush's lock for hours, and every flush after it was cancelled. It now ends such a transaction within a deadline."""
    app = make_app(DATABASE_DEADLINE_SECONDS=1.0)
    pool = app.extensions["shortener.db"]._open_pool()
    silent = pool.getconn()  # the app's own connection, with the app's session settings
    try:
        silent.execute("BEGIN")
        silent.execute("SELECT pg_advisory_xact_lock(%s)", (CLICK_FLUSH_LOCK,))

        def lock_free() -> bool:
            with psycopg.connect(database_url, autocommit=True) as other:
                return other.execute("SELECT pg_try_advisory_xact_lock(%s)", (CLICK_FLUSH_LOCK,)).fetchone()[0]

        assert not lock_free()  # held while its transaction lives
        time.sleep(1.0 + 0.5)  # the client says nothing more, and never closes
        assert lock_free()
    finally:
        pool.putconn(silent)
