"""The front door (frontdoor/nginx.conf) in front of a real Gunicorn: slow clients, sizes, the one trusted hop."""

import socket
import time
from contextlib import ExitStack

import pytest
import requests

from harness import config
from harness.stack import Stack

# More idle clients than the stack's Gunicorn has workers (2), many times over.
IDLE_CLIENTS = 64
# Long enough for any answer on this machine, far shorter than the idle clients wait.
ANSWER_WITHIN = 10.0


@pytest.fixture(scope="module")
def shortener():
    """Postgres, Redis, the app and its front door, as users get them."""
    with Stack(services=("postgres", "redis", "app", "frontdoor"), name="frontdoor-test") as stack:
        yield stack


def _idle_clients(stack: ExitStack, address: tuple[str, int]) -> None:
    """Connections that send half a request line and then nothing (a slowloris client)."""
    for _ in range(IDLE_CLIENTS):
        client = stack.enter_context(socket.create_connection(address, timeout=ANSWER_WITHIN))
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_idle_clients_hold_the_front_door_not_the_workers(shortener):
    with ExitStack() as idle:
        _idle_clients(idle, _host_port(shortener.url("frontdoor")))
        started = time.monotonic()
        answer = requests.get(shortener.url("frontdoor") + "/health", timeout=ANSWER_WITHIN)
        took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    print(f"the {IDLE_CLIENTS + 1}th client through the front door: {answer.status_code} in {took * 1000:.1f} ms")


def test_the_same_idle_clients_starve_gunicorn_without_it(shortener):
    """The test above can fail: straight to Gunicorn's sync workers, the same clients take every worker."""
    with ExitStack() as idle:
        _idle_clients(idle, _host_port(shortener.url("app")))
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(shortener.url("app") + "/health", timeout=(ANSWER_WITHIN, 3.0))


def test_a_body_over_the_apps_limit_is_refused_at_the_door(shortener):
    body = b'{"url": "https://example.org/' + b"a" * 70_000 + b'"}'
    answer = requests.post(shortener.url("frontdoor") + "/shorten", data=body,
                           headers={"Content-Type": "application/json"}, timeout=ANSWER_WITHIN)
    assert answer.status_code == 413


def test_a_client_that_stops_sending_its_headers_is_cut_off(shortener):
    with socket.create_connection(_host_port(shortener.url("frontdoor")), timeout=30) as client:
        client.sendall(b"GET /health HTTP/1.1\r\n")
        started = time.monotonic()
        while client.recv(4096):  # nginx answers 408 or simply closes: either way the connection ends
            pass
    assert time.monotonic() - started < 20  # client_header_timeout (5 s), never the client's own patience


def test_short_links_name_the_front_door_whatever_host_the_client_sends(shortener):
    answer = requests.post(shortener.url("frontdoor") + "/shorten", json={"url": "https://example.org/door"},
                           headers={"Host": "evil.example"}, timeout=ANSWER_WITHIN)
    assert answer.status_code == 201, answer.text
    assert answer.json()["short_url"].startswith(shortener.url("frontdoor") + "/")


def test_the_committed_file_is_run_with_only_this_stacks_addresses(shortener):
    rendered = (shortener.workdir / "frontdoor" / "nginx.conf").read_text()
    committed = (config.FRONTDOOR_DIR / "nginx.conf").read_text()
    assert rendered == (committed.replace("127.0.0.1:5000", shortener.address("app"))
                        .replace("127.0.0.1:8081", shortener.address("frontdoor-status"))
                        .replace("127.0.0.1:9514", shortener.address("frontdoor-syslog"))
                        .replace("127.0.0.1:80 ", shortener.address("frontdoor") + " "))


def _answers_of_the_door(stack: Stack) -> dict[tuple[str, str], float]:
    """The front door's answers so far, by (status, answered_by), as its log exporter counts them."""
    counts = {}
    for line in requests.get(stack.url("frontdoor-log") + "/metrics", timeout=ANSWER_WITHIN).text.splitlines():
        if line.startswith("frontdoor_responses_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            counts[labels["status"].strip('"'), labels["answered_by"].strip('"')] = float(line.rsplit(" ", 1)[1])
    return counts


def _counted(stack: Stack, before: dict, expected: dict, within: float = 10.0) -> dict:
    """What the exporter counted since `before`, once it holds at least what is expected (syslog lines travel)."""
    deadline = time.monotonic() + within
    while True:
        now = _answers_of_the_door(stack)
        grown = {key: now[key] - before.get(key, 0.0) for key in now if now[key] != before.get(key, 0.0)}
        if all(grown.get(key, 0) >= n for key, n in expected.items()) or time.monotonic() > deadline:
            return grown
        time.sleep(0.2)


def _raw(stack: Stack, request: bytes) -> bytes:
    with socket.create_connection(_host_port(stack.url("frontdoor")), timeout=ANSWER_WITHIN) as client:
        client.sendall(request)
        return client.recv(4096)


def test_every_answer_of_the_door_is_counted_once_as_what_it_was_and_by_whom(shortener):
    with Stack(services=("postgres", "redis", "app", "frontdoor-log", "frontdoor"), name="frontdoor-log-test") as stack:
        before = _answers_of_the_door(stack)
        statuses = [
            _raw(stack, b"NOT A REQUEST LINE\r\n\r\n")[:12],
            _raw(stack, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")[:12],
            _raw(stack, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")[:12],
            _raw(stack, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[:12],
        ]
        assert statuses == [b"HTTP/1.1 400", b"HTTP/1.1 413", b"HTTP/1.1 414", b"HTTP/1.1 200"]
        expected = {("400", "frontdoor"): 1, ("413", "frontdoor"): 1, ("414", "frontdoor"): 1, ("200", "app"): 1}
        assert _counted(stack, before, expected) == expected
        # Its exporter's read of stub_status is no answer to a user; a last request, counted after it, shows it
        # was left out (one nginx worker sends its lines in order).
        requests.get(stack.url("frontdoor-status") + "/stub_status", timeout=ANSWER_WITHIN)
        _raw(stack, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        expected[("200", "app")] += 1
        assert _counted(stack, before, expected) == expected
        stack.pause_service("app")  # Gunicorn gone: the door's own 502
        try:
            before = _answers_of_the_door(stack)
            assert requests.get(stack.url("frontdoor") + "/health", timeout=ANSWER_WITHIN).status_code == 502
            assert _counted(stack, before, {("502", "frontdoor"): 1}) == {("502", "frontdoor"): 1}
        finally:
            stack.resume_service("app")
