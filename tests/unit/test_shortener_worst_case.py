"""The slowest request's timeouts, added up, stay under Gunicorn's worker timeout; its graceful stop fits Docker's."""

import runpy
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from harness.stack import STOP_TIMEOUT
from shortener import codes, config
from shortener.db import Database

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn.conf.py"


def gunicorn_settings(monkeypatch, **environ) -> dict:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


@pytest.mark.parametrize("environ", [{}, {"DATABASE_DEADLINE_SECONDS": "20", "REDIS_SOCKET_TIMEOUT": "2"},
                                     {"DATABASE_CONNECT_TIMEOUT": "30"}])
def test_the_worker_timeout_exceeds_the_slowest_request(monkeypatch, environ):
    settings = gunicorn_settings(monkeypatch, **environ)
    worst = config.worst_request_seconds(config.load(required=()))
    assert settings["timeout"] > worst, "a worker would be killed while its request still waits on a timeout"
    # A stop lets in-flight requests finish before the container's SIGKILL.
    assert settings["graceful_timeout"] < STOP_TIMEOUT


class Calls:
    """The request thread's calls to Postgres (connections lent) and Redis round trips (commands, pipelines).

    The click flusher's thread is not the request's, and is not counted.
    """

    def __init__(self, monkeypatch):
        self.postgres = self.redis = 0
        request_thread = threading.get_ident()
        lend = Database.connection

        @contextmanager
        def counted_connection(db, *args, **kwargs):
            self.postgres += threading.get_ident() == request_thread
            with lend(db, *args, **kwargs) as conn:
                yield conn

        def counted(method):
            def call(*args, **kwargs):
                self.redis += threading.get_ident() == request_thread
                return method(*args, **kwargs)
            return call

        monkeypatch.setattr(Database, "connection", counted_connection)
        monkeypatch.setattr(redis.Redis, "execute_command", counted(redis.Redis.execute_command))
        monkeypatch.setattr(redis.client.Pipeline, "execute", counted(redis.client.Pipeline.execute))

    def reset(self):
        self.postgres = self.redis = 0

    def within_the_slowest(self) -> bool:
        return (self.postgres <= config.SLOWEST_REQUEST_CALLS["postgres"]
                and self.redis <= config.SLOWEST_REQUEST_CALLS["redis"])


def test_a_create_whose_codes_are_all_taken_makes_no_more_calls_than_counted(make_app, monkeypatch):
    client = make_app(SHORTENER_CREATE_LIMIT="1000/second").test_client()
    taken = client.post("/shorten", json={"url": "https://example.org/taken"}).get_json()["code"]
    calls = Calls(monkeypatch)
    monkeypatch.setattr(codes, "new_code", lambda: taken)

    response = client.post("/shorten", json={"url": "https://example.org/again"})

    assert response.status_code == 503
    assert calls.postgres == config.CODE_ATTEMPTS
    assert calls.within_the_slowest(), (calls.postgres, calls.redis)


def test_a_redirect_that_misses_makes_no_more_calls_than_counted(make_app, monkeypatch, redis_url):
    client = make_app().test_client()
    code, other = (client.post("/shorten", json={"url": f"https://example.org/{n}"}).get_json()["code"] for n in "ab")
    client.get(f"/{other}")  # Redis learns the lookup's script (a first call sends it again)
    calls = Calls(monkeypatch)
    client.get(f"/{code}")  # the cache fill
    assert calls.redis == 2 and calls.within_the_slowest(), (calls.postgres, calls.redis)

    # Disabled in Postgres behind the cache's back, and evicted: a lookup, then why it cannot be followed.
    with make_app().extensions["shortener.db"].connection() as conn:
        conn.execute("UPDATE links SET disabled_at = now() WHERE code = %s", (code,))
    redis.Redis.from_url(redis_url).delete(f"link:{code}")
    calls.reset()
    assert client.get(f"/{code}").status_code == 410
    assert calls.within_the_slowest(), (calls.postgres, calls.redis)


def test_a_redirect_with_redis_down_makes_no_more_calls_than_counted(make_app, monkeypatch):
    client = make_app(REDIS_URL="redis://127.0.0.1:9/0").test_client()  # nothing listens on the discard port
    code = client.post("/shorten", json={"url": "https://example.org/no-cache"}).get_json()["code"]
    calls = Calls(monkeypatch)

    assert client.get(f"/{code}").status_code == 302

    assert calls.postgres >= 1 and calls.within_the_slowest(), (calls.postgres, calls.redis)


def test_a_create_with_a_key_makes_no_more_calls_than_counted(make_app, monkeypatch):
    # The create limit (its count, then its window for the headers) and the wrong-key limit's look at the count.
    client = make_app(SHORTENER_CREATE_LIMIT="1000/second", SHORTENER_KEY_FAILURE_LIMIT="10/minute",
                      SHORTENER_API_KEYS="k1-secret").test_client()
    taken = client.post("/shorten", json={"url": "https://example.org/taken"}).get_json()["code"]
    calls = Calls(monkeypatch)
    monkeypatch.setattr(codes, "new_code", lambda: taken)

    response = client.post("/shorten", json={"url": "https://example.org/again"}, headers={"X-API-Key": "k1-secret"})

    assert response.status_code == 503
    assert calls.redis == 4 and calls.within_the_slowest(), (calls.postgres, calls.redis)
