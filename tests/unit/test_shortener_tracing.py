"""Traces: Flask, Redis and Postgres spans in one trace, whose id is in the log lines."""

import json

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shortener import tracing


@pytest.fixture
def traced(make_app):
    exporter = InMemorySpanExporter()
    return make_app(OTEL_SPAN_EXPORTER=exporter), exporter


def test_tracing_is_off_without_an_endpoint(monkeypatch, make_app):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert not tracing.enabled(make_app())


def test_a_redirect_is_one_trace_across_flask_redis_and_postgres(traced, capsys):
    app, exporter = traced
    client = app.test_client()
    code = client.post("/shorten", json={"url": "https://example.org/traced"}).get_json()["code"]
    exporter.clear()
    capsys.readouterr()

    assert client.get(f"/{code}").status_code == 302

    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind.name == "SERVER"]
    assert len(server) == 1 and server[0].name.endswith("/<code>")
    trace_id = server[0].context.trace_id
    systems = {
        s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in spans if s.kind.name == "CLIENT"
    }
    assert {"redis", "postgresql"} <= systems, [(s.name, dict(s.attributes)) for s in spans]
    assert all(s.context.trace_id == trace_id for s in spans)

    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    (access,) = [l for l in lines if l.get("logger") == "shortener.access"]
    assert access["trace_id"] == format(trace_id, "032x")
