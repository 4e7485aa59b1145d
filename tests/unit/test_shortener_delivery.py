"""Every 5xx is counted with the status the client got, wherever it is made."""

import json
import os
import re
import secrets
import signal
import threading
import time

import psycopg
import pytest
import requests
from prometheus_client import REGISTRY

from harness import config
from shortener_server import Server

# A target stored before hosts were checked: a 64-letter label, which Werkzeug's IDNA encoding
# of the Location header refuses after every Flask handler ran (Gunicorn then answered its own 500).
LEGACY_TARGET = f"https://{'a' * 64}.example.org/"


def legacy_link(database_url: str, app_or_server) -> str:
    """Store a link the way an older release did (no checks), after the schema exists."""
    code = "legacy" + secrets.token_hex(4)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO links (code, url) VALUES (%s, %s)", (code, LEGACY_TARGET))
    return code


def counted(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def numerator_matchers(alert: str) -> list[tuple[str, str, str]]:
    """The label matchers of the 5xx selector in an alert's committed expression, or in the recording rules it reads."""
    rules = config.rules()
    (rule,) = [r for r in rules if r.get("alert") == alert]
    recorded = {r["record"]: r["expr"] for r in rules if "record" in r}
    expr = rule["expr"] + "".join(text for name, text in recorded.items() if name in rule["expr"])
    selector = re.search(r'http_requests_total\{([^}]*status=~"5\.\."[^}]*)\}', expr).group(1)
    return re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selector)


def selected(matchers, labels: dict[str, str]) -> bool:
    """Apply PromQL matchers (fully anchored regexes, as PromQL's) to one series' labels."""
    tests = {
        "=": lambda v, x: v == x,
        "!=": lambda v, x: v != x,
        "=~": lambda v, x: re.fullmatch(x, v) is not None,
        "!~": lambda v, x: re.fullmatch(x, v) is None,
    }
    return all(tests[op](labels.get(name, ""), value) for name, op, value in matchers)


def test_a_response_gunicorn_could_not_send_is_a_counted_json_500(make_app, database_url, capsys):
    app = make_app()
    client = app.test_client()
    assert client.post("/shorten", json={"url": "https://example.org/schema"}).status_code == 201
    code = legacy_link(database_url, app)
    before_302, before_500 = counted("GET", "/<code>", "302"), counted("GET", "/<code>", "500")
    capsys.readouterr()

    response = client.get(f"/{code}", headers={"X-Request-ID": "legacy-1"})

    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert response.headers["X-Request-ID"] == "legacy-1"
    assert counted("GET", "/<code>", "500") == before_500 + 1
    assert counted("GET", "/<code>", "302") == before_302
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    access = [l for l in lines if l.get("logger") == "shortener.access"]
    assert [(l["request_id"], l["status"], l["reason"]) for l in access] == [
        ("legacy-1", 500, "unhandled_exception")
    ]


@pytest.fixture
def server(tmp_path, database_url, redis_url):
    server = Server(tmp_path, database_url, redis_url, workers=1)
    yield server
    server.stop()


def test_under_gunicorn_the_5xx_is_counted_where_high_error_rate_looks(server, database_url):
    assert requests.post(server.url + "/shorten", json={"url": "https://example.org/s"}, timeout=5).status_code == 201
    code = legacy_link(database_url, server)

    response = requests.get(f"{server.url}/{code}", allow_redirects=False, timeout=5,
                            headers={"X-Request-ID": "legacy-gunicorn"})

    # Gunicorn would have answered its own HTML 500 while the app counted a 302.
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert server.metric("http_requests_total", {"method": "GET", "route": "/<code>", "status": "500"}) == 1
    assert server.metric("http_requests_total", {"method": "GET", "route": "/<code>", "status": "302"}) == 0
    # HighErrorRate's committed expression selects that series (Prometheus adds job="app").
    matchers = numerator_matchers("HighErrorRate")
    assert selected(matchers, {"job": "app", "method": "GET", "route": "/<code>", "status": "500"})
    assert not selected(matchers, {"job": "app", "method": "GET", "route": "/<code>", "status": "302"})
    time.sleep(0.2)
    access = [l for l in server.lines() if l.get("logger") == "shortener.access"]
    assert any(l["request_id"] == "legacy-gunicorn" and l["status"] == 500 for l in access)


def test_a_worker_killed_for_its_timeout_counts_the_request_it_held(server, database_url):
    created = requests.post(server.url + "/shorten", json={"url": "https://example.org/t"}, timeout=5).json()
    result = {}

    def describe():
        try:
            result["status"] = requests.get(f"{server.url}/api/links/{created['code']}", timeout=10).status_code
        except requests.RequestException as exc:
            result["error"] = exc

    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE links IN ACCESS EXCLUSIVE MODE")
        request = threading.Thread(target=describe)
        request.start()
        time.sleep(0.5)  # the request now waits on the lock, inside the worker
        (worker,) = server.worker_pids()
        # What Gunicorn's arbiter does to a worker past its timeout.
        os.kill(worker, signal.SIGABRT)
        request.join(timeout=10)
        conn.rollback()

    # The sync worker unwinds through Gunicorn's handle_error, which answers its own 500.
    assert result.get("status") == 500, result
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            value = server.metric("http_requests_total",
                                  {"method": "GET", "route": "/api/links/<code>", "status": "500"})
            break
        except requests.RequestException:
            time.sleep(0.2)  # the master is starting a new worker
    assert value == 1


def test_an_unknown_method_is_one_label_value(make_app):
    client = make_app().test_client()
    before = counted("other", "unmatched", "405")
    for method in ("FOO", "BAR", "PROPFIND"):
        assert client.open("/health", method=method).status_code == 405
    assert counted("other", "unmatched", "405") == before + 3
    assert REGISTRY.get_sample_value("http_requests_total", {"method": "FOO", "route": "unmatched", "status": "405"}) is None
