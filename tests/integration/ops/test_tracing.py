"""One trace spans an update from the intake's HTTP request through the outbox, the relay and the pathway
worker to the notifications consumer: the W3C trace context travels in the CloudEvent (`traceparent`).
The consumers run in this process with the SDK's in-memory exporter; the database and broker folder are
real. Span attributes hold route templates, event types and ids only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carepath.apps import create_intake_app
from services.notifications.reconcile import handle_event as reconcile
from services.pathway.consumer import handle_event as evaluate_event
from shared.auth import create_token
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.observability import tracing
from shared.settings import Settings

HANDLERS = {"pathway": evaluate_event, "notifications": reconcile}
EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    if not tracing._configured:  # the SDK's provider can be set once per process
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
        tracing._configured = True
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another tracer provider is installed in this process")
    EXPORTER.clear()
    return EXPORTER


def _at(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def _ancestors(parents: dict[int, int], span_id: int) -> list[int]:
    found = []
    while span_id in parents:
        span_id = parents[span_id]
        found.append(span_id)
    return found


def _drain(settings: Settings, publisher: InMemoryPublisher) -> list[str]:
    relay_once(publisher, settings)
    return [consume(c, envelope, outbox_id, HANDLERS[c], settings) for c, envelope, outbox_id in publisher.drain()]


def test_one_trace_from_the_http_request_to_the_notifications_consumer(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    client = TestClient(create_intake_app())
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
    patient_id = client.post("/v1/patients", json={"external_id": "MRN-TRACE-1"}, headers=headers).json()["id"]
    spans.clear()
    updates = [
        {"type": "surgery", "occurred_at": _at(60), "data": {"procedure": "laminectomy"}},
        {"type": "medication", "occurred_at": _at(35), "data": {"drug_class": "opioid_ir", "action": "started"}},
    ]
    posted = client.post(f"/v1/patients/{patient_id}/updates:batch", json={"updates": updates}, headers=headers)
    assert posted.status_code == 202
    publisher = InMemoryPublisher()
    assert _drain(settings, publisher) == ["handled"]  # pathway
    assert _drain(settings, publisher) == ["handled"]  # notifications (the assessed event)

    finished = {span.name: span for span in spans.get_finished_spans()}
    chain = [
        "POST /v1/patients/{patient_id}/updates:batch",
        "publish pathway",
        "consume pathway",
        "publish notifications",
        "consume notifications",
    ]
    assert set(chain) <= set(finished), sorted(finished)
    assert len({finished[name].context.trace_id for name in chain}) == 1
    parents = {span.context.span_id: span.parent.span_id for span in spans.get_finished_spans() if span.parent}
    for earlier, later in pairwise(chain):  # each step descends from the one before
        assert finished[earlier].context.span_id in _ancestors(parents, finished[later].context.span_id), later
    assert finished["consume pathway"].attributes["cloudevents.event_type"] == "carepath.patient.updated"
    assert finished["consume notifications"].attributes["carepath.outcome"] == "handled"
    for span in spans.get_finished_spans():
        shown = repr(dict(span.attributes or {})) + span.name
        assert "MRN-TRACE-1" not in shown and patient_id not in shown


def test_tracing_is_off_without_an_endpoint(settings: Settings) -> None:
    assert settings.otlp_endpoint == ""
    if not tracing._configured:
        assert tracing.configure_tracing("intake") is False
        assert not isinstance(trace.get_tracer_provider(), TracerProvider)
