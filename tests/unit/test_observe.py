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
    return _api({"/api/v1/alerts": {"alerts": [{"labels": {"alertname": name}, "state": state}
                                               for name, state in states.items()]}})


def _api(answers: dict[str, dict]) -> http.server.HTTPServer:
    """A Prometheus answering these data documents at these paths."""
    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "success", "data": answers[self.path.split("?")[0]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Api)
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


def test_a_target_not_scraped_yet_is_not_up():
    server = _api({"/api/v1/targets": {"activeTargets": [
        {"labels": {"job": "app", "instance": "127.0.0.1:8000"}, "health": "up"},
        {"labels": {"job": "probe", "instance": "127.0.0.1:9115"}, "health": "unknown"},
        {"labels": {"job": "redis", "instance": "127.0.0.1:9121"}, "health": "down"}]}})
    try:
        assert Prometheus(_url(server)).targets_not_up() == ["probe 127.0.0.1:9115 unknown", "redis 127.0.0.1:9121 down"]
    finally:
        server.shutdown()


def test_the_last_scrape_and_evaluation_are_read_in_unix_time_with_their_nanoseconds():
    server = _api({
        "/api/v1/targets": {"activeTargets": [
            {"labels": {"job": "redis"}, "lastScrape": "2026-12-07T09:10:11.5Z", "lastScrapeDuration": 0.01},
            {"labels": {"job": "app"}, "lastScrape": "2026-12-07T09:10:11.123456789Z", "lastScrapeDuration": 0.2},
            {"labels": {"job": "probe"}, "lastScrape": "0001-01-01T00:00:00Z", "lastScrapeDuration": 0}]},
        "/api/v1/rules": {"groups": [{"name": "shortener-availability", "lastEvaluation": "2026-12-07T10:10:05+01:00"}]},
    })
    try:
        prometheus = Prometheus(_url(server))
        assert prometheus.last_scrape("app") == (pytest.approx(1796634611.123456), 0.2)
        assert prometheus.last_scrape("probe") is None  # not scraped yet
        assert prometheus.last_evaluation("shortener-availability") == 1796634605.0
        assert prometheus.last_evaluation("another") is None
    finally:
        server.shutdown()
