"""The links API: custom codes, expiry, disabling, link info, keys, limits, hostile input."""

import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
import redis
from prometheus_client import REGISTRY

from postgres_statements import Statements
from shortener import codes
from shortener.cache import key_for, refusal_key_for
from shortener.keys import fingerprint
from shortener.openapi import document


# Made up per run, as `make up` does: no key is committed.
ADMIN_KEY = secrets.token_urlsafe(18)


@pytest.fixture
def app(make_app):
    return make_app(SHORTENER_ADMIN_KEYS=ADMIN_KEY)


def admin_client(app):
    """A test client that sends the admin key with every request."""
    client = app.test_client()
    client.environ_base["HTTP_X_API_KEY"] = ADMIN_KEY
    return client


@pytest.fixture
def client(app):
    return admin_client(app)


def unique(prefix="c"):
    """A custom code no other test run has used."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def later(**delta):
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def info(client, code):
    """A link's description: a 200, or a disabled link's 410 (gone until enabled) that carries it."""
    response = client.get(f"/api/links/{code}")
    body = response.get_json()
    if response.status_code == 410:
        assert body["error"]["code"] == "link_disabled" and "/enable" in body["error"]["message"]
        return body["link"]
    assert response.status_code == 200, response.get_data(as_text=True)
    return body


# --- creation ---------------------------------------------------------------


def test_created_link_has_the_documented_fields(client):
    response = client.post("/shorten", json={"url": "https://example.org/a"})

    assert response.status_code == 201
    body = response.get_json()
    assert list(body) == ["code", "short_url", "url", "created_at", "expires_at"]
    assert body["expires_at"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert abs(created - datetime.now(UTC)) < timedelta(seconds=30)


def test_custom_code_then_409_when_taken(client):
    code = unique()
    first = client.post("/shorten", json={"url": "https://example.org/1", "code": code})
    assert first.status_code == 201 and first.get_json()["code"] == code
    assert first.get_json()["short_url"].endswith("/" + code)

    assert_error(client.post("/shorten", json={"url": "https://example.org/2", "code": code}), 409, "code_taken")
    # The first link is untouched.
    assert client.get(f"/{code}").headers["Location"] == "https://example.org/1"


@pytest.mark.parametrize(
    "code", ["ab", "x" * 33, "with space", "slash/code", "dot.code", "ümlaut", "emoji😀x", "a\nb", 7, ["abc"], ""]
)
def test_malformed_custom_codes_are_400(client, code):
    assert_error(client.post("/shorten", json={"url": "https://example.org", "code": code}), 400, "invalid_code")


@pytest.mark.parametrize("code", ["health", "metrics", "api", "shorten", "HEALTH", "Api", "docs", "static"])
def test_reserved_words_are_refused(client, code):
    assert_error(client.post("/shorten", json={"url": "https://example.org", "code": code}), 400, "reserved_code")


def test_custom_code_edges_are_accepted(client):
    for code in ("abc", "A_b-" + uuid.uuid4().hex[:28]):
        client.delete(f"/api/links/{code}")  # leave no state between runs
    for code in (unique("_-")[:32], "Z" * 3 + uuid.uuid4().hex[:29]):
        assert client.post("/shorten", json={"url": "https://example.org", "code": code}).status_code == 201


def test_unknown_fields_are_refused(client):
    assert_error(
        client.post("/shorten", json={"url": "https://example.org", "expire_at": later(days=1)}), 400, "invalid_body"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/abc",
        "http://LOCALHOST./abc",
        "https://localhost:8443/abc",
        "http://sho.rt/abc",
        "https://SHO.RT/x",
    ],
)
def test_links_to_the_shortener_itself_are_refused(make_app, url):
    app = make_app(PUBLIC_BASE_URL="https://sho.rt/", SHORTENER_HOST_ALIASES="localhost")
    assert_error(app.test_client().post("/shorten", json={"url": url}), 400, "invalid_url")


def test_create_returns_201_only_after_commit(client, database_url):
    body = client.post("/shorten", json={"url": "https://example.org/durable"}).get_json()
    # A separate connection sees the row as soon as the 201 is in hand.
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT url FROM links WHERE code = %s", (body["code"],)).fetchone() == (
            "https://example.org/durable",
        )


# --- expiry and disabling --------------------------------------------------


def test_expires_at_is_stored_and_echoed(client):
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    body = client.post("/shorten", json={"url": "https://example.org", "expires_at": when.isoformat()}).get_json()
    assert datetime.fromisoformat(body["expires_at"]) == when
    assert info(client, body["code"])["status"] == "active"


@pytest.mark.parametrize(
    "value", ["tomorrow", "2030-01-01T00:00:00", "2001-01-01T00:00:00Z", 1893456000, "9999-99-99T00:00:00Z", "x" * 100]
)
def test_bad_expiry_is_400(client, value):
    assert_error(
        client.post("/shorten", json={"url": "https://example.org", "expires_at": value}), 400, "invalid_expires_at"
    )


def stored_urls(database_url, url):
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM links WHERE url = %s", (url,)).fetchone()[0]


@pytest.mark.parametrize("value", [
    "9999-12-31T23:59:59-01:00",  # on a live stack: year 10000 in UTC, a 500, and a row that answered 500 forever
    "9999-12-31T23:59:59+00:00",
    (datetime.now(UTC) + timedelta(days=3653 + 2)).isoformat(),
])
def test_an_expiry_beyond_ten_years_is_a_400_and_leaves_no_row(client, database_url, value):
    url = f"https://example.org/{unique('far')}"
    assert_error(client.post("/shorten", json={"url": url, "expires_at": value}), 400, "invalid_expires_at")
    assert stored_urls(database_url, url) == 0


def test_the_furthest_expiry_is_a_setting_and_stored_in_utc(make_app, database_url):
    client = make_app(SHORTENER_MAX_EXPIRY_DAYS="30").test_client()
    assert_error(client.post("/shorten", json={"url": "https://example.org", "expires_at": later(days=31)}),
                 400, "invalid_expires_at")
    when = (datetime.now(UTC) + timedelta(days=29)).replace(microsecond=0)
    far_east = when.astimezone(timezone(timedelta(hours=14))).isoformat()
    created = client.post("/shorten", json={"url": "https://example.org", "expires_at": far_east})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["expires_at"] == when.isoformat().replace("+00:00", "Z")
    described = client.get(f"/api/links/{created.get_json()['code']}")
    assert described.status_code == 200 and described.get_json()["expires_at"] == created.get_json()["expires_at"]


def test_expired_link_is_410_even_when_cached(client, redis_url):
    expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    code = client.post("/shorten", json={"url": "https://example.org/soon", "expires_at": expires}).get_json()["code"]
    assert client.get(f"/{code}").status_code == 302  # now cached
    cache = redis.Redis.from_url(redis_url)
    # The cache entry never outlives the link: a hit needs no Postgres to know it expired.
    assert 0 < cache.ttl(key_for(code)) <= 2
    time.sleep(2.1)

    assert_error(client.get(f"/{code}"), 410, "link_expired")
    cache.close()
    assert info(client, code)["status"] == "expired"


def test_cache_ttl_is_capped_by_the_expiry(client, redis_url):
    code = client.post("/shorten", json={"url": "https://example.org", "expires_at": later(seconds=30)}).get_json()[
        "code"
    ]
    client.get(f"/{code}")
    cache = redis.Redis.from_url(redis_url)
    assert 0 < cache.ttl(key_for(code)) <= 30
    cache.close()


def test_disable_makes_the_link_410_and_drops_the_cache(client, redis_url):
    code = client.post("/shorten", json={"url": "https://example.org/off"}).get_json()["code"]
    assert client.get(f"/{code}").status_code == 302

    response = client.delete(f"/api/links/{code}")

    assert response.status_code == 204 and response.get_data() == b""
    cache = redis.Redis.from_url(redis_url)
    assert cache.get(key_for(code)) == b""  # a tombstone: no longer a URL
    cache.close()
    assert_error(client.get(f"/{code}"), 410, "link_disabled")
    described = info(client, code)
    assert described["status"] == "disabled" and described["disabled_at"]
    # Idempotent.
    assert client.delete(f"/api/links/{code}").status_code == 204


def test_a_cache_fill_racing_with_disable_cannot_bring_the_link_back(app, client):
    code = client.post("/shorten", json={"url": "https://example.org/race"}).get_json()["code"]
    assert client.delete(f"/api/links/{code}").status_code == 204
    # A redirect that read the link as active just before the disable committed now fills the cache.
    app.extensions["shortener.cache"].remember_and_count(code, "https://example.org/race")

    assert_error(client.get(f"/{code}"), 410, "link_disabled")


def test_disable_without_redis_is_refused_and_changes_nothing(make_app, client):
    code = client.post("/shorten", json={"url": "https://example.org/stale"}).get_json()["code"]
    assert client.get(f"/{code}").status_code == 302  # cached
    no_redis = admin_client(make_app(REDIS_URL="redis://127.0.0.1:1/0", SHORTENER_ADMIN_KEYS=ADMIN_KEY))

    # Disabling while the cache cannot be told would leave it serving a disabled link.
    assert_error(no_redis.delete(f"/api/links/{code}"), 503, "cache_unavailable")
    assert info(client, code)["status"] == "active"
    assert client.get(f"/{code}").status_code == 302


def test_disable_unknown_is_404(client):
    assert_error(client.delete("/api/links/nosuchcode"), 404, "not_found")
    assert_error(client.delete("/api/links/bad!code"), 404, "not_found")


# --- info and clicks -------------------------------------------------------


def test_info_counts_every_click_hit_or_miss(client):
    body = client.post("/shorten", json={"url": "https://example.org/count"}).get_json()
    for _ in range(5):
        assert client.get(f"/{body['code']}").status_code == 302

    # Clicks reach Postgres in batches, at least once a second.
    deadline = time.monotonic() + 3
    while (described := info(client, body["code"]))["clicks"] < 5 and time.monotonic() < deadline:
        time.sleep(0.1)

    assert described["clicks"] == 5
    assert described["url"] == "https://example.org/count"
    assert described["status"] == "active"
    assert set(described) == {"code", "short_url", "url", "created_at", "expires_at", "disabled_at", "status", "clicks"}


def test_info_unknown_is_404(client):
    assert_error(client.get("/api/links/zzzzzzz"), 404, "not_found")


# --- API keys --------------------------------------------------------------


def test_delete_without_any_configured_key_is_403_saying_how_to_configure_keys(make_app):
    client = make_app().test_client()
    code = client.post("/shorten", json={"url": "https://example.org/nokeys"}).get_json()["code"]

    for response in (client.delete(f"/api/links/{code}"), client.post(f"/api/links/{code}/enable"),
                     client.delete(f"/api/links/{code}", headers={"X-API-Key": "anything"})):
        assert_error(response, 403, "keys_not_configured")
        message = response.get_json()["error"]["message"]
        assert "SHORTENER_API_KEYS" in message and "SHORTENER_ADMIN_KEYS" in message and "X-API-Key" in message
    assert info(client, code)["status"] == "active"
    assert client.get(f"/{code}").status_code == 302


def test_only_the_creating_key_or_an_admin_key_disables_or_enables_a_link(make_app, database_url):
    client = make_app(SHORTENER_API_KEYS="k1-secret, k2-secret", SHORTENER_ADMIN_KEYS=ADMIN_KEY).test_client()
    created = client.post("/shorten", json={"url": "https://example.org/owned"}, headers={"X-API-Key": "k1-secret"})
    assert created.status_code == 201
    code = created.get_json()["code"]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT owner_key FROM links WHERE code = %s", (code,)).fetchone()[0]
    assert stored == fingerprint("k1-secret") and "k1-secret" not in stored  # a fingerprint, never the key

    def change(method, key=None, path=""):
        headers = {"X-API-Key": key} if key else {}
        return client.open(f"/api/links/{code}{path}", method=method, headers=headers)

    assert_error(change("DELETE"), 401, "unauthorized")
    assert_error(change("DELETE", "k1-secre"), 401, "unauthorized")
    assert_error(change("DELETE", "k2-secret"), 403, "not_owner")
    assert info(client, code)["status"] == "active"
    assert change("DELETE", "k1-secret").status_code == 204
    assert_error(client.get(f"/{code}"), 410, "link_disabled")
    assert_error(change("POST", "k2-secret", "/enable"), 403, "not_owner")
    assert info(client, code)["status"] == "disabled"
    assert change("POST", ADMIN_KEY, "/enable").status_code == 204
    assert client.get(f"/{code}").headers["Location"] == "https://example.org/owned"
    described = info(client, code)
    assert described["status"] == "active" and described["disabled_at"] is None
    assert client.delete(f"/api/links/{code}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 204
    assert change("POST", "k1-secret", "/enable").status_code == 204
    assert change("POST", "k1-secret", "/enable").status_code == 204  # idempotent

    # A link made without a key has no owner: only an admin key may change it.
    anonymous = client.post("/shorten", json={"url": "https://example.org/anon"}).get_json()["code"]
    assert_error(client.delete(f"/api/links/{anonymous}", headers={"X-API-Key": "k1-secret"}), 403, "not_owner")
    assert client.delete(f"/api/links/{anonymous}", headers={"X-API-Key": ADMIN_KEY}).status_code == 204
    assert_error(client.post("/api/links/nosuchcode/enable", headers={"X-API-Key": ADMIN_KEY}), 404, "not_found")


def test_creates_stay_open_where_keys_are_set_but_a_wrong_key_is_refused(make_app):
    client = make_app(SHORTENER_API_KEYS="k1-secret").test_client()
    assert client.post("/shorten", json={"url": "https://example.org"}).status_code == 201
    assert_error(
        client.post("/shorten", json={"url": "https://example.org"}, headers={"X-API-Key": "k1-secre"}),
        401,
        "unauthorized",
    )


def test_creates_need_a_key_when_the_configuration_says_so(make_app):
    client = make_app(SHORTENER_API_KEYS="k1-secret, k2-secret", SHORTENER_CREATE_NEEDS_KEY="on").test_client()
    assert_error(client.post("/shorten", json={"url": "https://example.org"}), 401, "unauthorized")
    created = client.post("/shorten", json={"url": "https://example.org"}, headers={"Authorization": "Bearer k2-secret"})
    assert created.status_code == 201
    code = created.get_json()["code"]
    # Reads and redirects stay open.
    assert client.get(f"/{code}").status_code == 302
    assert client.get(f"/api/links/{code}").status_code == 200
    # Required but none configured: the 403 says how to configure them.
    unkeyed = make_app(SHORTENER_CREATE_NEEDS_KEY="on").test_client()
    assert_error(unkeyed.post("/shorten", json={"url": "https://example.org"}), 403, "keys_not_configured")


def test_enable_drops_the_tombstone_so_the_cache_serves_the_link_again(client, redis_url):
    code = client.post("/shorten", json={"url": "https://example.org/again"}).get_json()["code"]
    assert client.delete(f"/api/links/{code}").status_code == 204
    cache = redis.Redis.from_url(redis_url)
    assert cache.get(key_for(code)) == b""

    assert client.post(f"/api/links/{code}/enable").status_code == 204

    assert cache.get(key_for(code)) is None
    assert client.get(f"/{code}").status_code == 302
    assert cache.get(key_for(code)) == b"https://example.org/again"  # filled again, a hit next time
    cache.close()


def test_enable_without_redis_is_refused_and_changes_nothing(make_app, client):
    code = client.post("/shorten", json={"url": "https://example.org/buried"}).get_json()["code"]
    assert client.delete(f"/api/links/{code}").status_code == 204
    no_redis = admin_client(make_app(REDIS_URL="redis://127.0.0.1:1/0", SHORTENER_ADMIN_KEYS=ADMIN_KEY))

    # The tombstone would go on answering 410 from the cache while Postgres says active.
    assert_error(no_redis.post(f"/api/links/{code}/enable"), 503, "cache_unavailable")
    assert info(client, code)["status"] == "disabled"
    assert_error(client.get(f"/{code}"), 410, "link_disabled")


# --- refusals: the negative cache ------------------------------------------


def test_an_unknown_code_costs_one_query_then_none_while_its_refusal_is_cached(app, client, monkeypatch, redis_url):
    code = unique("unknown")
    statements = Statements(monkeypatch)

    assert_error(client.get(f"/{code}"), 404, "not_found")
    assert statements.count() == 1  # its URL, expiry and state in one SELECT
    for _ in range(3):
        assert_error(client.get(f"/{code}"), 404, "not_found")
    assert statements.count() == 0  # Redis remembers the refusal
    cache = redis.Redis.from_url(redis_url)
    assert 0 < cache.pttl(refusal_key_for(code)) <= app.config["CACHE_REFUSAL_SECONDS"] * 1000
    cache.close()


def disable(client, database_url, code):
    assert client.delete(f"/api/links/{code}").status_code == 204


def expire(client, database_url, code):
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE links SET expires_at = now() - interval '1 second' WHERE code = %s", (code,))


@pytest.mark.parametrize(("end", "refusal"), [(disable, "link_disabled"), (expire, "link_expired")])
def test_a_disabled_or_expired_link_costs_one_query_then_none(client, monkeypatch, database_url, end, refusal):
    code = client.post("/shorten", json={"url": "https://example.org/ended"}).get_json()["code"]
    end(client, database_url, code)
    statements = Statements(monkeypatch)

    assert_error(client.get(f"/{code}"), 410, refusal)
    assert statements.count() == 1
    assert_error(client.get(f"/{code}"), 410, refusal)
    assert statements.count() == 0


def test_enable_forgets_the_cached_refusal_at_once(client):
    code = client.post("/shorten", json={"url": "https://example.org/back"}).get_json()["code"]
    assert client.delete(f"/api/links/{code}").status_code == 204
    assert_error(client.get(f"/{code}"), 410, "link_disabled")  # now remembered by Redis

    assert client.post(f"/api/links/{code}/enable").status_code == 204

    assert client.get(f"/{code}").headers["Location"] == "https://example.org/back"


def test_a_custom_code_created_after_a_visit_answers_at_once(client):
    code = f"new-{uuid.uuid4().hex[:8]}"
    assert_error(client.get(f"/{code}"), 404, "not_found")  # now remembered by Redis

    assert client.post("/shorten", json={"url": "https://example.org/fresh", "code": code}).status_code == 201

    assert client.get(f"/{code}").headers["Location"] == "https://example.org/fresh"


# --- rate limit ------------------------------------------------------------


def test_creates_are_rate_limited_with_retry_after(make_app):
    app = make_app(SHORTENER_CREATE_LIMIT="3/minute")
    client = app.test_client()
    # A fresh client address, so earlier runs' counters do not interfere.
    environ = {"REMOTE_ADDR": f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"}
    statuses = [
        client.post("/shorten", json={"url": "https://example.org"}, environ_base=environ).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 201]
    limited = client.post("/shorten", json={"url": "https://example.org"}, environ_base=environ)
    assert_error(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    # Redirects are not limited.
    code = client.post("/shorten", json={"url": "https://example.org"}, environ_base={"REMOTE_ADDR": "10.255.0.1"})
    assert code.status_code in (201, 429)


def client_address():
    """A client address no other test run has used: earlier runs' counters do not interfere."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"


def test_behind_one_proxy_each_client_has_its_own_bucket_and_cannot_leave_it(make_app):
    # nginx in front sets X-Forwarded-For to the address it saw (or appends it to what the client sent).
    client = make_app(SHORTENER_CREATE_LIMIT="2/minute", SHORTENER_TRUSTED_PROXY_HOPS="1").test_client()
    first, second = client_address(), client_address()

    def create(forwarded_for):
        return client.post("/shorten", json={"url": "https://example.org"},
                           headers={"X-Forwarded-For": forwarded_for})

    assert [create(first).status_code for _ in range(2)] == [201, 201]
    assert_error(create(first), 429, "rate_limited")
    assert create(second).status_code == 201  # another client, another bucket
    # What the client wrote itself comes before what the proxy appended: the proxy's entry is the client.
    assert_error(create(f"{client_address()}, {first}"), 429, "rate_limited")


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(make_app):
    client = make_app(SHORTENER_CREATE_LIMIT="1/minute").test_client()
    environ = {"REMOTE_ADDR": client_address()}

    def create():
        return client.post("/shorten", json={"url": "https://example.org"}, environ_base=environ,
                           headers={"X-Forwarded-For": client_address()})

    assert create().status_code == 201
    assert_error(create(), 429, "rate_limited")


KEY_FAILURES = {"SHORTENER_API_KEYS": "k1-secret", "SHORTENER_ADMIN_KEYS": ADMIN_KEY,
                "SHORTENER_KEY_FAILURE_LIMIT": "3/minute"}


def test_a_client_that_sends_wrong_keys_is_refused_every_key_for_the_window(make_app):
    client = admin_client(make_app(**KEY_FAILURES))
    code = client.post("/shorten", json={"url": "https://example.org"}).get_json()["code"]
    guesser = {"REMOTE_ADDR": client_address()}

    def send(key, method="post", path="/shorten", **kwargs):
        return getattr(client, method)(path, headers={"X-API-Key": key}, environ_base=guesser, **kwargs)

    for wrong in ("k1", "k2", "k3"):
        assert_error(send(wrong, json={"url": "https://example.org"}), 401, "unauthorized")
    limited = send("k4", "delete", f"/api/links/{code}")
    assert_error(limited, 429, "rate_limited")
    assert "wrong API keys" in limited.get_json()["error"]["message"]
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    # The right key too, or a 2xx among the 429s would tell the guesser it found one.
    assert_error(send("k1-secret", json={"url": "https://example.org"}), 429, "rate_limited")
    assert_error(send(ADMIN_KEY, "post", f"/api/links/{code}/enable"), 429, "rate_limited")
    # What needs no key stays open to it; other clients are not affected.
    assert client.post("/shorten", json={"url": "https://example.org"}, environ_base=guesser,
                       headers={"X-API-Key": ""}).status_code == 201
    assert client.delete(f"/api/links/{code}").status_code == 204
    # And the document says so.
    document = client.get("/openapi.json").get_json()
    keyed = (("/shorten", "post"), ("/api/links/{code}", "delete"), ("/api/links/{code}/enable", "post"))
    for path, method in keyed:
        assert "3/minute" in document["paths"][path][method]["responses"]["429"]["description"]


def test_right_keys_do_not_count_and_wrong_keys_fail_open_without_redis(make_app):
    guesser = {"REMOTE_ADDR": client_address()}
    client = make_app(**KEY_FAILURES).test_client()
    for _ in range(5):
        assert client.post("/shorten", json={"url": "https://example.org"}, environ_base=guesser,
                           headers={"X-API-Key": "k1-secret"}).status_code == 201
    no_redis = make_app(**KEY_FAILURES, REDIS_URL="redis://127.0.0.1:9/0").test_client()  # the discard port
    for _ in range(5):
        assert_error(no_redis.post("/shorten", json={"url": "https://example.org"}, environ_base=guesser,
                                   headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert no_redis.post("/shorten", json={"url": "https://example.org"}, environ_base=guesser,
                         headers={"X-API-Key": "k1-secret"}).status_code == 201


@pytest.mark.parametrize("value", ["off", "0", "none", ""])
def test_rate_limit_can_be_disabled(make_app, value):
    app = make_app(SHORTENER_CREATE_LIMIT=value)
    assert app.extensions["shortener.limiter"] is None


# --- hostile input ---------------------------------------------------------

HOSTILE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "ftp://example.org/",
    "gopher://example.org/",
    "http:/example.org",
    "http:example.org",
    "//example.org/path",
    "http://",
    "http://:80/",
    "http://[::1",
    "http://example.org:99999/",
    "http://example.org:-1/",
    "http://exa mple.org/",
    "http://example.org/\r\nSet-Cookie: x=1",
    "http://example.org/\x00",
    "http://example.org/\u2028",
    "https://example.org/" + "a" * 3000,
    "http://./",
    "",
    None,
    123,
    True,
    ["http://example.org"],
    {"href": "http://example.org"},
]


@pytest.mark.parametrize("url", HOSTILE_URLS, ids=lambda u: repr(u)[:40])
def test_hostile_urls_are_4xx_json(client, url):
    response = client.post("/shorten", json={"url": url})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] in {"invalid_url", "url_too_long", "missing_url"}


HOSTILE_BODIES = [
    (b"", "application/json", 400),
    (b"null", "application/json", 400),
    (b"[]", "application/json", 400),
    (b'"http://example.org"', "application/json", 400),
    (b"{'url': 'http://example.org'}", "application/json", 400),
    (b'{"url": "http://example.org"', "application/json", 400),
    (b"\xff\xfe\x00", "application/json", 400),
    (b'{"url": "http://example.org", "url": 1}', "application/json", 400),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400),
    (b'{"url": "http://example.org"}', "text/plain", 415),
    (b'{"url": "http://example.org"}', "application/x-www-form-urlencoded", 415),
    (b'{"url": "http://example.org"}', "multipart/form-data; boundary=x", 415),
    (b'{"url": "' + b"a" * 70_000 + b'"}', "application/json", 413),
]


@pytest.mark.parametrize(("data", "content_type", "status"), HOSTILE_BODIES, ids=lambda v: repr(v)[:30])
def test_hostile_bodies_are_4xx_json(client, data, content_type, status):
    response = client.post("/shorten", data=data, content_type=content_type)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/%00",
        "/..%2f..%2fetc%2fpasswd",
        "/' OR '1'='1",
        "/a" * 100,
        "/%ff%fe",
        "/api/links/%00",
        "/api/links/" + "x" * 500,
    ],
)
def test_hostile_paths_are_404_json(client, path):
    response = client.get(path)
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "not_found"


def test_sql_looking_custom_code_and_url_are_inert(client, database_url):
    assert_error(
        client.post("/shorten", json={"url": "https://example.org", "code": "x'; DROP TABLE links;--"}),
        400,
        "invalid_code",
    )
    url = "https://example.org/?q=';DROP%20TABLE%20links;--"
    code = client.post("/shorten", json={"url": url}).get_json()["code"]
    assert client.get(f"/{code}").headers["Location"] == url
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('links')").fetchone() == ("links",)


# --- OpenAPI, metrics ------------------------------------------------------


def test_openapi_document_lists_every_route(app, client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served_document = response.get_json()
    assert served_document == json.loads(json.dumps(document(app.config)))
    documented = {(path, method.upper()) for path, ops in served_document["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_new_metrics_are_exposed(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert 'shortener_dependency_up{dependency="postgres"} 1.0' in text
    assert 'shortener_dependency_up{dependency="redis"} 1.0' in text
    assert sample("shortener_process_resident_memory_bytes") > 10_000_000
    assert sample("shortener_process_cpu_seconds_total") > 0


def test_codes_never_shadow_routes():
    for route in ("health", "metrics", "api", "shorten", "openapi.json"):
        assert codes.is_reserved(route)
