"""Traces: Flask, Redis and Postgres spans in one trace, whose id is in the log lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shortener import tracing


@pytest.fixture
def traced(make_app, monkeypatch):
    # Every trace, so that the one redirect below is recorded (the process's provider is made
    # once, by the first traced app: this fixture's).
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    exporter = InMemorySpanExporter()
    return make_app(OTEL_SPAN_EXPORTER=exporter), exporter


def sampled_roots(environ: dict, traces: int = 2000) -> int:
    """How many of `traces` new root spans a provider with the configured sampler records."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.sampler(environ))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for _ in range(traces):
        with tracer.start_as_current_span("request"):
            pass
    provider.shutdown()
    return len(exporter.get_finished_spans())


def test_one_trace_in_ten_is_sampled_by_default():
    # Binomial(2000, 0.1): 200 expected, standard deviation 13.4; these bounds are 7 of them.
    assert 100 < sampled_roots({}) < 300


def test_the_sampler_follows_the_caller_s_decision_by_default():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.sampler({}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for sampled in (True, False) * 50:
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT)
        parent = trace.SpanContext(trace_id=12345, span_id=678, is_remote=True, trace_flags=flags)
        with tracer.start_as_current_span("request", context=trace.set_span_in_context(trace.NonRecordingSpan(parent))):
            pass
    assert len(exporter.get_finished_spans()) == 50


@pytest.mark.parametrize(("environ", "low", "high"), [
    ({"OTEL_TRACES_SAMPLER": "always_on"}, 2000, 2000),
    ({"OTEL_TRACES_SAMPLER": "always_off"}, 0, 0),
    ({"OTEL_TRACES_SAMPLER_ARG": "0.5"}, 850, 1150),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, 0, 0),
])
def test_the_ratio_comes_from_the_environment_as_opentelemetry_defines_it(environ, low, high):
    assert low <= sampled_roots(environ) <= high


@pytest.mark.parametrize("environ", [
    {"OTEL_TRACES_SAMPLER": "sometimes"},
    {"OTEL_TRACES_SAMPLER_ARG": "ten percent"},
    {"OTEL_TRACES_SAMPLER_ARG": "10"},
])
def test_a_sampler_setting_that_means_nothing_stops_the_start(environ):
    with pytest.raises(tracing.SamplerError, match="OTEL_TRACES_SAMPLER"):
        tracing.sampler(environ)


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

    # The app's provider samples as OTEL_TRACES_SAMPLER says (the SDK's own default would be ParentBased).
    assert trace.get_tracer_provider().sampler.get_description() == "AlwaysOnSampler"
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


def test_the_app_samples_one_trace_in_ten_when_the_environment_says_nothing(database_url, redis_url):
    # A process of its own: the provider is made once per process, and the SDK's own default is 100 %.
    program = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from shortener import create_app\n"
        f"create_app({{'DATABASE_URL': {database_url!r}, 'REDIS_URL': {redis_url!r},"
        " 'OTEL_SPAN_EXPORTER': InMemorySpanExporter()})\n"
        "print(trace.get_tracer_provider().sampler.get_description())\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    service = Path(tracing.__file__).resolve().parents[1]  # where the package is importable, as in the image
    result = subprocess.run([sys.executable, "-c", program], cwd=service, env=environ, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ParentBased{root:TraceIdRatioBased{0.1},remoteParentSampled:AlwaysOnSampler,"
                                          "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
                                          "localParentNotSampled:AlwaysOffSampler}")
