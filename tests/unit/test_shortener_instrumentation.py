"""SHORTENER_INSTRUMENTATION: on by default; off drops per-request metrics and access lines (the benchmark's baseline)."""

import json

import pytest
from prometheus_client import REGISTRY

from shortener import config


def handled(route: str) -> float:
    """The in-process count of GET requests answered 200 on a route."""
    return REGISTRY.get_sample_value("http_requests_total", {"method": "GET", "route": route, "status": "200"}) or 0.0


def access_lines(output: str) -> list[dict]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "shortener.access"]


def test_instrumentation_is_on_by_default(make_app, capsys):
    client = make_app().test_client()
    capsys.readouterr()
    before = handled("/health")

    response = client.get("/health")

    assert handled("/health") == before + 1
    assert response.headers["X-Request-ID"]
    assert len(access_lines(capsys.readouterr().out)) == 1


def test_instrumentation_off_counts_and_logs_no_request(make_app, capsys):
    client = make_app(SHORTENER_INSTRUMENTATION="off").test_client()
    capsys.readouterr()
    before = handled("/health")

    response = client.get("/health")

    assert response.status_code == 200
    assert handled("/health") == before
    assert "X-Request-ID" not in response.headers
    assert access_lines(capsys.readouterr().out) == []
    # Scrapes still work: the domain counters and dependency gauges are still kept.
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(("value", "expected"), [("off", False), ("OFF", False), ("0", False), ("on", True), ("true", True)])
def test_instrumentation_switch_reads_the_environment(value, expected):
    environ = {"DATABASE_URL": "postgresql://db", "REDIS_URL": "redis://cache", "SHORTENER_INSTRUMENTATION": value}
    assert config.load(environ=environ)["SHORTENER_INSTRUMENTATION"] is expected


def test_a_misspelt_switch_stops_the_app():
    environ = {"DATABASE_URL": "postgresql://db", "REDIS_URL": "redis://cache", "SHORTENER_INSTRUMENTATION": "of"}
    with pytest.raises(config.ConfigurationError, match="SHORTENER_INSTRUMENTATION must be on or off"):
        config.load(environ=environ)
