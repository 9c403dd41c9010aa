"""Reconciliation of reminders with the pathway's desired deadline set (pathway-spec §3), driven through
the real consumer (`consume`) with CloudEvents envelopes, as the Celery task does."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from reminder_testkit import T0, assessed_envelope, deadline, outbox_count, reminders_of

from services.notifications import lifecycle, queries
from services.notifications.reconcile import handle_event
from services.notifications.scheduler import deliver_due
from shared.auth import Principal
from shared.clock import utcnow
from shared.db.uow import UnitOfWork
from shared.events import REMINDER_DUE
from shared.messaging.consumer import consume
from shared.messaging.routing import NOTIFICATIONS

pytestmark = pytest.mark.integration
COORDINATOR = Principal("org-a", "coordinator", "alice")


def _send(settings, envelope):  # type: ignore[no-untyped-def]
    return consume(NOTIFICATIONS, envelope, None, handle_event, settings)


def _statuses(settings, patient):  # type: ignore[no-untyped-def]
    return {(r.kind, r.due_at): r.status for r in reminders_of(settings, patient)}


def _history(settings, reminder_id):  # type: ignore[no-untyped-def]
    with UnitOfWork(settings, read_only=True) as uow:
        return [(h.from_status, h.to_status, h.actor, h.reason) for h in queries.history(uow, reminder_id)]


def test_pending_deadlines_become_scheduled_reminders_once(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    deadlines = [deadline("pt_follow_up", T0), deadline("pdmp_review", T0 + timedelta(days=90))]
    envelope = assessed_envelope(patient, 1, deadlines)
    assert _send(settings, envelope) == "handled"
    assert _send(settings, envelope) == "duplicate"  # the same event delivered twice
    assert _send(settings, assessed_envelope(patient, 1, deadlines)) == "handled"  # same content, new event id
    reminders = reminders_of(settings, patient)
    assert [(r.kind, r.status, r.next_action_at) for r in reminders] == [
        ("pt_follow_up", "scheduled", T0),
        ("pdmp_review", "scheduled", T0 + timedelta(days=90)),
    ]
    first = reminders[0]
    assert (first.org, first.text, first.citation, first.fact_ids) == (
        "org-a",
        "pt_follow_up text",
        "G3",
        ["fact-1"],
    )
    assert _history(settings, first.id) == [(None, "scheduled", "pathway", "deadline_pending")]


def test_satisfied_completes_and_cancelled_or_absent_cancels(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    kinds = ["pt_follow_up", "pdmp_review", "urine_drug_test", "opioid_review_4w"]
    _send(settings, assessed_envelope(patient, 1, [deadline(k, T0) for k in kinds]))
    lifecycle_ids = {r.kind: r.id for r in reminders_of(settings, patient)}
    deliver_due(settings, T0, worker_id="w", limit=100)
    with UnitOfWork(settings) as uow:  # a coordinator's acknowledgement does not stop the pathway completing it
        lifecycle.acknowledge(uow, COORDINATOR, lifecycle_ids["pdmp_review"])
        uow.commit()
    _send(
        settings,
        assessed_envelope(
            patient,
            2,
            [
                deadline("pt_follow_up", T0, "satisfied"),
                deadline("pdmp_review", T0, "satisfied"),
                deadline("urine_drug_test", T0, "cancelled"),
            ],
        ),
    )  # opioid_review_4w absent
    assert _statuses(settings, patient) == {
        ("pt_follow_up", T0): "completed",
        ("pdmp_review", T0): "completed",
        ("urine_drug_test", T0): "cancelled",
        ("opioid_review_4w", T0): "cancelled",
    }
    assert _history(settings, lifecycle_ids["pdmp_review"])[-1] == (
        "acknowledged",
        "completed",
        "pathway",
        "deadline_satisfied",
    )
    assert _history(settings, lifecycle_ids["opioid_review_4w"])[-1][3] == "deadline_absent"
    assert all(r.next_action_at is None for r in reminders_of(settings, patient))


def test_satisfied_or_cancelled_without_reminder_creates_nothing(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    _send(
        settings,
        assessed_envelope(
            patient, 1, [deadline("pt_follow_up", T0, "satisfied"), deadline("pdmp_review", T0, "cancelled")]
        ),
    )
    assert reminders_of(settings, patient) == []


def test_pending_again_reopens_what_the_pathway_closed(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    later = utcnow() + timedelta(days=10)
    _send(
        settings,
        assessed_envelope(patient, 1, [deadline("pt_follow_up", T0), deadline("pdmp_review", later)]),
    )
    deliver_due(settings, T0, worker_id="w", limit=10)  # pt_follow_up delivered
    _send(settings, assessed_envelope(patient, 2, [deadline("pt_follow_up", T0, "satisfied")]))
    assert set(_statuses(settings, patient).values()) == {"completed", "cancelled"}
    _send(
        settings,
        assessed_envelope(patient, 3, [deadline("pt_follow_up", T0), deadline("pdmp_review", later)]),
    )
    reopened = {r.kind: r for r in reminders_of(settings, patient)}
    assert reopened["pt_follow_up"].status == "due"  # delivered before: back to due, no second delivery
    assert reopened["pdmp_review"].status == "scheduled" and reopened["pdmp_review"].next_action_at == later
    assert outbox_count(settings, REMINDER_DUE) == 1
    assert _history(settings, reopened["pt_follow_up"].id)[-1] == (
        "completed",
        "due",
        "pathway",
        "deadline_pending_again",
    )


def test_coordinator_decisions_are_never_overridden(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    _send(settings, assessed_envelope(patient, 1, [deadline("pt_follow_up", T0), deadline("pdmp_review", T0)]))
    ids = {r.kind: r.id for r in reminders_of(settings, patient)}
    with UnitOfWork(settings) as uow:
        lifecycle.dismiss(uow, COORDINATOR, ids["pt_follow_up"], "not_applicable", "PT elsewhere")
        lifecycle.complete(uow, COORDINATOR, ids["pdmp_review"])
        uow.commit()
    _send(settings, assessed_envelope(patient, 2, [deadline("pt_follow_up", T0), deadline("pdmp_review", T0)]))
    _send(settings, assessed_envelope(patient, 3, []))
    _send(settings, assessed_envelope(patient, 4, [deadline("pt_follow_up", T0), deadline("pdmp_review", T0)]))
    assert _statuses(settings, patient) == {
        ("pt_follow_up", T0): "dismissed",
        ("pdmp_review", T0): "completed",
    }
    assert all(h[2] != "pathway" for h in _history(settings, ids["pt_follow_up"])[1:])


def test_stale_assessment_is_ignored(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    _send(
        settings,
        assessed_envelope(patient, 5, [deadline("pt_follow_up", T0, "satisfied"), deadline("pdmp_review", T0)]),
    )
    assert _send(settings, assessed_envelope(patient, 4, [deadline("pt_follow_up", T0)])) == "handled"
    assert _statuses(settings, patient) == {("pdmp_review", T0): "scheduled"}


def test_colliding_deadlines_merge_pending_first(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    _send(
        settings,
        assessed_envelope(
            patient,
            1,
            [
                deadline("pt_follow_up", T0, "cancelled"),
                deadline("pt_follow_up", T0, "pending"),
                deadline("pt_follow_up", T0, "satisfied"),
            ],
        ),
    )
    assert _statuses(settings, patient) == {("pt_follow_up", T0): "scheduled"}


def test_text_and_facts_follow_the_pathway(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    _send(settings, assessed_envelope(patient, 1, [deadline("pt_follow_up", T0)]))
    _send(
        settings,
        assessed_envelope(patient, 2, [deadline("pt_follow_up", T0, text="new text", fact_ids=["a", "b"])]),
    )
    (reminder,) = reminders_of(settings, patient)
    assert (reminder.text, reminder.fact_ids, reminder.status) == ("new text", ["a", "b"], "scheduled")


def test_overdue_pending_deadline_is_delivered_at_once(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    _send(settings, assessed_envelope(patient, 1, [deadline("pt_follow_up", utcnow() - timedelta(days=3))]))
    assert deliver_due(settings, worker_id="w", limit=10)["delivered"] == 1


def test_malformed_payload_is_refused_and_not_recorded(settings, make_patient):  # type: ignore[no-untyped-def]
    patient = make_patient()
    bad = assessed_envelope(
        patient, 1, [{"kind": "pt_follow_up", "due_at": "2026-01-01T00:00:00", "status": "pending"}]
    )
    with pytest.raises(ValueError):
        _send(settings, bad)
    assert reminders_of(settings, patient) == []
    # nothing was recorded as processed: a fixed redelivery would still be handled
    assert _send(settings, bad | {"data": {**bad["data"], "deadlines": []}}) == "handled"


def test_concurrent_reconciliations_create_no_duplicates(settings, make_patient):  # type: ignore[no-untyped-def]
    patients = [make_patient() for _ in range(3)]
    deadlines = [
        deadline(kind, T0 + timedelta(days=day)) for kind in ("pt_follow_up", "pdmp_review") for day in range(5)
    ]
    distinct = [assessed_envelope(p, seq, deadlines) for p in patients for seq in (1, 1, 2)]
    envelopes = distinct + distinct  # every event also delivered twice at the same time
    errors: list[BaseException] = []
    outcomes: list[str] = []
    barrier = threading.Barrier(len(envelopes))

    def run(envelope):  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            outcomes.append(_send(settings, envelope))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(e,)) for e in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(outcomes) == ["duplicate"] * len(distinct) + ["handled"] * len(distinct)
    for patient in patients:
        reminders = reminders_of(settings, patient)
        assert len(reminders) == 10 and {r.status for r in reminders} == {"scheduled"}
