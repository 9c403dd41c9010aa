"""OpenTelemetry tracing across HTTP -> outbox -> relay -> Celery -> consumers. The W3C trace context
travels inside the CloudEvent (extension attribute `traceparent`, CloudEvents' distributed-tracing
extension), so it survives the outbox and any broker. Off by default: without CAREPATH_OTLP_ENDPOINT no
SDK is loaded and the API's no-op tracer costs nothing. Span attributes hold route templates, event types,
consumers and event ids only (never a patient's data)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from shared.settings import get_settings

log = logging.getLogger("carepath.tracing")
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_configured = False


def configure_tracing(service: str, exporter: Any = None) -> bool:
    """Install the SDK with an OTLP/HTTP exporter when CAREPATH_OTLP_ENDPOINT is set (or with `exporter`,
    for tests). Returns whether tracing is on in this process."""
    global _configured
    endpoint = get_settings().otlp_endpoint
    if _configured or (exporter is None and not endpoint):
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"carepath-{service}"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing on for %s", service)
    return True


def tracer() -> trace.Tracer:
    return trace.get_tracer("carepath")


def inject(attributes: MutableMapping[str, Any], context: Context | None = None) -> None:
    """Put the current trace context (or `context`) into a CloudEvent's attributes (nothing when no span is
    recording)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    for key in (TRACEPARENT, TRACESTATE):
        if carrier.get(key):
            attributes[key] = carrier[key]


def extract(attributes: Mapping[str, Any]) -> Context:
    carrier = {key: str(attributes[key]) for key in (TRACEPARENT, TRACESTATE) if attributes.get(key)}
    return propagate.extract(carrier)


@contextmanager
def event_span(name: str, envelope: Mapping[str, Any], kind: trace.SpanKind, **attributes: str) -> Iterator[trace.Span]:
    """A span continuing the trace the event carries; attributes: ids and types only."""
    with tracer().start_as_current_span(
        name,
        context=extract(envelope),
        kind=kind,
        attributes={
            "cloudevents.event_type": str(envelope.get("type", "")),
            "cloudevents.event_id": str(envelope.get("id", "")),
            **attributes,
        },
    ) as span:
        yield span


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store on a row that work continues from later (a
    reminder the scheduler delivers, a channel delivery the dispatcher sends); None when not tracing."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def continued(traceparent: str | None) -> Context | None:
    """The context a stored traceparent continues (None: none stored, the current context applies)."""
    return propagate.extract({TRACEPARENT: traceparent}) if traceparent else None


def start_continued_span(
    name: str, traceparent: str | None, kind: trace.SpanKind = trace.SpanKind.INTERNAL
) -> trace.Span:
    """A span (not made current; the caller ends it) continuing the trace of a stored traceparent, linked
    to the current span (the batch that picked the row up). Without a stored one: a child of the current."""
    current = trace.get_current_span().get_span_context()
    links = [trace.Link(current)] if traceparent and current.is_valid else None
    return tracer().start_span(name, context=continued(traceparent), kind=kind, links=links)
