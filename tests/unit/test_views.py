"""A picture of a service shows the copy that answers, and waits for one that is being restarted."""

import http.server
import socket
import threading
import time

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


class Starting(http.server.BaseHTTPRequestHandler):
    """Answers 503 until it is ready, as Prometheus does while it starts."""

    ready_at = 0.0

    def do_GET(self):
        self.send_response(200 if time.monotonic() >= self.ready_at else 503)
        self.end_headers()
        self.wfile.write(b"<h1>alerts</h1>")

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


def test_a_view_shows_the_copy_that_answers_when_the_first_is_down(chromium):
    down, up = _unused_port(), _unused_port()
    server = _serve_later(up, after=0)
    page = chromium.page()
    try:
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


def test_a_view_waits_for_a_copy_that_answers_503_while_it_starts(chromium):
    Starting.ready_at = time.monotonic() + RESTART
    server = http.server.HTTPServer(("127.0.0.1", 0), Starting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = chromium.page()
    try:
        views._open(page, Copies(server.server_address[1]), "prometheus", "/alerts")
        assert page.text_content("h1") == "alerts" and time.monotonic() >= Starting.ready_at
    finally:
        page.context.close()
        server.shutdown()
