"""A picture of a service shows the copy that answers, and waits for one that is being restarted."""

import http.server
import socket
import threading
import time

import pytest

from harness import views

RESTART = 2.0  # seconds the only copy is away, as Prometheus is in prometheus_restart


class Copies:
    """The part of a stack a view asks: the addresses of a service's copies (replicas or peers), UIs at their root."""

    def __init__(self, *ports: int):
        self.ports = ports

    def instances_of(self, service: str) -> list[str]:
        return [f"{service}-{number}" for number in range(len(self.ports))]

    def ui_url(self, instance: str) -> str:
        return f"http://127.0.0.1:{self.ports[int(instance.rsplit('-', 1)[1])]}"


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DROPPED = (0, b"")  # a copy that stops between the probe and the browser's load


class Restarting(http.server.BaseHTTPRequestHandler):
    """Until it is ready, a copy being restarted answers `early`: 503 (Prometheus starting), or a page without
    its rules (Prometheus stopping); then the alerts page with the rule."""

    ready_at = 0.0
    early = (503, b"Service Unavailable")

    def do_GET(self):
        ready = time.monotonic() >= self.ready_at
        if self.early is DROPPED and not ready and "python-requests" not in self.headers.get("User-Agent", ""):
            return  # the browser's load fails (an empty answer), although the probe just before it was served
        status, body = (200, b"<h1>alerts</h1><p>ServiceDown</p>") if ready or self.early is DROPPED else self.early
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def _serve_later(port: int, after: float) -> http.server.HTTPServer:
    """A page on the port from `after` seconds on: until then, connections are refused."""
    server = http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler, bind_and_activate=False)

    def start():
        time.sleep(after)
        server.server_bind()
        server.server_activate()
        server.serve_forever()

    threading.Thread(target=start, daemon=True).start()
    return server


def test_a_view_shows_the_copy_that_answers_when_the_first_is_down(chromium, monkeypatch):
    """At its first try, every time: a copy that refuses must not spoil the try at the next one (Chromium's error
    page for the refused one, committed late, interrupted the next navigation half of the time)."""
    monkeypatch.setattr(views, "PATIENCE", 0)  # one try at each copy
    down, up = _unused_port(), _unused_port()
    server = _serve_later(up, after=0)
    page = chromium.page()
    try:
        for _ in range(20):
            assert views._open(page, Copies(down, up), "alertmanager", "/") == f"http://127.0.0.1:{up}"
    finally:
        page.context.close()
        server.shutdown()


def test_a_view_shows_the_copy_that_answers_when_the_first_hangs(chromium):
    up = _unused_port()
    server = _serve_later(up, after=0)
    with socket.socket() as paused:  # accepts connections and never answers, as a paused container
        paused.bind(("127.0.0.1", 0))
        paused.listen()
        page = chromium.page()
        try:
            assert views._open(page, Copies(paused.getsockname()[1], up), "alertmanager", "/") == f"http://127.0.0.1:{up}"
        finally:
            page.context.close()
            server.shutdown()


def test_a_view_waits_for_a_copy_being_restarted_instead_of_showing_connection_refused(chromium):
    only = _unused_port()
    server = _serve_later(only, after=RESTART)
    page = chromium.page()
    began = time.monotonic()
    try:
        assert views._open(page, Copies(only), "prometheus", "/") == f"http://127.0.0.1:{only}"
        assert RESTART <= time.monotonic() - began < views.PATIENCE
    finally:
        page.context.close()
        server.shutdown()


@pytest.mark.parametrize("early", [(503, b"Service Unavailable"), (200, b"<h1>alerts</h1>"), DROPPED],
                         ids=["503 while it starts", "no rules while it stops", "stopped after the probe"])
def test_a_view_waits_for_a_restarted_copy_to_show_the_alert(chromium, early):
    Restarting.ready_at, Restarting.early = time.monotonic() + RESTART, early
    server = http.server.HTTPServer(("127.0.0.1", 0), Restarting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = chromium.page()
    try:
        views._open(page, Copies(server.server_address[1]), "prometheus", "/alerts",
                    then=lambda page: page.get_by_text("ServiceDown", exact=True).click(timeout=views.TRY_MS))
        assert time.monotonic() >= Restarting.ready_at
    finally:
        page.context.close()
        server.shutdown()
