"""Answers Gunicorn writes itself (mostly to requests it cannot parse): each counted and logged once, as what it was."""

import json
import os
import re
import signal
import socket
import ssl
import time
import uuid

import pytest
import requests
from gunicorn import glogging
from gunicorn.config import Config
from gunicorn.http import errors
from gunicorn.workers.sync import SyncWorker
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from shortener import delivery, logs, metrics, workers
from shortener_server import Server

HOST = b"Host: test\r\n"

# What a client sends, the status Gunicorn answers, and the method label it is counted under:
# "other" when Gunicorn read no method (or one outside metrics.KNOWN_METHODS).
MALFORMED = {
    "bad_request_line": (b"GARBAGE\r\n\r\n", 400, "other"),
    "bad_header_name": (b"GET /health HTTP/1.1\r\n" + HOST + b"Bad Header: v\r\n\r\n", 400, "other"),
    "bad_header_value": (b"GET /health HTTP/1.1\r\n" + HOST + b"X-Bad: a\x00b\r\n\r\n", 400, "other"),
    # Gunicorn keeps the request it parsed on these errors: its method is the label, bounded.
    "two_content_lengths": (b"POST /shorten HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
                            400, "POST"),
    "unknown_method_bad_length": (b"BREW /pot HTTP/1.1\r\n" + HOST + b"Content-Length: x\r\n\r\n", 400, "other"),
    "bogus_transfer_coding": (b"POST /shorten HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: bogus\r\n\r\n", 501, "other"),
    "request_line_too_long": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414, "other"),
    "too_many_headers": (b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n",
                         431, "other"),
    "unknown_http_version": (b"GET /health HTTP/9.9\r\n" + HOST + b"\r\n", 400, "other"),
    "unmet_expectation": (b"GET /health HTTP/1.1\r\n" + HOST + b"Expect: tea\r\n\r\n", 417, "other"),
    "contradictory_scheme_headers": (
        b"GET /health HTTP/1.1\r\n" + HOST + b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n", 400, "other"),
}

WORKER_ARGS = {
    "sync": "",  # gunicorn.conf.py's own worker
    # One thread, so that the malformed request lands on the thread that served the one before.
    "gthread": "--worker-class shortener.workers.CountingThreadWorker --threads 1",
}
# Whether the malformed request follows the normal one on its connection (else on a new one, from the same worker).
# The sync worker closes every connection after one response.
KEPT_ALIVE = {"sync": (False,), "gthread": (False, True)}


@pytest.fixture(scope="module", params=sorted(WORKER_ARGS))
def server(request, tmp_path_factory, database_url, redis_url):
    tmp_path = tmp_path_factory.mktemp(request.param)
    server = Server(tmp_path, database_url, redis_url, workers=1, GUNICORN_CMD_ARGS=WORKER_ARGS[request.param])
    server.worker = request.param
    yield server
    server.stop()


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def read_response(sock: socket.socket) -> int:
    """Read one response (its headers and Content-Length body); return its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split(b" ", 2)[1])


def normal_request(sock: socket.socket, request_id: str) -> None:
    sock.sendall(b"GET /health HTTP/1.1\r\n" + HOST + b"X-Request-ID: " + request_id.encode() + b"\r\n\r\n")
    assert read_response(sock) == 200


def send_after_a_normal_request(server, payload: bytes, previous_id: str, kept_alive: bool) -> int:
    """Send a normal request, then the payload (on the same connection if kept_alive); return the payload's status."""
    sock = connect(server)
    try:
        normal_request(sock, previous_id)
        if not kept_alive:
            sock.close()  # at once: Gunicorn lingers on a connection it closed until the client closes it too
            sock = connect(server)
        sock.sendall(payload)
        return read_response(sock)
    finally:
        sock.close()


def counts(server) -> dict[tuple[str, str, str], float]:
    """http_requests_total by (method, route, status), summed over workers."""
    text = requests.get(server.url + "/metrics", timeout=5).text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "http_requests"]
    return {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
            for s in family.samples if s.name == "http_requests_total"}


def increase(before: dict, after: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def access_lines(server) -> list[dict]:
    return [line for line in server.lines() if line.get("logger") == "shortener.access"]


def assert_counted_once_as_sent(server, case: str, previous_id: str, logged_before: int, before: dict) -> None:
    """Gunicorn's answer counted once on 'unmatched', the request before it once as its 200; each logged once."""
    _, status, method = MALFORMED[case]
    change = increase(before, counts(server))
    # The scrape that took `before` is counted too.
    assert change == {("GET", "/health", "200"): 1, ("GET", "/metrics", "200"): 1,
                      (method, metrics.UNMATCHED, str(status)): 1}, change

    lines = access_lines(server)
    ids = [line["request_id"] for line in lines]
    assert len(ids) == len(set(ids)), "a request id was logged twice"
    new = lines[logged_before:]
    assert [line["status"] for line in new if line["request_id"] == previous_id] == [200]
    answers = [(line["status"], line["method"]) for line in new if line["route"] == metrics.UNMATCHED]
    assert answers == [(status, method)], answers


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_request_gunicorn_cannot_parse_is_counted_once_as_what_it_was(server, case):
    payload, status, _ = MALFORMED[case]
    for kept_alive in KEPT_ALIVE[server.worker]:
        previous_id = f"{server.worker}-{case}-{uuid.uuid4().hex[:6]}"
        before = counts(server)
        logged_before = len(access_lines(server))
        assert send_after_a_normal_request(server, payload, previous_id, kept_alive) == status

        assert_counted_once_as_sent(server, case, previous_id, logged_before, before)


def test_an_answer_gunicorn_writes_after_the_apps_is_counted_on_its_own(server):
    """A chunked body the app left unread and Gunicorn cannot drain: gthread writes a 400 after the app's 200."""
    before = counts(server)
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n")
        received = b"".join(iter(lambda: sock.recv(65536), b""))

    # The sync worker closes the connection after the app's answer: it never reads the body.
    answers = {"sync": [b"200"], "gthread": [b"200", b"400"]}[server.worker]
    assert re.findall(rb"^HTTP/1\.1 (\d{3}) ", received, re.M) == answers
    expected = {("GET", "/health", "200"): 1, ("GET", "/metrics", "200"): 1}
    if server.worker == "gthread":
        expected[("GET", metrics.UNMATCHED, "400")] = 1
    assert increase(before, counts(server)) == expected
    ids = [line["request_id"] for line in access_lines(server)]
    assert len(ids) == len(set(ids)), "a request id was logged twice"


def test_a_worker_killed_while_reading_a_request_counts_its_500_once(tmp_path, database_url, redis_url):
    """The sync worker's timeout (SIGABRT) while a slow client sends its request line: Gunicorn answers 500."""
    server = Server(tmp_path, database_url, redis_url, workers=1)
    try:
        before = counts(server)
        with connect(server) as sock:
            normal_request(sock, "before-the-slow-client")
        with connect(server) as sock:
            sock.sendall(b"GET /hea")
            time.sleep(0.5)  # the worker now waits for the rest of the request line
            (worker,) = server.worker_pids()
            os.kill(worker, signal.SIGABRT)  # what Gunicorn's arbiter does to a worker past its timeout
            assert read_response(sock) == 500
        deadline = time.monotonic() + 10
        while True:
            try:
                after = counts(server)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline
                time.sleep(0.2)  # the master is starting a new worker
        change = increase(before, after)
        assert change == {("GET", "/health", "200"): 1, ("GET", "/metrics", "200"): 1,
                          (metrics.OTHER_METHOD, metrics.UNMATCHED, "500"): 1}, change
        ids = [line["request_id"] for line in access_lines(server)]
        assert len(ids) == len(set(ids)), "a request id was logged twice"
    finally:
        server.stop()


def sync_worker(worker_class):
    """A Gunicorn sync worker in this process, with Gunicorn's default settings, to drive by hand."""
    cfg = Config()
    return worker_class(0, os.getpid(), [], None, 30, cfg, glogging.Logger(cfg))


def _body_failing_before_its_first_byte(environ, start_response):
    environ[delivery.ROUTE_KEY] = "/stream"  # as the app's before_request names it
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        raise RuntimeError("the body failed before its first byte")
        yield b""  # a generator: it fails when Gunicorn asks for the first chunk

    return body()


def serve_one(worker, listener, request: bytes) -> int:
    """Have the worker serve one connection carrying the request; return the status it answered."""
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(request)
        theirs.shutdown(socket.SHUT_WR)  # the worker's graceful close then needs no wait
        worker.handle(listener, ours, ("127.0.0.1", 1))
        return int(theirs.recv(65536).split(b" ", 2)[1])


def counted(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


def test_a_request_gunicorn_answered_for_is_not_the_next_ones(capsys):
    """A body fails before its first byte: Gunicorn's 500 is counted once; the next request, unparsable, counts too."""
    worker = sync_worker(workers.CountingSyncWorker)
    worker.wsgi = delivery.Delivery(_body_failing_before_its_first_byte)
    logs.configure()
    before = counted("GET", "/stream", 500), counted(metrics.OTHER_METHOD, metrics.UNMATCHED, 400)
    capsys.readouterr()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert serve_one(worker, listener, b"GET /stream HTTP/1.1\r\n" + HOST + b"\r\n") == 500
        assert serve_one(worker, listener, b"GARBAGE\r\n\r\n") == 400

    after = counted("GET", "/stream", 500), counted(metrics.OTHER_METHOD, metrics.UNMATCHED, 400)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    access = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"shortener.access"' in line]
    assert [(line["route"], line["status"]) for line in access] == [("/stream", 500), (metrics.UNMATCHED, 400)]
    assert len({line["request_id"] for line in access}) == 2


def _instance(cls):
    """One of Gunicorn's parse errors (their constructors take nothing or one value)."""
    try:
        return cls()
    except TypeError:
        return cls("x")


# Every error Gunicorn's parser defines, and the others its handle_error tells apart.
GUNICORN_ERRORS = [
    _instance(cls) for _, cls in sorted(vars(errors).items())
    if isinstance(cls, type) and issubclass(cls, errors.ParseException)
] + [ssl.SSLError(1, "bad"), RuntimeError("boom"), SystemExit(1)]


@pytest.mark.parametrize("exc", GUNICORN_ERRORS, ids=lambda exc: type(exc).__name__)
def test_status_of_is_the_status_gunicorn_writes(exc):
    """status_of mirrors Gunicorn's handle_error: ask the real one what it writes on a socket."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sync_worker(SyncWorker).handle_error(None, ours, ("127.0.0.1", 1), exc)
        written = theirs.recv(65536)
    assert workers.status_of(exc) == int(written.split(b" ", 2)[1])
