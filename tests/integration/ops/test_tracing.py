"""One trace spans an update from the intake's HTTP request through the outbox, the relay and the pathway
worker to the notifications consumer: the W3C trace context travels in the CloudEvent (`traceparent`).
The consumers run in this process with the SDK's in-memory exporter; the database and broker folder are
real. Span attributes hold route templates, event types and ids only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carepath.apps import create_intake_app
from services.notifications.channels.dispatch import handle_event as record_deliveries
from services.notifications.channels.dispatcher import dispatch_due
from services.notifications.channels.fakes import recording_senders
from services.notifications.reconcile import handle_event as reconcile
from services.notifications.scheduler import deliver_due
from services.pathway.consumer import handle_event as evaluate_event
from shared.auth import create_token
from shared.db.tables import WebhookEndpoint
from shared.db.uow import UnitOfWork
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.observability import tracing
from shared.settings import Settings

HANDLERS = {"pathway": evaluate_event, "notifications": reconcile, "channels": record_deliveries}
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


def test_one_trace_from_the_http_request_to_the_webhook_send(settings: Settings, spans: InMemorySpanExporter) -> None:
    """intake -> relay -> pathway worker -> notifications consumer -> (the reminder row) scheduler ->
    channels consumer -> (the delivery row) dispatcher's webhook send: one trace, each step a descendant of
    the one before. The reminder and the delivery keep the traceparent of the consumer that stored them."""
    client = TestClient(create_intake_app())
    headers = {"Authorization": f"Bearer {create_token(settings, 'org-a', 'client')}"}
    now = datetime.now(UTC)
    with UnitOfWork(settings) as uow:
        uow.session.add(
            WebhookEndpoint(
                org="org-a",
                url="https://hooks.example.org/t",
                secret="whsec_" + "A" * 43,
                created_at=now,
                updated_at=now,
            )
        )
        uow.commit()
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
    later = now + timedelta(days=400)  # every reminder of the update is due by then
    assert deliver_due(settings, later, worker_id="trace-test", limit=100)["delivered"] >= 1
    assert set(_drain(settings, publisher)) == {"handled"}  # channels: a delivery per due reminder
    senders, webhook, _ = recording_senders()
    assert dispatch_due(settings, later, senders) >= 1
    assert webhook.sent

    finished = spans.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    parents = {span.context.span_id: span.parent.span_id for span in finished if span.parent}
    send = by_name["send webhook"][0]
    chain = [
        "POST /v1/patients/{patient_id}/updates:batch",
        "publish pathway",
        "consume pathway",
        "publish notifications",
        "consume notifications",
        "reminder due",
        "publish channels",
        "consume channels",
    ]
    assert set(chain) <= set(by_name), sorted(by_name)
    ancestors = _ancestors(parents, send.context.span_id)
    # walking up from the send meets every step of the chain, in order, all in the request's trace
    met = [
        name for span_id in ancestors for name, found in by_name.items() for s in found if s.context.span_id == span_id
    ]
    assert [name for name in met if name in chain] == list(reversed(chain)), met
    (request,) = by_name[chain[0]]
    assert send.context.trace_id == request.context.trace_id
    assert all(
        s.context.trace_id == request.context.trace_id
        for name in chain
        for s in by_name[name]
        if s.context.span_id in ancestors
    )
    # the scheduler pass that picked the reminders up is linked, not the parent
    (due,) = [s for s in by_name["reminder due"] if s.context.span_id in ancestors]
    sweep = by_name["deliver due reminders"][0]
    assert [link.context.span_id for link in due.links] == [sweep.context.span_id]
    assert by_name["consume pathway"][0].attributes["cloudevents.event_type"] == "carepath.patient.updated"
    assert by_name["consume notifications"][0].attributes["carepath.outcome"] == "handled"
    for span in finished:
        shown = repr(dict(span.attributes or {})) + span.name
        assert "MRN-TRACE-1" not in shown and patient_id not in shown


def test_tracing_is_off_without_an_endpoint(settings: Settings) -> None:
    assert settings.otlp_endpoint == ""
    if not tracing._configured:
        assert tracing.configure_tracing("intake") is False
        assert not isinstance(trace.get_tracer_provider(), TracerProvider)
