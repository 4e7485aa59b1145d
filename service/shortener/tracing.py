"""OpenTelemetry traces of Flask, Redis and Postgres, exported over OTLP when configured."""

import logging
import os

from opentelemetry import trace

log = logging.getLogger(__name__)

# One provider per process; every app created in it (tests make many) shares it.
_provider = None

# Sampling when OTEL_TRACES_SAMPLER is not set: one trace in ten (a caller's sampled flag is
# followed), because recording every redirect costs more than the redirect itself.
DEFAULT_SAMPLER = "parentbased_traceidratio"
DEFAULT_RATIO = 0.1


class SamplerError(ValueError):
    """OTEL_TRACES_SAMPLER or OTEL_TRACES_SAMPLER_ARG is not a value OpenTelemetry defines."""


def sampler(environ=os.environ):
    """The sampler that OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name, as OpenTelemetry defines them."""
    from opentelemetry.sdk.trace import sampling

    name = (environ.get("OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).strip().lower()
    fixed = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "parentbased_always_on": sampling.DEFAULT_ON,
        "parentbased_always_off": sampling.DEFAULT_OFF,
    }
    if name in fixed:
        return fixed[name]
    ratios = ("traceidratio", "parentbased_traceidratio")
    if name not in ratios:
        raise SamplerError(f"OTEL_TRACES_SAMPLER must be one of {', '.join([*fixed, *ratios])}, got {name!r}")
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG")
    try:
        ratio = DEFAULT_RATIO if arg in (None, "") else float(arg)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        # The SDK would fall back to sampling everything: a typo must not cost 100 %.
        raise SamplerError(f"OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got {arg!r}")
    root = sampling.TraceIdRatioBased(ratio)
    return root if name == "traceidratio" else sampling.ParentBased(root)


def enabled(app) -> bool:
    """Tracing is on when an OTLP endpoint is set, or a test hands in an exporter."""
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or app.config.get("OTEL_SPAN_EXPORTER"))


def _tracer_provider(app):
    global _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _provider is None:
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured by Resource.create.
        _provider = TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "shortener")}),
            sampler=sampler(),
        )
        trace.set_tracer_provider(_provider)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # The exporter reads its endpoint, headers and timeout from OTEL_EXPORTER_OTLP_*.
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    exporter = app.config.get("OTEL_SPAN_EXPORTER")
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    return _provider


def init_app(app) -> bool:
    """Instrument the app, Redis and psycopg if tracing is enabled; return whether it is."""
    if not enabled(app):
        return False
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    provider = _tracer_provider(app)
    # Probes and scrapes would drown the traces that matter.
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider, excluded_urls="/health,/metrics")
    # Both patch their library once per process (connections made later are traced).
    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument(tracer_provider=provider)
    if not PsycopgInstrumentor().is_instrumented_by_opentelemetry:
        PsycopgInstrumentor().instrument(tracer_provider=provider)
    log.info("tracing enabled", extra={"otlp_endpoint": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")})
    return True


def current_trace_ids() -> tuple[str, str] | None:
    """Return the current (trace_id, span_id) in hex, or None outside a recorded span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
