"""The shortener when Redis or Postgres is down: degraded, never a 500."""

import socket




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
    app = make_app(DATABASE_URL=f"postgresql://shortener@127.0.0.1:{closed_port()}/shortener", DATABASE_DEADLINE_SECONDS=0.5)
    client = app.test_client()

    assert client.get("/health").status_code == 200
    assert_error(client.post("/shorten", json={"url": "https://example.org"}), 503, "database_unavailable")
    assert_error(client.get("/abcdefg"), 503, "database_unavailable")
    # Validation still answers before any database call.
    assert_error(client.post("/shorten", json={"url": "ftp://x"}), 400, "invalid_url")

    # Still ready: cached links redirect without Postgres, and pulling the instance would stop them.
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "degraded", "dependencies": {"postgres": "down", "redis": "up"}}


def test_neither_postgres_nor_redis_is_not_ready(make_app):
    app = make_app(DATABASE_URL=f"postgresql://shortener@127.0.0.1:{closed_port()}/shortener",
                   REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", DATABASE_DEADLINE_SECONDS=0.5)

    ready = app.test_client().get("/health/ready")

    assert ready.status_code == 503
    body = ready.get_json()
    assert body["status"] == "unavailable"
    assert body["dependencies"] == {"postgres": "down", "redis": "down"}
    assert body["error"]["code"] == "not_ready"


def test_probes_are_reused_for_a_second(make_app, redis_url):
    """Hammering /health/ready and /metrics costs the dependencies a probe a second, not one per call."""
    import redis
    import time

    client = make_app().test_client()
    server = redis.Redis.from_url(redis_url)

    def pings() -> int:
        # Redis counts every command it runs, at once: the probe's PING is exact here.
        return server.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)

    before, started = pings(), time.monotonic()
    for _ in range(40):
        assert client.get("/health/ready").status_code == 200
        assert client.get("/metrics").status_code == 200
    elapsed = time.monotonic() - started

    assert pings() - before <= int(elapsed) + 1, elapsed
