"""The shortener when Redis or Postgres is down: degraded, never a 500."""

import socket

import pytest

from shortener import create_app


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_redis_down_redirects_from_postgres(make_app):
    healthy = make_app().test_client()
    code = healthy.post("/shorten", json={"url": "https://example.org/no-cache"}).get_json()["code"]

    no_redis = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0").test_client()

    response = no_redis.get(f"/{code}")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.org/no-cache"
    assert no_redis.post("/shorten", json={"url": "https://example.org/x"}).status_code == 201
    assert_error(no_redis.get("/zzzzzzz"), 404, "not_found")

    ready = no_redis.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "degraded", "dependencies": {"postgres": "up", "redis": "down"}}


def test_postgres_down_is_503_json(make_app):
    app = make_app(DATABASE_URL=f"postgresql://shortener@127.0.0.1:{closed_port()}/shortener", DATABASE_POOL_TIMEOUT=0.5)
    client = app.test_client()

    assert client.get("/health").status_code == 200
    assert_error(client.post("/shorten", json={"url": "https://example.org"}), 503, "database_unavailable")
    assert_error(client.get("/abcdefg"), 503, "database_unavailable")
    # Validation still answers before any database call.
    assert_error(client.post("/shorten", json={"url": "ftp://x"}), 400, "invalid_url")

    ready = client.get("/health/ready")
    assert ready.status_code == 503
    body = ready.get_json()
    assert body["status"] == "unavailable"
    assert body["dependencies"] == {"postgres": "down", "redis": "up"}
    assert body["error"]["code"] == "not_ready"


def test_postgres_down_still_serves_cached_redirects(make_app):
    healthy = make_app().test_client()
    code = healthy.post("/shorten", json={"url": "https://example.org/warm"}).get_json()["code"]
    assert healthy.get(f"/{code}").status_code == 302  # warms the cache

    no_db = make_app(
        DATABASE_URL=f"postgresql://shortener@127.0.0.1:{closed_port()}/shortener", DATABASE_POOL_TIMEOUT=0.5
    ).test_client()
    assert no_db.get(f"/{code}").headers["Location"] == "https://example.org/warm"


def test_app_requires_its_addresses(monkeypatch):
    from shortener.config import ConfigurationError

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        create_app({"REDIS_URL": "redis://127.0.0.1:1/0"})
