"""The shortener under a real Gunicorn: concurrent creates, multiprocess metrics, graceful shutdown."""

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests
from shortener_server import Server

@pytest.fixture
def server(tmp_path, database_url, redis_url):
    server = Server(tmp_path, database_url, redis_url)
    yield server
    server.stop()


def test_200_concurrent_creates_get_200_distinct_resolvable_codes(server):
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=50))

    def create(i):
        response = session.post(server.url + "/shorten", json={"url": f"https://example.org/c/{i}"}, timeout=15)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(create, range(200)))

    assert [status for status, _ in results] == [201] * 200, [b for s, b in results if s != 201][:3]
    codes = {body["code"] for _, body in results}
    assert len(codes) == 200

    def follow(item):
        i, body = item
        response = session.get(f"{server.url}/{body['code']}", allow_redirects=False, timeout=15)
        return response.status_code, response.headers.get("Location"), f"https://example.org/c/{i}"

    with ThreadPoolExecutor(max_workers=50) as pool:
        followed = list(pool.map(follow, enumerate(body for _, body in results)))
    assert all(status == 302 and location == expected for status, location, expected in followed)

    # Summed over the 4 workers by the multiprocess collector.
    text = session.get(server.url + "/metrics", timeout=5).text
    assert "shortener_links_created_total 200.0" in text
    assert "shortener_redirects_total 200.0" in text
    memory = [l for l in text.splitlines() if l.startswith("shortener_process_resident_memory_bytes ")]
    assert memory and float(memory[0].split()[1]) > 4 * 10_000_000
    assert 'shortener_dependency_up{dependency="postgres"} 1.0' in text

    # One JSON access line per request, with the request id echoed.
    response = session.get(server.url + "/health", headers={"X-Request-ID": "gunicorn-probe"}, timeout=5)
    assert response.headers["X-Request-ID"] == "gunicorn-probe"
    time.sleep(0.2)
    access = [l for l in server.lines() if l.get("logger") == "shortener.access"]
    assert len([l for l in access if l["route"] == "/shorten"]) == 200
    assert {"timestamp", "level", "message", "request_id", "method", "route", "status", "duration_ms"} <= set(access[0])
    assert any(l["request_id"] == "gunicorn-probe" for l in access)


def test_sigterm_lets_an_in_flight_request_finish(server, database_url):
    # Warm the schema, then hold a lock that makes the next create wait.
    assert requests.post(server.url + "/shorten", json={"url": "https://example.org/w"}, timeout=5).status_code == 201
    result = {}

    def create():
        response = requests.post(server.url + "/shorten", json={"url": "https://example.org/inflight"}, timeout=15)
        result["status"] = response.status_code

    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
        request = threading.Thread(target=create)
        request.start()
        time.sleep(0.5)  # the create is now blocked on the lock, inside a worker
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None, "gunicorn quit with a request in flight"
        conn.rollback()  # release the lock; the create can commit
    request.join(timeout=15)

    assert result.get("status") == 201
    assert server.process.wait(timeout=25) == 0


def test_workers_stopped_under_traffic_flush_their_clicks(tmp_path, database_url, redis_url):
    """Clicks counted in Redis reach Postgres when Gunicorn stops its workers, with no flush interval left to wait."""
    server = Server(tmp_path, database_url, redis_url, workers=2, CLICK_FLUSH_SECONDS="3600")
    try:
        session = requests.Session()
        code = session.post(server.url + "/shorten", json={"url": "https://example.org/exit"}, timeout=5).json()["code"]
        statuses = []

        def visit(_):
            statuses.append(session.get(f"{server.url}/{code}", allow_redirects=False, timeout=10).status_code)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(visit, range(300)))
    finally:
        server.stop()  # SIGTERM: each worker's exit hook writes what is pending
    assert statuses == [302] * 300
    with psycopg.connect(database_url) as conn:
        (clicks,) = conn.execute("SELECT clicks FROM links WHERE code = %s", (code,)).fetchone()
    assert clicks == 300
