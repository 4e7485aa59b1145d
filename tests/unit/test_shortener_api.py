"""The shortener's API against a real Postgres and a real Redis."""

import json

import psycopg
import pytest
import redis
from prometheus_client import REGISTRY

from shortener import codes, config
from shortener.cache import key_for


@pytest.fixture
def app(make_app, database_url, redis_url):
    """An app on the harness's Postgres and Redis, with no links left from other tests."""
    app = make_app()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN TRUNCATE links; EXCEPTION WHEN undefined_table THEN NULL; END $$")
    cache = redis.Redis.from_url(redis_url)
    stale = list(cache.scan_iter(match=key_for("*")))
    if stale:
        cache.delete(*stale)
    cache.close()
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def sample(name, **labels):
    """Read a metric's current value from the in-process registry (0 if absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def shorten(client, url):
    return client.post("/shorten", json={"url": url})


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_create_then_redirect_round_trip(client, database_url):
    response = shorten(client, "https://example.org/some/page?q=1")

    assert response.status_code == 201
    body = response.get_json()
    assert body["url"] == "https://example.org/some/page?q=1"
    assert len(body["code"]) == codes.LENGTH and codes.is_well_formed(body["code"])
    assert body["short_url"] == f"/{body['code']}"  # no PUBLIC_BASE_URL: the path, never the Host header
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT url FROM links WHERE code = %s", (body["code"],)).fetchone()
    assert row == ("https://example.org/some/page?q=1",)

    redirect = client.get(f"/{body['code']}")
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == "https://example.org/some/page?q=1"


def test_public_base_url_builds_short_urls(make_app):
    app = make_app(PUBLIC_BASE_URL="https://sho.rt/")
    body = shorten(app.test_client(), "http://example.org").get_json()
    assert body["short_url"] == f"https://sho.rt/{body['code']}"


@pytest.mark.parametrize("value", ["sho.rt", "ftp://sho.rt", "https://sho.rt/?x=1", "https://sho.rt/#x", "https://",
                                   "http://sho.rt:port/", "http://[::1/"])
def test_a_malformed_public_base_url_stops_the_app(value):
    with pytest.raises(config.ConfigurationError, match="PUBLIC_BASE_URL must be an http"):
        config.load({"PUBLIC_BASE_URL": value}, environ={}, required=())


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("javascript:alert(1)", "invalid_url"),
        ("ftp://example.org/file", "invalid_url"),
        ("http://", "invalid_url"),
        ("https:///path-only", "invalid_url"),
        ("example.org", "invalid_url"),
        ("http://exa mple.org", "invalid_url"),
        ("http://[::1", "invalid_url"),
        ("http://example.org:99999/", "invalid_url"),
        ("", "invalid_url"),
        (42, "invalid_url"),
        ("https://example.org/" + "a" * 2048, "url_too_long"),
    ],
)
def test_rejects_unusable_urls(client, url, code):
    assert_error(client.post("/shorten", json={"url": url}), 400, code)


def test_accepts_url_of_exactly_max_length(client):
    url = "https://example.org/" + "a" * (2048 - len("https://example.org/"))
    assert shorten(client, url).status_code == 201


def test_missing_url(client):
    assert_error(client.post("/shorten", json={"link": "https://example.org"}), 400, "missing_url")


def test_body_must_be_an_object(client):
    assert_error(client.post("/shorten", json=["https://example.org"]), 400, "invalid_body")


def test_malformed_json(client):
    response = client.post("/shorten", data='{"url": ', content_type="application/json")
    assert_error(response, 400, "malformed_json")


def test_wrong_content_type(client):
    response = client.post("/shorten", data="url=https://example.org", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_no_body_at_all(client):
    assert_error(client.post("/shorten"), 415, "unsupported_media_type")


def test_unknown_code_is_404(client):
    assert_error(client.get("/zzzzzzz"), 404, "not_found")


def test_junk_path_is_404_json(client):
    assert_error(client.get("/no-such-thing!"), 404, "not_found")
    assert_error(client.get("/a/b/c"), 404, "not_found")


def test_wrong_method_is_json(client):
    assert_error(client.delete("/shorten"), 405, "method_not_allowed")


def test_allow_lists_only_the_methods_a_path_serves(client):
    # /shorten is no link: the redirect route must not add GET to its Allow (schemathesis found it).
    assert set(client.options("/shorten").headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    refused = client.get("/shorten")
    assert_error(refused, 405, "method_not_allowed")
    assert set(refused.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert set(client.options("/abc").headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_second_redirect_is_a_cache_hit(client, redis_url):
    code = shorten(client, "https://example.org/cached").get_json()["code"]
    hits, misses = sample("shortener_cache_requests_total", result="hit"), sample(
        "shortener_cache_requests_total", result="miss"
    )

    assert client.get(f"/{code}").status_code == 302
    assert sample("shortener_cache_requests_total", result="miss") == misses + 1
    cache = redis.Redis.from_url(redis_url, decode_responses=True)
    assert cache.get(key_for(code)) == "https://example.org/cached"
    assert 0 < cache.ttl(key_for(code)) <= 3600
    cache.close()

    assert client.get(f"/{code}").headers["Location"] == "https://example.org/cached"
    assert sample("shortener_cache_requests_total", result="hit") == hits + 1


def test_code_collision_draws_again(client, monkeypatch):
    taken = shorten(client, "https://example.org/first").get_json()["code"]
    draws = iter([taken, taken, "Fresh01"])
    monkeypatch.setattr(codes, "new_code", lambda: next(draws))

    response = shorten(client, "https://example.org/second")

    assert response.status_code == 201
    assert response.get_json()["code"] == "Fresh01"
    assert client.get(f"/{taken}").headers["Location"] == "https://example.org/first"


def test_codes_are_base62_and_never_reserved():
    drawn = {codes.new_code() for _ in range(500)}
    assert all(len(c) == 7 and codes.is_well_formed(c) for c in drawn)
    assert not drawn & codes.RESERVED
    assert len(drawn) == 500


def test_health_is_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_both_dependencies_are_up(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "dependencies": {"postgres": "up", "redis": "up"}}


def test_metrics_expose_the_contracted_names(client):
    code = shorten(client, "https://example.org/metrics").get_json()["code"]
    client.get(f"/{code}")
    client.get("/nope/nope")
    created = sample("shortener_links_created_total")
    redirects = sample("shortener_redirects_total")

    text = client.get("/metrics").get_data(as_text=True)

    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "shortener_links_created_total",
        "shortener_redirects_total",
        "shortener_cache_requests_total",
    ):
        assert f"\n{name}" in text, name
    assert 'http_requests_total{method="POST",route="/shorten",status="201"}' in text
    assert 'http_requests_total{method="GET",route="/<code>",status="302"}' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/<code>"}' in text
    assert "/nope" not in text and code not in text
    assert created >= 1 and redirects >= 1


def test_request_counter_counts_by_route_and_status(client):
    labels = {"method": "GET", "route": "/<code>", "status": "404"}
    before = sample("http_requests_total", **labels)
    client.get("/abcdefg")
    client.get("/abcdefh")
    assert sample("http_requests_total", **labels) == before + 2


def access_lines(output):
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "shortener.access"]


def test_access_log_is_json_with_echoed_request_id(client, capsys):
    response = client.get("/health", headers={"X-Request-ID": "req-123"})

    assert response.headers["X-Request-ID"] == "req-123"
    (line,) = [l for l in access_lines(capsys.readouterr().out) if l["request_id"] == "req-123"]
    assert line["level"] == "INFO"
    assert line["message"] == "request"
    assert line["method"] == "GET"
    assert line["route"] == "/health"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float))
    assert "timestamp" in line


def test_request_id_is_generated_when_absent(client, capsys):
    response = client.get("/zzzzzzz")

    generated = response.headers["X-Request-ID"]
    assert len(generated) == 32
    (line,) = access_lines(capsys.readouterr().out)
    assert line["request_id"] == generated
    assert line["route"] == "/<code>" and line["status"] == 404


def test_unexpected_errors_are_json_500(make_app):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)


def test_oversized_body_is_json_413(client):
    response = client.post("/shorten", data="{" + " " * 70_000 + "}", content_type="application/json")
    assert_error(response, 413, "request_entity_too_large")
