"""Migrations run once, at deploy, by `python -m shortener migrate`; workers never change the schema (item 6)."""

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from shortener import create_app, migrations, shutdown

SERVICE = Path(__file__).resolve().parents[2] / "service"


@pytest.fixture
def fresh_database(database_url):
    """An empty database of its own on the same server (the shared one keeps its schema)."""
    name = "fresh_" + uuid.uuid4().hex[:8]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(database_url, dbname=name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_the_command_migrates_an_empty_database_and_a_second_run_does_nothing(fresh_database):
    env = {"DATABASE_URL": fresh_database, "REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    first = subprocess.run([sys.executable, "-m", "shortener", "migrate"], cwd=SERVICE, env=env,
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr + first.stdout
    assert migrations.migrate(fresh_database) == []
    with psycopg.connect(fresh_database) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [version for version, _ in migrations.MIGRATIONS]


def test_racing_migrations_apply_each_version_once(fresh_database):
    results, failures = [], []

    def run():
        try:
            results.append(migrations.migrate(fresh_database))
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(v for applied in results for v in applied) == [v for v, _ in migrations.MIGRATIONS]


def test_a_long_transaction_elsewhere_does_not_stall_a_worker_start(database_url, redis_url):
    """A worker that changed the schema at start queued behind any lock on links; now it asks nothing of it."""
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")  # e.g. a long report, a VACUUM FULL
        app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SHORTENER_CREATE_LIMIT": "off"})
        try:
            started = time.monotonic()
            ready = app.test_client().get("/health/ready")
            elapsed = time.monotonic() - started
        finally:
            conn.rollback()
            shutdown(app)
    assert ready.status_code == 200 and ready.get_json()["dependencies"]["postgres"] == "up"
    assert elapsed < 1.5, elapsed


def test_without_migrations_a_request_is_a_503_that_names_the_command(fresh_database, redis_url, capsys):
    app = create_app({"DATABASE_URL": fresh_database, "REDIS_URL": redis_url, "SHORTENER_CREATE_LIMIT": "off"})
    try:
        response = app.test_client().post("/shorten", json={"url": "https://example.org/"})
    finally:
        shutdown(app)
    assert response.status_code == 503
    with psycopg.connect(fresh_database) as conn:
        # The worker created nothing: the schema is the migrations' business.
        assert conn.execute("SELECT to_regclass('links')").fetchone() == (None,)


def test_an_expiry_stored_past_year_9999_before_expiries_were_bounded_is_readable_after_the_migration(
        fresh_database, redis_url):
    before = [version for version, _ in migrations.MIGRATIONS if version < 5]
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        migrations.migrate(fresh_database)
        conn.execute("DELETE FROM schema_migrations WHERE version = 5")  # as a database of the release before
        conn.execute("INSERT INTO links (code, url, expires_at) VALUES"
                     " ('far', 'https://example.org/far', '9999-12-31T23:59:59-01:00')")
        assert [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == before
    app = create_app({"DATABASE_URL": fresh_database, "REDIS_URL": redis_url, "TESTING": True})
    try:
        assert app.test_client().get("/api/links/far").status_code != 200  # unreadable: year 10000 in UTC

        assert migrations.migrate(fresh_database) == [5]
        described = app.test_client().get("/api/links/far")
        assert described.status_code == 200, described.get_data(as_text=True)
        assert described.get_json()["expires_at"] == "9999-12-31T23:59:59Z"
    finally:
        shutdown(app)
