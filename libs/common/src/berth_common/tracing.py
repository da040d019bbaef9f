"""OpenTelemetry set-up and W3C trace context propagation through bus message headers.

One deploy is one trace: the api starts a span, the trace context travels in the ``traceparent`` header of
every message, and each consumer continues it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_configured = False


def configure_tracing(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install a tracer provider; export over OTLP/HTTP only when an endpoint is configured."""
    global _configured
    provider = TracerProvider(resource=Resource.create({"service.name": f"berth-{service}"}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    if not _configured:
        trace.set_tracer_provider(provider)
        _configured = True
    return provider


def tracer(name: str = "berth") -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add ``traceparent``/``tracestate`` of the current context to ``headers`` (in place) and return it."""
    _propagator.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    return _propagator.extract(dict(headers or {}))


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


@contextmanager
def continue_trace(name: str, headers: Mapping[str, str] | None, **attributes: Any) -> Iterator[trace.Span]:
    """Start a consumer span that continues the trace carried in message ``headers``."""
    ctx = extract_context(headers)
    with tracer().start_as_current_span(name, context=ctx, kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:
        yield span
