"""The real Redis stopped and frozen mid-test: redirects keep working, clicks are kept."""

import json
import statistics
import time

import pytest
from prometheus_client import REGISTRY


BACKOFF = 0.5


@pytest.fixture
def app(make_app):
    # The rate limit stays on: creates must fail open without Redis.
    return make_app(REDIS_BACKOFF_SECONDS=BACKOFF, SHORTENER_CREATE_LIMIT="1000/minute")


@pytest.fixture
def redis_stopped(data_stack):
    """Stop the Redis container for the test; start it again whatever happens."""
    data_stack.pause_service("redis")
    try:
        yield
    finally:
        data_stack.resume_service("redis")


@pytest.fixture
def redis_frozen(data_stack):
    """Freeze Redis (it accepts connections but never answers): every call would time out."""
    container = data_stack.containers["redis"].get_wrapped_container()
    container.pause()
    try:
        yield
    finally:
        container.unpause()


def cache_count(result):
    return REGISTRY.get_sample_value("shortener_cache_requests_total", {"result": result}) or 0.0


def log_lines(output):
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def clicks(client, code):
    return client.get(f"/api/links/{code}").get_json()["clicks"]


def test_redis_stopped_mid_test(app, data_stack, capsys):
    client = app.test_client()
    code = client.post("/shorten", json={"url": "https://example.org/outage"}).get_json()["code"]
    assert client.get(f"/{code}").status_code == 302  # cached
    hits = cache_count("hit")
    assert client.get(f"/{code}").status_code == 302
    assert cache_count("hit") == hits + 1
    app.extensions["shortener.clicks"].flush()  # the 2 clicks so far reach Postgres

    data_stack.pause_service("redis")
    try:
        statuses = [client.get(f"/{code}").status_code for _ in range(20)]
        created = client.post("/shorten", json={"url": "https://example.org/during"})
        ready = client.get("/health/ready")
        metrics_text = client.get("/metrics").get_data(as_text=True)
    finally:
        data_stack.resume_service("redis")

    assert statuses == [302] * 20
    assert created.status_code == 201, created.get_data(as_text=True)
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert 'shortener_dependency_up{dependency="redis"} 0.0' in metrics_text
    # No click lost: 2 flushed before, 20 counted in Postgres during the outage.
    assert clicks(client, code) == 22

    # Recovery without a restart: once the backoff has passed, the cache is used again.
    time.sleep(BACKOFF)
    deadline = time.monotonic() + 10
    hits = cache_count("hit")
    while cache_count("hit") == hits and time.monotonic() < deadline:
        assert client.get(f"/{code}").status_code == 302
        time.sleep(0.05)
    assert cache_count("hit") > hits, "the cache was not used again after Redis came back"
    time.sleep(1.1)  # readiness reuses a probe for a second
    assert client.get("/health/ready").get_json()["status"] == "ok"

    lines = log_lines(capsys.readouterr().out)
    transitions = [l for l in lines if l.get("logger") == "shortener.dependency" and l.get("dependency") == "redis"]
    # One line when it went down, one when it came back: not one per request.
    assert [l["state"] for l in transitions] == ["down", "up"], transitions
    assert transitions[0]["level"] == "ERROR"
    assert not any("Swallowing error" in l.get("message", "") for l in lines)


def test_frozen_redis_costs_one_timeout_per_backoff(app, redis_frozen):
    client = app.test_client()
    app.extensions["shortener.cache"].breaker.succeeded()
    # Created with Redis frozen: the first create pays the limiter's timeout, then skips Redis.
    code = client.post("/shorten", json={"url": "https://example.org/frozen"}).get_json()["code"]

    durations = []
    for _ in range(30):
        started = time.perf_counter()
        assert client.get(f"/{code}").status_code == 302
        durations.append(time.perf_counter() - started)

    timeout = app.config["REDIS_SOCKET_TIMEOUT"]
    # Without the breaker each of the 30 would wait the socket timeout (7.5 s in all).
    assert sum(durations) < 30 * timeout / 3, durations
    assert statistics.median(durations) < timeout / 5, durations
    assert clicks(client, code) == 30


def test_a_redis_crash_loses_exactly_the_clicks_since_the_last_flush(make_app, data_stack):
    """The click-loss budget, stated in shortener.clicks: a Redis crash loses what it held, no more."""
    # No flush but the ones this test makes: the numbers are exact.
    app = make_app(CLICK_FLUSH_SECONDS=3600, REDIS_BACKOFF_SECONDS=BACKOFF)
    client = app.test_client()
    flusher = app.extensions["shortener.clicks"]
    code = client.post("/shorten", json={"url": "https://example.org/restart"}).get_json()["code"]
    for _ in range(3):
        assert client.get(f"/{code}").status_code == 302  # 1 miss + 2 hits, counted in Redis
    assert flusher.flush() == 3
    for _ in range(4):
        assert client.get(f"/{code}").status_code == 302  # in Redis, not flushed yet
    assert app.extensions["shortener.cache"].pending_clicks() == 4

    data_stack.pause_service("redis")  # Redis dies: no persistence, its 4 clicks are gone
    try:
        for _ in range(5):
            assert client.get(f"/{code}").status_code == 302  # from Postgres, counted there
    finally:
        data_stack.resume_service("redis")
    time.sleep(BACKOFF)
    for _ in range(6):
        assert client.get(f"/{code}").status_code == 302  # cache again, counted in Redis
    flusher.flush()

    # 3 flushed + 5 during the outage + 6 after = 14 of the 18 redirects: the 4 unflushed are lost.
    assert clicks(client, code) == 14
