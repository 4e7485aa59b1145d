"""What the harness reads of alert state: in the HA profile, what any replica would send to Alertmanager."""

import http.server
import json
import socket
import threading

import pytest
import requests

from harness.stack.observe import Prometheus


def _replica(states: dict[str, str]) -> http.server.HTTPServer:
    """A Prometheus replica's /api/v1/alerts answering these alert states."""
    body = json.dumps({"status": "success", "data": {"alerts": [
        {"labels": {"alertname": name}, "state": state} for name, state in states.items()]}}).encode()

    class Alerts(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Alerts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _refused() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_an_alert_is_firing_when_any_replica_fires_it():
    # The replicas scrape at phases of their own: the second fired a scrape interval first, and emailed.
    behind, ahead = _replica({"Watchdog": "firing", "ServiceDown": "pending"}), _replica(
        {"Watchdog": "firing", "ServiceDown": "firing", "HighErrorRate": "pending"})
    try:
        assert Prometheus(_url(behind), _url(ahead)).alert_states() == {
            "Watchdog": "firing", "ServiceDown": "firing", "HighErrorRate": "pending"}
    finally:
        behind.shutdown()
        ahead.shutdown()


def test_a_stopped_replica_leaves_the_others_to_say_and_none_answering_is_an_error():
    running = _replica({"Watchdog": "firing"})
    try:
        assert Prometheus(_refused(), _url(running)).alert_states() == {"Watchdog": "firing"}
    finally:
        running.shutdown()
    with pytest.raises(requests.ConnectionError):
        Prometheus(_refused(), _refused()).alert_states()
