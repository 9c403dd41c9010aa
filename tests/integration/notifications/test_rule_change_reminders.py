"""Reminders made by a change of rule set: marked as such, a past deadline delivered once and not escalated at
once, sources stored and shown; existing reminders keep working after migration 0002."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from reminder_testkit import assessed_envelope, deadline, outbox_count, reminders_of
from sqlalchemy import select, text

from services.notifications import queries
from services.notifications.channels.payloads import webhook_payload
from services.notifications.escalation import escalation_at
from services.notifications.reconcile import handle_event
from services.notifications.scheduler import deliver_due
from shared.auth import FEED, create_token
from shared.clock import as_utc, utcnow
from shared.db.engine import get_engine
from shared.db.schema import alembic_config
from shared.db.tables import OutboxMessage
from shared.db.uow import UnitOfWork
from shared.events import REMINDER_DUE, TRIGGER_RULE_SET_CHANGED
from shared.messaging.consumer import consume
from shared.messaging.routing import NOTIFICATIONS
from shared.settings import Settings
from shared.testing import fresh_postgres_database, sqlite_url, test_backend
from tests.integration.channels.test_worklist_page import signed_in

pytestmark = pytest.mark.integration
NEW_RULES = "lbp-postlam-2026.2"
SOURCES = [
    {"code": "G3", "title": "Guideline article, reference 3: opioid reassessment", "url": "https://example.org/g3"},
    {"code": "CDC22", "title": "CDC Clinical Practice Guideline for Prescribing Opioids for Pain (2022)", "url": None},
]


def _send(settings: Settings, envelope: dict) -> str:  # type: ignore[type-arg]
    return consume(NOTIFICATIONS, envelope, None, handle_event, settings)


def _rule_change(patient: str, seq: int, deadlines: list[dict]) -> dict:  # type: ignore[type-arg]
    envelope = assessed_envelope(patient, seq, deadlines)
    envelope["data"].update(trigger=TRIGGER_RULE_SET_CHANGED, rule_set_version=NEW_RULES)
    return envelope


def _history(settings: Settings, reminder_id: str) -> list[tuple]:  # type: ignore[type-arg]
    with UnitOfWork(settings, read_only=True) as uow:
        return [(h.from_status, h.to_status, h.reason, h.details) for h in queries.history(uow, reminder_id)]


def test_a_past_deadline_of_a_rule_change_is_delivered_once_marked_and_not_escalated_at_once(
    settings: Settings, make_patient, client, auth
) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    patient = make_patient()
    old_due = now + timedelta(days=10)
    assert _send(settings, assessed_envelope(patient, 1, [deadline("pt_follow_up", old_due)])) == "handled"
    [old] = reminders_of(settings, patient)
    assert (old.origin, old.origin_rule_set_version, old.sources) == ("pathway", None, None)

    weeks_ago, days_ago = now - timedelta(days=20), now - timedelta(days=3)
    new = [
        deadline("pt_follow_up", weeks_ago, sources=SOURCES),  # re-dated by the new rules: due weeks ago
        deadline("procedure_follow_up", days_ago),  # a new kind of deadline, no sources sent
    ]
    assert _send(settings, _rule_change(patient, 2, new)) == "handled"
    by_key = {(r.kind, as_utc(r.due_at)): r for r in reminders_of(settings, patient)}
    assert by_key[("pt_follow_up", old_due)].status == "cancelled"
    assert _history(settings, old.id)[-1] == (
        "scheduled",
        "cancelled",
        "deadline_absent",
        {"assessment_seq": 2, "rule_set_version": NEW_RULES},
    )
    redated, added = by_key[("pt_follow_up", weeks_ago)], by_key[("procedure_follow_up", days_ago)]
    for reminder in (redated, added):
        assert (reminder.status, reminder.origin, reminder.origin_rule_set_version) == (
            "scheduled",
            "rule_change",
            NEW_RULES,
        )
    assert (redated.sources, added.sources) == (SOURCES, None)

    counts = deliver_due(settings, worker_id="w", limit=100)
    assert (counts["delivered"], counts["escalated"]) == (2, 0)
    for reminder in reminders_of(settings, patient):
        if reminder.status == "due":
            delivered = as_utc(reminder.delivered_at)  # type: ignore[arg-type]
            assert reminder.escalated_at is None and delivered >= now
            # the escalation window counts from delivery (its creation), not from a due_at weeks ago
            assert as_utc(reminder.next_action_at) == escalation_at(reminder.kind, delivered) > now + timedelta(days=1)  # type: ignore[arg-type]
    assert deliver_due(settings, now + timedelta(hours=20), worker_id="w", limit=100)["claimed"] == 0
    assert outbox_count(settings, REMINDER_DUE) == 2  # once each

    with UnitOfWork(settings, read_only=True) as uow:
        query = select(OutboxMessage.envelope).where(OutboxMessage.event_type == REMINDER_DUE)
        data = [envelope["data"] for envelope in uow.session.execute(query).scalars()]
    for item in data:
        body = webhook_payload(REMINDER_DUE, now, item)["data"]
        assert (body["origin"], body["origin_rule_set_version"]) == ("rule_change", NEW_RULES)
        assert set(body) == {
            "reminder_id",
            "patient_id",
            "org",
            "kind",
            "due_at",
            "delivered_at",
            "origin",
            "origin_rule_set_version",
        }

    page = client.get("/v1/reminders", params={"patient_id": patient, "status": "due"}, headers=auth())
    assert page.status_code == 200, page.text
    items = {item["kind"]: item for item in page.json()["items"]}
    assert items["pt_follow_up"]["sources"] == SOURCES and items["pt_follow_up"]["citation"] == "G3"
    assert items["procedure_follow_up"]["sources"] is None
    assert {(i["origin"], i["origin_rule_set_version"]) for i in items.values()} == {("rule_change", NEW_RULES)}
    # The calendar feed carries no clinical text, sources included (a third party's calendar): kind and ids only.
    feed_token = create_token(settings, "org-a", "coordinator", typ=FEED)
    feed = client.get("/v1/reminders.ics", params={"token": feed_token}).text.replace("\r\n ", "")
    assert items["pt_follow_up"]["id"] in feed and "pt_follow_up" in feed
    assert "opioid reassessment" not in feed and "G3" not in feed


def test_an_ordinary_reevaluation_creates_ordinary_reminders_and_refreshes_sources(
    settings: Settings, make_patient
) -> None:  # type: ignore[no-untyped-def]
    patient = make_patient()
    due = utcnow() + timedelta(days=5)
    _send(settings, assessed_envelope(patient, 1, [deadline("pdmp_review", due)]))
    timed = assessed_envelope(patient, 2, [deadline("pdmp_review", due, sources=SOURCES[:1])])
    timed["data"].update(trigger="scheduled", rule_set_version="lbp-postlam-2026.1")
    _send(settings, timed)
    [reminder] = reminders_of(settings, patient)
    assert (reminder.origin, reminder.sources) == ("pathway", SOURCES[:1])  # refreshed in place, not re-made
    _send(settings, assessed_envelope(patient, 3, [deadline("pdmp_review", due)]))  # the key absent: none
    assert reminders_of(settings, patient)[0].sources is None


def test_a_reminder_reopened_by_a_rule_change_says_so(settings: Settings, make_patient) -> None:  # type: ignore[no-untyped-def]
    patient = make_patient()
    due = utcnow() - timedelta(days=30)
    _send(settings, assessed_envelope(patient, 1, [deadline("urgent_surgical_referral", due)]))
    deliver_due(settings, worker_id="w", limit=10)
    _send(settings, assessed_envelope(patient, 2, [deadline("urgent_surgical_referral", due, "satisfied")]))
    assert reminders_of(settings, patient)[0].status == "completed"
    _send(settings, _rule_change(patient, 3, [deadline("urgent_surgical_referral", due)]))  # no longer satisfied
    [reminder] = reminders_of(settings, patient)
    assert (reminder.status, reminder.origin, reminder.origin_rule_set_version) == ("due", "rule_change", NEW_RULES)
    assert outbox_count(settings, REMINDER_DUE) == 1  # back on the worklist without a second delivery


def test_worklist_shows_full_sources_and_marks_rule_change_reminders(settings: Settings, make_patient) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    ordinary, changed = make_patient(), make_patient()
    _send(settings, assessed_envelope(ordinary, 1, [deadline("opioid_review_4w", now - timedelta(days=3))]))
    _send(settings, _rule_change(changed, 1, [deadline("pt_follow_up", now - timedelta(days=20), sources=SOURCES)]))
    deliver_due(settings, worker_id="w", limit=10)
    html = signed_in(settings).get("/worklist").text
    rows = dict(re.findall(r'<tr id="reminder-[^"]+" data-reminder-id="([^"]+)" data-kind="([^"]+)"', html))
    assert sorted(rows.values()) == ["opioid_review_4w", "pt_follow_up"]
    # the slip of three days comes before the deadline that only appeared now under the new rules
    assert list(rows.values()) == ["opioid_review_4w", "pt_follow_up"]
    ordinary_row, changed_row = html.split('data-kind="opioid_review_4w"')[1], html.split('data-kind="pt_follow_up"')[1]
    ordinary_row, changed_row = ordinary_row.split("</tr>")[0], changed_row.split("</tr>")[0]
    # stored with its citation only: the source in words, from the pathway's catalogue (never the bare code)
    assert "Overdue" in ordinary_row and "the pain-management practice guideline" in ordinary_row
    assert "Source: G3" not in ordinary_row
    assert "Overdue" not in changed_row and "New under rule set 2026.2" in changed_row
    assert '<a href="https://example.org/g3"' in changed_row and SOURCES[0]["title"] in changed_row
    assert SOURCES[1]["title"] in changed_row and "Source: G3" not in changed_row


def test_migration_0002_keeps_existing_reminders_as_the_pathways(tmp_path: Path) -> None:
    def check(url: str) -> None:
        config = alembic_config(url)
        command.upgrade(config, "0001")
        engine = get_engine(url)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO patient (id, org, external_id, created_at) "
                    "VALUES ('p1', 'org-a', 'MRN-X', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO reminder (id, org, patient_id, kind, due_at, status, text, citation, fact_ids, "
                    "created_at, updated_at, version) VALUES ('r1', 'org-a', 'p1', 'pt_follow_up', "
                    "'2026-01-02 00:00:00', 'due', 'PT follow-up', 'G1', '[]', '2026-01-01 00:00:00', "
                    "'2026-01-01 00:00:00', 1)"
                )
            )
        command.upgrade(config, "head")
        command.check(config)
        with engine.connect() as connection:
            row = connection.execute(text("SELECT origin, origin_rule_set_version, sources FROM reminder")).one()
        assert tuple(row) == ("pathway", None, None)
        engine.dispose()

    if test_backend() == "pg":
        with fresh_postgres_database() as url:
            check(url)
    else:
        check(sqlite_url(tmp_path))
