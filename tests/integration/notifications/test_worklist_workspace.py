"""The coordinators' workspace on the worklist: ownership (assign to me, reassign, unassign, bulk), search and
filters with pagination and counts, the CSV export of a view (audited, no MRN in the audit trail), and the
organisation's time zone on pages, the .ics feed and emails across daylight-saving changes."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.apps import create_intake_app
from carepath.apps import create_notifications_app as create_app
from carepath.cli import main
from services.notifications.channels.dispatch import record_deliveries
from services.notifications.channels.dispatcher import dispatch_due
from services.notifications.channels.fakes import recording_senders
from services.notifications.channels.payloads import email_message, webhook_payload
from services.notifications.claims import Claimed, _due_event
from services.notifications.web.routes import parse_until
from shared import audit, events, orgtime
from shared.auth import FEED, create_token
from shared.clock import isoformat, utcnow
from shared.db.tables import (
    AuditEvent,
    EmailRecipient,
    OrgConfig,
    Reminder,
    ReminderReconcileState,
    ReminderTransition,
)
from shared.db.uow import UnitOfWork
from shared.settings import Settings
from tests.integration.channels.support import auth, seed_reminder
from tests.integration.channels.test_worklist_page import csrf_of

pytestmark = pytest.mark.integration
ORG = "org-a"
IDS = re.compile(r'data-reminder-id="([^"]+)"')
BERLIN = ZoneInfo("Europe/Berlin")


def sign_in(settings: Settings, subject: str, org: str = ORG, role: str = "coordinator") -> TestClient:
    client = TestClient(create_app(), follow_redirects=False)
    page = client.get("/login")
    token = create_token(settings, org, role, subject)
    response = client.post("/login", data={"token": token, "csrf_token": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    return client


def set_stage(settings: Settings, patient_id: str, stage: str) -> None:
    with UnitOfWork(settings) as uow:
        uow.session.add(
            ReminderReconcileState(
                patient_id=patient_id, org=ORG, assessment_seq=1, reconciled_at=utcnow(), stage=stage
            )
        )
        uow.commit()


def mrn_of(settings: Settings, reminder: Reminder) -> str:
    from shared.db.tables import Patient

    with UnitOfWork(settings, read_only=True) as uow:
        patient = uow.session.get(Patient, reminder.patient_id)
        assert patient is not None
        return patient.external_id


def history(settings: Settings, reminder_id: str) -> list[ReminderTransition]:
    with UnitOfWork(settings, read_only=True) as uow:
        statement = select(ReminderTransition).where(ReminderTransition.reminder_id == reminder_id)  # type: ignore[arg-type]
        rows = list(uow.session.execute(statement.order_by(ReminderTransition.id)).scalars())  # type: ignore[arg-type]
        uow.session.expunge_all()
        return rows


def audit_rows(settings: Settings, action: str) -> list[dict[str, object]]:
    return [row for row in audit.export(settings, org=ORG) if row["action"] == action]


def test_assign_to_me_reassign_unassign_and_my_work(settings: Settings) -> None:
    first = seed_reminder(settings, kind="pdmp_review")
    second = seed_reminder(settings, kind="urine_drug_test")
    colleague = sign_in(settings, "coord-bea")  # has signed in: can be given work
    alice = sign_in(settings, "coord-alice")
    page = alice.get("/worklist")
    token = csrf_of(page.text)
    assert "Nobody" in page.text and "Assign to me" in page.text

    view = "assignee=unassigned"
    response = alice.post(
        f"/worklist/reminders/{first.id}/assign", data={"csrf_token": token, "assignee": "me", "view": view}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/worklist?flash=assigned&assignee=unassigned"  # back to the view
    assert IDS.findall(alice.get("/worklist?assignee=me").text) == [first.id]
    assert IDS.findall(alice.get("/worklist?assignee=unassigned").text) == [second.id]

    reassigned = alice.post(
        f"/worklist/reminders/{first.id}/assign", data={"csrf_token": token, "assignee": "coord-bea"}
    )
    assert reassigned.headers["location"] == "/worklist?flash=assigned"
    assert IDS.findall(colleague.get("/worklist?assignee=me").text) == [first.id]
    assert IDS.findall(alice.get("/worklist?assignee=coord-bea").text) == [first.id]
    stranger = alice.post(
        f"/worklist/reminders/{second.id}/assign", data={"csrf_token": token, "assignee": "never-signed-in"}
    )
    assert stranger.headers["location"] == "/worklist?flash=invalid"
    assert alice.post(f"/worklist/reminders/{first.id}/unassign", data={"csrf_token": token}).headers["location"] == (
        "/worklist?flash=unassigned"
    )

    rows = [r for r in history(settings, first.id) if r.reason in ("assigned", "unassigned")]
    assert [(r.actor, r.reason, r.details) for r in rows] == [
        ("coordinator:coord-alice", "assigned", {"assigned_to": "coord-alice"}),
        ("coordinator:coord-alice", "assigned", {"assigned_to": "coord-bea", "previous": "coord-alice"}),
        ("coordinator:coord-alice", "unassigned", {"previous": "coord-bea"}),
    ]
    assert all(r.from_status == r.to_status == "due" for r in rows)
    assert history(settings, second.id) == []  # the refused assignment changed nothing
    audited = audit_rows(settings, "worklist.reminder.assign")
    assert [(r["outcome"], r["resource_id"]) for r in audited] == [
        ("success", first.id),
        ("success", first.id),
        ("invalid", second.id),
    ]
    assert [r["patient_id"] for r in audit_rows(settings, "worklist.reminder.unassign")] == [first.patient_id]


def test_assignment_api_and_reminder_fields(settings: Settings) -> None:
    reminder = seed_reminder(settings)
    closed = seed_reminder(settings, status="completed")
    sign_in(settings, "coord-bea")
    client = TestClient(create_app())
    headers = {"Authorization": f"Bearer {create_token(settings, ORG, 'coordinator', 'coord-alice')}"}
    url = f"/v1/reminders/{reminder.id}/assign"
    mine = client.post(url, json={"assignee": "coord-alice"}, headers=headers)
    assert mine.status_code == 200 and mine.json()["assigned_to"] == "coord-alice" and mine.json()["assigned_at"]
    assert client.post(url, json={"assignee": "coord-bea"}, headers=headers).json()["assigned_to"] == "coord-bea"
    assert client.post(url, json={"assignee": "nobody-known"}, headers=headers).status_code == 422
    assert client.post(url, json={"assignee": "bad name!"}, headers=headers).status_code == 422
    assert client.post(url, json={}, headers=headers).status_code == 422
    assert client.post(f"/v1/reminders/{closed.id}/assign", json={"assignee": None}, headers=headers).status_code == 409
    client_role = {"Authorization": f"Bearer {create_token(settings, ORG, 'client')}"}
    assert client.post(url, json={"assignee": None}, headers=client_role).status_code == 403
    other_org = {"Authorization": f"Bearer {create_token(settings, 'org-b', 'coordinator', 'coord-alice')}"}
    assert client.post(url, json={"assignee": "coord-alice"}, headers=other_org).status_code == 404

    detail = client.get(f"/v1/reminders/{reminder.id}", headers=headers).json()
    assert detail["assigned_to"] == "coord-bea"
    assert [h["details"] for h in detail["history"] if h["reason"] == "assigned"][-1] == {
        "assigned_to": "coord-bea",
        "previous": "coord-alice",
    }
    listed = client.get("/v1/reminders", params={"assigned_to": "coord-bea"}, headers=headers).json()["items"]
    assert [item["id"] for item in listed] == [reminder.id]
    assert client.post(url, json={"assignee": None}, headers=headers).json()["assigned_to"] is None
    # Refusals by role (403) and validation (422 before the route) are the API's; the domain's are audited.
    outcomes = [r["outcome"] for r in audit_rows(settings, "reminder.assign")]
    assert outcomes == ["success", "success", "invalid", "invalid", "success"]


def test_webhook_payload_and_calendar_carry_the_assignee_id_only(settings: Settings) -> None:
    reminder = seed_reminder(settings, status="scheduled", due_at=utcnow() + timedelta(days=1))
    with UnitOfWork(settings) as uow:
        row = uow.session.get(Reminder, reminder.id)
        assert row is not None
        row.assigned_to = "coord-alice"
        uow.commit()
    claimed = Claimed(reminder.id, ORG, reminder.patient_id, reminder.kind, reminder.due_at, "scheduled", None)
    claimed = Claimed(**{**claimed.__dict__, "assigned_to": "coord-alice"})
    event = _due_event(claimed, utcnow())
    assert event.data["assigned_to"] == "coord-alice"
    with UnitOfWork(settings) as uow:
        from shared.db.tables import WebhookEndpoint

        uow.session.add(
            WebhookEndpoint(
                org=ORG,
                url="https://hooks.example/x",
                secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        uow.session.flush()
        assert record_deliveries(uow, event, utcnow()) == 1
        from shared.db.tables import ChannelDelivery

        payload = uow.session.execute(select(ChannelDelivery)).scalar_one().payload
        uow.commit()
    assert payload["data"]["assigned_to"] == "coord-alice"
    assert "MRN" not in json.dumps(payload) and mrn_of(settings, reminder) not in json.dumps(payload)

    feed = create_token(settings, ORG, "coordinator", typ=FEED)
    body = TestClient(create_app()).get("/v1/reminders.ics", params={"token": feed}).content
    calendar = icalendar.Calendar.from_ical(body)
    (item,) = calendar.walk("VEVENT")
    assert str(item["X-CAREPATH-ASSIGNED-TO"]) == "coord-alice"
    assert mrn_of(settings, reminder).encode() not in body


def test_bulk_acknowledge_and_assign(settings: Settings) -> None:
    reminders = [seed_reminder(settings, kind=k) for k in ("pdmp_review", "urine_drug_test", "opioid_review_4w")]
    closed = seed_reminder(settings, status="dismissed")
    sign_in(settings, "coord-bea")
    alice = sign_in(settings, "coord-alice")
    token = csrf_of(alice.get("/worklist").text)
    ids = [reminders[0].id, reminders[1].id, closed.id]
    done = alice.post(
        "/worklist/bulk",
        data={"csrf_token": token, "operation": "acknowledge", "reminder_ids": ids, "view": "kind=pdmp_review"},
    )
    assert done.headers["location"] == "/worklist?flash=bulk&done=2&skipped=1&kind=pdmp_review"
    assert "2 reminders changed. 1 could not be changed" in alice.get(done.headers["location"]).text
    assigned = alice.post(
        "/worklist/bulk",
        data={"csrf_token": token, "operation": "assign", "assignee": "coord-bea", "reminder_ids": ids[:2]},
    )
    assert assigned.headers["location"] == "/worklist?flash=bulk&done=2&skipped=0"
    mine = alice.post(
        "/worklist/bulk", data={"csrf_token": token, "operation": "assign_me", "reminder_ids": [reminders[2].id]}
    )
    assert mine.headers["location"] == "/worklist?flash=bulk&done=1&skipped=0"
    api = {
        item["id"]: (item["status"], item["assigned_to"])
        for item in TestClient(create_app()).get("/v1/reminders", headers=auth(settings, ORG)).json()["items"]
    }
    assert api[reminders[0].id] == ("acknowledged", "coord-bea")
    assert api[reminders[1].id] == ("acknowledged", "coord-bea")
    assert api[reminders[2].id] == ("due", "coord-alice")
    # No CSRF token, nothing ticked, or "assign" without a coordinator: refused, nothing changes.
    assert alice.post("/worklist/bulk", data={"operation": "acknowledge", "reminder_ids": ids}).status_code == 403
    empty = alice.post("/worklist/bulk", data={"csrf_token": token, "operation": "acknowledge"})
    assert empty.headers["location"] == "/worklist?flash=bulk_invalid"
    nobody = alice.post("/worklist/bulk", data={"csrf_token": token, "operation": "assign", "reminder_ids": ids})
    assert nobody.headers["location"] == "/worklist?flash=bulk_invalid"
    unknown = alice.post("/worklist/bulk", data={"csrf_token": token, "operation": "delete", "reminder_ids": ids})
    assert unknown.headers["location"] == "/worklist?flash=bulk_invalid"
    assert len(audit_rows(settings, "worklist.reminder.acknowledge")) == 3  # 2 done, 1 refused (conflict)


def test_search_filters_pagination_and_csv_export(settings: Settings) -> None:
    now = utcnow()
    overdue = [seed_reminder(settings, kind="pdmp_review", due_at=now - timedelta(days=i + 1)) for i in range(55)]
    future = [seed_reminder(settings, kind="pt_follow_up", due_at=now + timedelta(days=i + 1)) for i in range(6)]
    for reminder in overdue[:3]:
        set_stage(settings, reminder.patient_id, "second_line")
    seed_reminder(settings, org="org-b", kind="pdmp_review")
    alice = sign_in(settings, "coord-alice")

    first = alice.get("/worklist")
    assert "Reminders 1–50 of 61" in first.text and "Page 1 of 2" in first.text
    second = alice.get("/worklist?page=2")
    assert "Reminders 51–61 of 61" in second.text
    all_ids = IDS.findall(first.text) + IDS.findall(second.text)
    assert len(all_ids) == len(set(all_ids)) == 61
    assert all_ids[:55] == [r.id for r in reversed(overdue)]  # overdue first, earliest due first
    assert IDS.findall(alice.get("/worklist?overdue=1&page=2").text) == [r.id for r in reversed(overdue)][50:]
    assert "of 55" in alice.get("/worklist?overdue=1").text
    assert IDS.findall(alice.get("/worklist?kind=pt_follow_up").text) == [r.id for r in future]
    staged = IDS.findall(alice.get("/worklist?stage=second_line").text)
    assert staged == [r.id for r in reversed(overdue[:3])]
    assert "Second-line treatment" in alice.get("/worklist?stage=second_line").text
    for bad in ("stage=nonsense", "page=0", "assignee=bad%20name", "status=closed", "overdue=maybe"):
        assert alice.get(f"/worklist?{bad}").status_code == 422, bad

    # MRN: an exact match within the organisation, through a POST, redirected to the patient's id.
    token = csrf_of(first.text)
    target = overdue[7]
    mrn = mrn_of(settings, target)
    found = alice.post("/worklist/search", data={"csrf_token": token, "mrn": mrn, "view": "overdue=1"})
    assert found.status_code == 303 and mrn not in found.headers["location"]
    assert found.headers["location"] == f"/worklist?overdue=1&patient={target.patient_id}"
    shown = alice.get(found.headers["location"]).text
    assert IDS.findall(shown) == [target.id] and f'value="{mrn}"' in shown
    assert alice.post("/worklist/search", data={"csrf_token": token, "mrn": mrn[:-1]}).headers["location"] == (
        "/worklist?flash=no_patient"
    )
    assert alice.post("/worklist/search", data={"mrn": mrn}).status_code == 403

    # The CSV export: the same filtered view, every page, and an audit row per patient (ids only).
    export = alice.get("/worklist.csv?overdue=1")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert [row["reminder_id"] for row in table] == [r.id for r in reversed(overdue)]
    assert {row["overdue"] for row in table} == {"yes"}
    assert table[0]["patient_mrn"] == mrn_of(settings, overdue[-1])
    assert "practice guideline" in table[0]["sources"]
    exported = audit_rows(settings, "worklist.export")
    assert len(exported) == 55 and {row["patient_id"] for row in exported} == {r.patient_id for r in overdue}
    assert {row["outcome"] for row in exported} == {"success"}
    trail = "\n".join(json.dumps(row) for row in audit.export(settings))
    assert "MRN-SECRET" not in trail  # neither the search nor the export put an MRN in the audit trail
    assert [r["patient_id"] for r in audit_rows(settings, "worklist.search") if r["outcome"] == "success"] == [
        target.patient_id
    ]
    by_patient = list(csv.DictReader(io.StringIO(alice.get(f"/worklist.csv?patient={target.patient_id}").text)))
    assert [row["reminder_id"] for row in by_patient] == [target.id]
    assert alice.get("/worklist.csv?stage=bogus").status_code == 422
    assert TestClient(create_app(), follow_redirects=False).get("/worklist.csv").headers["location"] == "/login"


def test_csv_cells_never_start_a_formula(settings: Settings) -> None:
    seed_reminder(settings, text='=HYPERLINK("https://evil.example")')
    alice = sign_in(settings, "coord-alice")
    (row,) = list(csv.DictReader(io.StringIO(alice.get("/worklist.csv").text)))
    assert row["recommendation"].startswith("'=")


def test_timezone_config_cli_and_api(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "set", "--org", ORG, "--timezone", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.get(OrgConfig, ORG) is None  # nothing stored
        assert orgtime.timezone_name(uow, ORG) == "UTC"
    assert main(["config", "set", "--org", ORG, "--timezone", "Europe/Berlin"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["timezone"] == "Europe/Berlin"
    assert "time zone of org-a set to Europe/Berlin" in captured.err
    assert main(["config", "set", "--org", ORG, "--timezone", "../../etc/passwd"]) == 2
    with UnitOfWork(settings, read_only=True) as uow:
        assert orgtime.timezone_name(uow, ORG) == "Europe/Berlin"

    intake = TestClient(create_intake_app())
    ops = {"Authorization": f"Bearer {create_token(settings, ORG, 'ops')}"}
    assert intake.get("/v1/organisation/pathway-config", headers=ops).json()["timezone"] == "Europe/Berlin"
    refused = intake.put("/v1/organisation/pathway-config", json={"timezone": "Not/AZone"}, headers=ops)
    assert refused.status_code == 422
    changed = intake.put("/v1/organisation/pathway-config", json={"timezone": "America/New_York"}, headers=ops)
    assert changed.status_code == 200 and changed.json()["timezone"] == "America/New_York"
    assert changed.json()["changed"] is True and changed.json()["reevaluation_run_id"] is None
    unchanged = intake.put("/v1/organisation/pathway-config", json={}, headers=ops)
    assert unchanged.json()["timezone"] == "America/New_York"


def _berlin(settings: Settings) -> None:
    with UnitOfWork(settings) as uow:
        orgtime.set_timezone(uow, ORG, "Europe/Berlin")
        uow.commit()


@pytest.mark.parametrize(
    ("due", "shown"),
    [
        (datetime(2027, 3, 27, 9, 0, tzinfo=UTC), "2027-03-27 10:00 CET"),  # the day before spring forward
        (datetime(2027, 3, 29, 9, 0, tzinfo=UTC), "2027-03-29 11:00 CEST"),  # the day after
        (datetime(2027, 10, 30, 22, 30, tzinfo=UTC), "2027-10-31 00:30 CEST"),  # a local date, not the UTC one
        (datetime(2027, 11, 1, 9, 0, tzinfo=UTC), "2027-11-01 10:00 CET"),
    ],
)
def test_pages_ics_and_emails_in_the_organisation_zone(settings: Settings, due: datetime, shown: str) -> None:
    _berlin(settings)
    reminder = seed_reminder(settings, status="due", due_at=due)
    coordinator = sign_in(settings, "coord-alice")
    page = coordinator.get("/worklist").text
    assert f'<time datetime="{isoformat(due)}">{shown}</time>' in page
    assert "Europe/Berlin" in page and "times in UTC" not in page
    patient_page = coordinator.get(f"/worklist/patients/{reminder.patient_id}")  # the patient page too
    assert patient_page.status_code == 200, patient_page.text
    assert f'<time datetime="{isoformat(due)}">{shown}</time>' in patient_page.text
    assert "(times in Europe/Berlin)" in patient_page.text and "UTC)" not in patient_page.text
    overview_page = coordinator.get("/worklist/overview").text
    assert re.search(r"as of <time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d CES?T</time>", overview_page)

    feed = create_token(settings, ORG, "coordinator", typ=FEED)
    body = TestClient(create_app()).get("/v1/reminders.ics", params={"token": feed}).content
    assert b"DTSTART;TZID=Europe/Berlin:" + orgtime.local(due, BERLIN).strftime("%Y%m%dT%H%M%S").encode() in body
    assert b"BEGIN:VTIMEZONE" in body and b"TZID:Europe/Berlin" in body
    (event,) = icalendar.Calendar.from_ical(body).walk("VEVENT")
    assert event.decoded("dtstart").astimezone(UTC) == due  # the same instant for every calendar

    payload = webhook_payload(
        events.REMINDER_DUE, due, {"reminder_id": reminder.id, "kind": "x", "due_at": isoformat(due)}
    )
    message = email_message(payload, "from@x.example", "to@x.example", "m1", BERLIN)
    assert f"due_at: {shown} ({isoformat(due)})" in message.get_content()


def test_emails_sent_by_the_dispatcher_show_local_times(settings: Settings) -> None:
    _berlin(settings)
    due = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 02:30 CET, after the clocks went back
    reminder = seed_reminder(settings, due_at=due)
    with UnitOfWork(settings) as uow:
        uow.session.add(EmailRecipient(org=ORG, address="team@clinic.example", created_at=utcnow()))
        uow.session.flush()
        event = events.Event(
            events.REMINDER_DUE,
            events.SOURCE_SCHEDULER,
            reminder.patient_id,
            {"reminder_id": reminder.id, "org": ORG, "due_at": isoformat(due), "delivered_at": isoformat(due)},
        )
        assert record_deliveries(uow, event, utcnow()) == 1
        uow.commit()
    senders, _, email = recording_senders()
    assert dispatch_due(settings, utcnow(), senders) == 1
    (sent,) = email.sent
    assert isinstance(sent, EmailMessage)
    assert "due_at: 2027-10-31 02:30 CET (2027-10-31T01:30:00Z)" in sent.get_content()
    # The message leads to the patient's page at the reminder (ids only), not to a bare worklist.
    page = f"/worklist/patients/{reminder.patient_id}#reminder-{reminder.id}"
    assert f"The patient's page (sign in first): {page}" in sent.get_content()


def test_snooze_form_takes_a_local_wall_time(settings: Settings) -> None:
    assert parse_until("2027-03-29T09:00", BERLIN) == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert parse_until("2027-03-26T09:00", BERLIN) == datetime(2027, 3, 26, 8, 0, tzinfo=UTC)
    assert parse_until("2027-03-26T09:00") == datetime(2027, 3, 26, 9, 0, tzinfo=UTC)
    _berlin(settings)
    reminder = seed_reminder(settings)
    alice = sign_in(settings, "coord-alice")
    page = alice.get("/worklist").text
    assert "Snooze until (Europe/Berlin)" in page
    local = (utcnow() + timedelta(days=2)).astimezone(BERLIN).replace(second=0, microsecond=0)
    response = alice.post(
        f"/worklist/reminders/{reminder.id}/snooze",
        data={"csrf_token": csrf_of(page), "until": local.strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.headers["location"] == "/worklist?flash=snoozed"
    with UnitOfWork(settings, read_only=True) as uow:
        stored = uow.session.get(Reminder, reminder.id)
        assert stored is not None and stored.snoozed_until == local.astimezone(UTC)


def test_scheduler_counts_escalation_in_local_business_days(settings: Settings) -> None:
    from services.notifications.scheduler import deliver_due

    _berlin(settings)
    due = datetime(2027, 3, 26, 14, 0, tzinfo=UTC)  # Friday 15:00 CET
    reminder = seed_reminder(settings, status="scheduled", due_at=due, next_action_at=due)
    deliver_due(settings, due, worker_id="test", limit=10)
    with UnitOfWork(settings, read_only=True) as uow:
        stored = uow.session.get(Reminder, reminder.id)
        assert stored is not None and stored.status == "due"
        assert stored.next_action_at == datetime(2027, 3, 30, 13, 0, tzinfo=UTC)  # Tuesday 15:00 CEST


def test_audit_rows_of_the_workspace_hold_no_mrn(settings: Settings) -> None:
    reminder = seed_reminder(settings)
    alice = sign_in(settings, "coord-alice")
    token = csrf_of(alice.get("/worklist").text)
    alice.post("/worklist/search", data={"csrf_token": token, "mrn": mrn_of(settings, reminder)})
    alice.get("/worklist.csv")
    with UnitOfWork(settings, read_only=True) as uow:
        stored = list(uow.session.execute(select(AuditEvent)).scalars())
    assert stored and all("MRN" not in json.dumps(row.model_dump(mode="json")) for row in stored)
