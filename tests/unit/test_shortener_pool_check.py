"""The pool's check on checkout: no round trip for a healthy connection, a dead one replaced unseen."""

import time

import psycopg
import pytest
from psycopg_pool import ConnectionPool


@pytest.fixture
def checks(monkeypatch):
    """Record every full check (a round trip to Postgres) the pool makes, and still make it."""
    calls = []
    original = ConnectionPool.check_connection

    def counting(conn):
        calls.append(conn)
        original(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    return calls


def test_a_healthy_checkout_asks_postgres_nothing(make_app, checks):
    client = make_app().test_client()
    code = client.post("/shorten", json={"url": "https://example.org/healthy"}).get_json()["code"]

    for _ in range(5):
        assert client.get(f"/{code}").status_code == 302

    assert checks == []


def test_a_connection_postgres_closed_is_replaced_before_a_request_sees_it(make_app, database_url, checks):
    # One connection in the pool: the next request must borrow the one Postgres closes.
    app = make_app(DATABASE_POOL_MAX_SIZE=1)
    client = app.test_client()
    code = client.post("/shorten", json={"url": "https://example.org/terminated"}).get_json()["code"]

    with psycopg.connect(database_url, autocommit=True) as admin:
        terminated = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shortener'"
        ).fetchall()
    assert terminated and all(ok for (ok,) in terminated)
    time.sleep(0.2)  # the FATAL message and the EOF reach the app's socket

    response = client.get(f"/{code}")

    assert response.status_code == 302, response.get_data(as_text=True)
    assert len(checks) == 1
    app.extensions["shortener.clicks"].flush()  # the click waits in Redis until a flush
    assert client.get(f"/api/links/{code}").get_json()["clicks"] == 1
