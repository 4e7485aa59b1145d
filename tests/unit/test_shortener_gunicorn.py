"""The shortener under a real Gunicorn: concurrent creates, multiprocess metrics, graceful shutdown."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

SERVICE = Path(__file__).resolve().parents[2] / "service"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A Gunicorn master with its workers, started from the service's own config."""

    def __init__(self, tmp_path, database_url, redis_url, workers=4):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "gunicorn.log"
        env = {
            **os.environ,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "SHORTENER_CREATE_LIMIT": "off",
        }
        self.log = open(self.log_path, "w")  # noqa: SIM115 (open while the server runs)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"],
            cwd=SERVICE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_serving()
        except BaseException:
            # Never leave a Gunicorn behind when the test cannot use it.
            self.stop()
            raise

    def _wait_until_serving(self):
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self):
        if self.log.closed:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def lines(self):
        return [json.loads(l) for l in self.log_path.read_text().splitlines() if l.startswith("{")]


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
