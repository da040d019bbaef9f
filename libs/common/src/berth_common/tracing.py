"""OpenTelemetry set-up and W3C trace context propagation through bus message headers.

One deploy is one trace: the api starts a span, the trace context travels in the ``traceparent`` header of
every message, and each consumer continues it.

Without an OTLP endpoint nothing is exported, so the OpenTelemetry SDK (and its exporter, about 5 MB per
process with what they import) is not loaded: a light provider from the API alone gives every span its
own ids (a new trace id at a root, the parent's trace id otherwise) so trace ids still reach logs and
``traceparent`` headers. With an endpoint the SDK's provider records spans and exports them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_configured = False


def _random_id(bits: int) -> int:
    value = 0
    while value == 0:  # 0 is the invalid id
        value = random.getrandbits(bits)
    return value


class IdOnlyTracer(trace.NoOpTracer):
    """Spans that record nothing but carry real ids (what the SDK's default sampler would have given)."""

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
        else:
            trace_id, flags, state = _random_id(128), trace.TraceFlags(trace.TraceFlags.SAMPLED), None
        span_context = trace.SpanContext(trace_id, _random_id(64), False, flags, state)
        return trace.NonRecordingSpan(span_context)


class IdOnlyTracerProvider(trace.NoOpTracerProvider):
    def get_tracer(self, *_: Any, **__: Any) -> trace.Tracer:
        return IdOnlyTracer()


def configure_tracing(service: str, otlp_endpoint: str | None) -> trace.TracerProvider:
    """Install a tracer provider: the SDK's, exporting over OTLP/HTTP, only when an endpoint is configured."""
    global _configured
    provider: trace.TracerProvider
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        sdk = TracerProvider(resource=Resource.create({"service.name": f"berth-{service}"}))
        sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
        provider = sdk
    else:
        provider = IdOnlyTracerProvider()
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
