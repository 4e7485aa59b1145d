"""The real Postgres stopped mid-test: bounded 503s, cached redirects, recovery without restart."""

import json
import time

import pytest


DEADLINE = 0.5
BACKOFF = 1.0


@pytest.fixture
def app(make_app):
    return make_app(DATABASE_DEADLINE_SECONDS=DEADLINE, DATABASE_BACKOFF_SECONDS=BACKOFF)


def timed(call):
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_postgres_stopped_then_restarted(app, data_stack, capsys):
    client = app.test_client()
    cached = client.post("/shorten", json={"url": "https://example.org/cached"}).get_json()["code"]
    uncached = client.post("/shorten", json={"url": "https://example.org/uncached"}).get_json()["code"]
    assert client.get(f"/{cached}").status_code == 302  # warms the cache, 1 click

    data_stack.pause_service("postgres")
    try:
        # The first request to need Postgres finds it down within its deadline...
        missed, missed_s = timed(lambda: client.get(f"/{uncached}"))
        # ...and the next ones fail fast (or use the cache) while the breaker is open.
        followed, followed_s = timed(lambda: client.get(f"/{cached}"))
        created, created_s = timed(lambda: client.post("/shorten", json={"url": "https://example.org/x"}))
        described, described_s = timed(lambda: client.get(f"/api/links/{cached}"))
        ready, ready_s = timed(lambda: client.get("/health/ready"))
        live = client.get("/health")
        metrics_text = client.get("/metrics").get_data(as_text=True)
    finally:
        data_stack.resume_service("postgres")

    # Served from the cache; its click waits in Redis (with the one before) until Postgres is back.
    assert followed.status_code == 302 and followed.headers["Location"] == "https://example.org/cached"
    for response in (missed, created, described):
        assert_error(response, 503, "database_unavailable")
    # Ready all the same: the cache keeps serving redirects.
    assert ready.status_code == 200 and ready.get_json()["dependencies"]["postgres"] == "down"
    assert live.status_code == 200
    assert 'shortener_dependency_up{dependency="postgres"} 0.0' in metrics_text
    # Nothing hangs: the first answer comes within the deadline, the rest at once.
    assert missed_s < DEADLINE + 1.0, missed_s
    for seconds in (followed_s, created_s, described_s, ready_s):
        assert seconds < 0.2, (missed_s, followed_s, created_s, described_s, ready_s)

    # The clicks that waited in Redis during the outage are written by the worker's flusher,
    # with no request needed.
    cache = app.extensions["shortener.cache"]
    deadline = time.monotonic() + 10
    while cache.pending_clicks() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cache.pending_clicks() == 0

    # Recovery without a restart of the app.
    deadline = time.monotonic() + 20
    while True:
        response = client.post("/shorten", json={"url": "https://example.org/after"})
        if response.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert client.get("/health/ready").status_code == 200
    assert client.get(f"/{uncached}").status_code == 302
    assert client.get(f"/{cached}").status_code == 302
    # 1 before, 1 kept in Redis during the outage, 1 after (flushed within a second).
    deadline = time.monotonic() + 5
    while client.get(f"/api/links/{cached}").get_json()["clicks"] < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get(f"/api/links/{cached}").get_json()["clicks"] == 3

    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    states = [
        l["state"] for l in lines if l.get("logger") == "shortener.dependency" and l.get("dependency") == "postgres"
    ]
    assert states == ["down", "up"], states
    access = [l for l in lines if l.get("logger") == "shortener.access"]
    assert all(l["status"] != 500 for l in access)


def test_a_locked_table_is_a_bounded_503_and_not_an_outage(make_app, database_url):
    import psycopg

    app = make_app(DATABASE_STATEMENT_TIMEOUT_MS=300)
    client = app.test_client()
    assert client.post("/shorten", json={"url": "https://example.org/l"}).status_code == 201
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
        response, seconds = timed(lambda: client.post("/shorten", json={"url": "https://example.org/m"}))
    assert_error(response, 503, "database_unavailable")
    assert seconds < 1.5
    # The statement timed out, Postgres did not go away: the next request is served.
    assert not app.extensions["shortener.db"].breaker.is_open
    assert client.post("/shorten", json={"url": "https://example.org/n"}).status_code == 201



def test_a_full_disk_fails_writes_with_a_counted_503_and_reads_go_on(make_app, database_url):
    import psycopg
    from prometheus_client import REGISTRY

    def refused() -> float:
        return REGISTRY.get_sample_value("shortener_database_refusals_total", {"error": "DiskFull"}) or 0.0

    client = make_app().test_client()
    created = client.post("/shorten", json={"url": "https://example.org/disk"})
    assert created.status_code == 201
    code, before = created.get_json()["code"], refused()
    # Postgres's own answer to a write it cannot extend a file for (SQLSTATE 53100), without filling a disk.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$")
        conn.execute("CREATE TRIGGER disk_full BEFORE INSERT ON links FOR EACH ROW EXECUTE FUNCTION disk_full()")
        try:
            assert_error(client.post("/shorten", json={"url": "https://example.org/full"}), 503,
                         "database_unavailable")
            assert refused() == before + 1
            # Postgres answered: not an outage. Reads go on.
            assert not client.application.extensions["shortener.db"].breaker.is_open
            assert client.get(f"/api/links/{code}").status_code == 200
        finally:
            conn.execute("DROP TRIGGER disk_full ON links")
            conn.execute("DROP FUNCTION disk_full()")
    assert client.post("/shorten", json={"url": "https://example.org/room"}).status_code == 201
