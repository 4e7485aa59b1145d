"""Click batches after a Postgres outage: written many to a transaction, each click once; old batch ids pruned.

A flush that finds Postgres down leaves its batch in Redis: a 10-minute outage leaves 600 per worker.
Each used to be written in a transaction of its own, by every worker (`python -m
benchmarks.click_recovery` measures the recovery).
"""

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from postgres_statements import Statements
from shortener import clicks
from shortener.cache import CLICKS_KEY
from shortener.db import CLICK_BATCH_IDS_KEPT

# Each transaction of a flush sends three statements: the lock, the batch ids, the clicks.
STATEMENTS_PER_WRITE = 3


@pytest.fixture
def workers(make_app):
    """Two apps on the same Postgres and Redis, as two Gunicorn workers; their flushers never tick on their own."""
    return [make_app(CLICK_FLUSH_SECONDS=3600) for _ in range(2)]


def new_links(app, count: int) -> list[str]:
    client = app.test_client()
    return [client.post("/shorten", json={"url": f"https://example.org/backlog/{n}"}).get_json()["code"]
            for n in range(count)]


def claim(cache, counts: dict[str, int]) -> str:
    """Count clicks in Redis and claim them as a batch, as a flush does before it finds Postgres down."""
    pipe = cache.client.pipeline(transaction=False)
    for code, n in counts.items():
        pipe.hincrby(CLICKS_KEY, code, n)
    pipe.execute()
    batch = f"clicks:batch:{uuid.uuid4().hex}"
    assert cache.claim_clicks(batch)
    return batch


def write_behind_redis(database_url, batch: str, counts: dict[str, int], applied_at=None) -> None:
    """Write a batch to Postgres as a flush does, and leave Redis unaware: its worker died just then."""
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO click_batches (id, applied_at) VALUES (%s, coalesce(%s, now()))",
                     (batch, applied_at))
        for code, n in counts.items():
            conn.execute("UPDATE links SET clicks = clicks + %s WHERE code = %s", (n, code))


def counted(database_url, codes: list[str]) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT code, clicks FROM links WHERE code = ANY(%s)", (codes,)).fetchall())


def leave_backlog(cache, codes: list[str], batches: int) -> Counter:
    """The batches an outage leaves in Redis; return their clicks."""
    clicked = Counter()
    for n in range(batches):
        batch = {codes[n % len(codes)]: 1, codes[(n + 1) % len(codes)]: 2}
        claim(cache, batch)
        clicked.update(batch)
    return clicked


def test_an_outages_backlog_is_written_in_one_transaction_counting_each_click_once(workers, database_url,
                                                                                  monkeypatch):
    codes = new_links(workers[0], 5)
    cache = workers[0].extensions["shortener.cache"]
    clicked = leave_backlog(cache, codes, 100)
    # One batch reached Postgres just before its worker died: Redis still lists it.
    written = {codes[0]: 7}
    write_behind_redis(database_url, claim(cache, written), written)
    clicked.update(written)
    statements = Statements(monkeypatch)

    # Postgres is back: both workers flush at once (this thread's statements are counted).
    other = threading.Thread(target=workers[1].extensions["shortener.clicks"].flush)
    other.start()
    workers[0].extensions["shortener.clicks"].flush()
    other.join(10)

    assert statements.count() <= STATEMENTS_PER_WRITE  # not one transaction per batch
    assert counted(database_url, codes) == clicked
    assert cache.pending_clicks() == 0


def test_a_backlog_larger_than_one_write_takes_a_transaction_per_part(workers, database_url, monkeypatch):
    monkeypatch.setattr(clicks, "BATCHES_PER_WRITE", 10)
    codes = new_links(workers[0], 3)
    cache = workers[0].extensions["shortener.cache"]
    clicked = leave_backlog(cache, codes, 25)
    statements = Statements(monkeypatch)

    workers[0].extensions["shortener.clicks"].flush()

    assert statements.count() == 3 * STATEMENTS_PER_WRITE  # each transaction stays short, however long the outage
    assert counted(database_url, codes) == clicked
    assert cache.pending_clicks() == 0


def test_batch_ids_are_pruned_past_the_window_but_never_while_redis_lists_them(workers, database_url):
    (code,) = new_links(workers[0], 1)
    cache, flusher = workers[0].extensions["shortener.cache"], workers[0].extensions["shortener.clicks"]
    long_ago = datetime.now(UTC) - CLICK_BATCH_IDS_KEPT - timedelta(hours=1)
    forgotten = f"clicks:batch:{uuid.uuid4().hex}"  # written long ago, long gone from Redis
    write_behind_redis(database_url, forgotten, {}, long_ago)
    listed = claim(cache, {code: 3})  # written long ago, and Redis still lists it (it was out of reach since)
    write_behind_redis(database_url, listed, {code: 3}, long_ago)
    recent = claim(cache, {code: 1})
    write_behind_redis(database_url, recent, {code: 1})
    claim(cache, {code: 2})  # not written yet
    batches = (forgotten, listed, recent)

    def kept() -> set[str]:
        with psycopg.connect(database_url) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM click_batches WHERE id = ANY(%s)", (list(batches),))}

    assert flusher.flush() == 2
    assert kept() == {listed, recent}  # the flush that found it in Redis kept its id
    assert counted(database_url, [code]) == {code: 6}  # each click once
    claim(cache, {code: 1})
    assert flusher.flush() == 1
    assert kept() == {recent}  # no longer in Redis: past the window, forgotten
