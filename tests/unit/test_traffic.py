"""The drills' background traffic: every answer counted, and every link it was answered 201 for checked at the end."""

import collections
import http.server
import json
import threading
import time

from harness.chaos.traffic import Traffic


def _shortener(links: dict[str, str], redirected: collections.Counter | None = None) -> http.server.HTTPServer:
    """A stand-in shortener: creates links in `links`, redirects to them (counting each in `redirected`); deleting
    from `links` loses one."""
    class Shortener(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            url = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["url"]
            code = f"c{len(links) + 1:06d}"
            links[code] = url
            self._answer(201, json.dumps({"code": code}).encode())

        def do_GET(self):
            code = self.path.lstrip("/")
            url = links.get(code)
            if url and redirected is not None:
                redirected[code] += 1
            self._answer(302 if url else 404, b"", {"Location": url} if url else {})

        def _answer(self, status, body, headers=None):
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Shortener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_links_answered_201_that_no_longer_lead_to_their_url_are_found_lost():
    links: dict[str, str] = {}
    server = _shortener(links)
    try:
        traffic = Traffic(f"http://127.0.0.1:{server.server_address[1]}").start()
        time.sleep(1.0)
        traffic.stop()
        created, lost = traffic.lost()
        assert created == len(links) > 5 and lost == []
        gone, moved = sorted(links)[:2]
        del links[gone]
        links[moved] = "https://example.org/elsewhere"
        assert traffic.lost() == (created, sorted([gone, moved]))
    finally:
        server.shutdown()


def test_each_redirect_answered_302_is_a_click_acknowledged_for_its_code():
    links: dict[str, str] = {}
    redirected: collections.Counter[str] = collections.Counter()
    server = _shortener(links, redirected)
    try:
        traffic = Traffic(f"http://127.0.0.1:{server.server_address[1]}").start()
        time.sleep(1.0)
        traffic.stop()
        del links[sorted(links)[0]]  # its next visit is a 404: no click
        traffic.lost()  # visits every link once more: a click each that still redirects
        assert traffic.clicks() == dict(redirected)
        assert sum(redirected.values()) > len(links)
    finally:
        server.shutdown()
