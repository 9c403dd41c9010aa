"""The reminders API over HTTP: every lifecycle transition, every invalid one (409), organisation
scoping (404, empty lists), roles, parameter validation, paging and the calendar feed."""

from __future__ import annotations

from datetime import timedelta

import icalendar
import pytest
from reminder_testkit import T0

from services.notifications.scheduler import deliver_due
from shared.auth import FEED, create_token
from shared.clock import isoformat, utcnow

pytestmark = pytest.mark.integration

ACTIONS = {
    "acknowledge": None,
    "complete": None,
    "snooze": lambda: {"until": isoformat(utcnow() + timedelta(hours=2)), "reason": "clinic closed"},
    "dismiss": lambda: {"reason": "already_done", "comment": "seen in clinic"},
}
# from status -> {action: resulting status}; every action missing from a row must be a 409
ALLOWED = {
    "scheduled": {"complete": "completed", "dismiss": "dismissed"},
    "due": {
        "acknowledge": "acknowledged",
        "complete": "completed",
        "snooze": "snoozed",
        "dismiss": "dismissed",
    },
    "acknowledged": {"complete": "completed", "snooze": "snoozed", "dismiss": "dismissed"},
    "snoozed": {
        "acknowledge": "acknowledged",
        "complete": "completed",
        "snooze": "snoozed",
        "dismiss": "dismissed",
    },
    "completed": {},
    "dismissed": {},
    "cancelled": {},
}
CASES = [(start, action) for start in ALLOWED for action in ACTIONS]


def _post(client, auth, reminder_id, action, role="coordinator", org="org-a"):  # type: ignore[no-untyped-def]
    body = ACTIONS[action]
    return client.post(f"/v1/reminders/{reminder_id}/{action}", json=body() if body else None, headers=auth(org, role))


@pytest.mark.parametrize(("start", "action"), CASES, ids=[f"{s}-{a}" for s, a in CASES])
def test_every_transition_and_every_invalid_one(client, auth, make_reminder, start, action):  # type: ignore[no-untyped-def]
    extra = {"snoozed_until": utcnow() + timedelta(hours=1)} if start == "snoozed" else {}
    reminder = make_reminder(status=start, **extra)
    response = _post(client, auth, reminder.id, action)
    expected = ALLOWED[start].get(action)
    if expected is None:
        assert response.status_code == 409, response.text
        assert client.get(f"/v1/reminders/{reminder.id}", headers=auth()).json()["status"] == start
        return
    assert response.status_code == 200, response.text
    assert response.json()["status"] == expected
    detail = client.get(f"/v1/reminders/{reminder.id}", headers=auth()).json()
    assert detail["status"] == expected
    last = detail["history"][-1]
    assert (last["from_status"], last["to_status"]) == (start, expected)
    assert last["actor"].startswith("coordinator:")


def test_dismiss_keeps_reason_and_comment_and_unknown_reason_is_422(client, auth, make_reminder):  # type: ignore[no-untyped-def]
    reminder = make_reminder(status="due")
    bad = client.post(f"/v1/reminders/{reminder.id}/dismiss", json={"reason": "Bored!"}, headers=auth())
    assert bad.status_code == 422
    ok = client.post(
        f"/v1/reminders/{reminder.id}/dismiss",
        json={"reason": "patient_declined", "comment": "declined PT"},
        headers=auth(),
    )
    assert ok.status_code == 200
    detail = client.get(f"/v1/reminders/{reminder.id}", headers=auth()).json()
    assert (detail["dismiss_reason"], detail["dismiss_comment"]) == ("patient_declined", "declined PT")
    assert detail["history"][-1]["reason"] == "patient_declined"
    assert detail["history"][-1]["comment"] == "declined PT"
    own_code = make_reminder(status="due")  # an organisation's own reason code is kept as given
    kept = client.post(f"/v1/reminders/{own_code.id}/dismiss", json={"reason": "moved_out_of_area"}, headers=auth())
    assert kept.status_code == 200
    assert client.get(f"/v1/reminders/{own_code.id}", headers=auth()).json()["dismiss_reason"] == "moved_out_of_area"


@pytest.mark.parametrize("until", ["2020-01-01T00:00:00Z", "2099-01-01T00:00:00", "soon"])
def test_snooze_needs_an_aware_future_instant(client, auth, make_reminder, until):  # type: ignore[no-untyped-def]
    reminder = make_reminder(status="due")
    response = client.post(f"/v1/reminders/{reminder.id}/snooze", json={"until": until}, headers=auth())
    assert response.status_code == 422
    assert client.get(f"/v1/reminders/{reminder.id}", headers=auth()).json()["status"] == "due"


def test_snoozed_reminder_returns_to_due_at_until(settings, client, auth, make_reminder):  # type: ignore[no-untyped-def]
    reminder = make_reminder(status="due", delivered_at=T0, next_action_at=T0 + timedelta(days=2))
    until = utcnow() + timedelta(hours=3)
    response = client.post(f"/v1/reminders/{reminder.id}/snooze", json={"until": isoformat(until)}, headers=auth())
    assert response.status_code == 200
    assert response.json()["snoozed_until"] == isoformat(until)
    assert deliver_due(settings, until - timedelta(seconds=1), worker_id="w", limit=10)["unsnoozed"] == 0
    assert client.get(f"/v1/reminders/{reminder.id}", headers=auth()).json()["status"] == "snoozed"
    assert deliver_due(settings, until, worker_id="w", limit=10)["unsnoozed"] == 1
    detail = client.get(f"/v1/reminders/{reminder.id}", headers=auth()).json()
    assert detail["status"] == "due" and detail["snoozed_until"] is None
    assert [h["to_status"] for h in detail["history"]] == ["snoozed", "due"]
    assert detail["history"][-1]["actor"].startswith("scheduler:")


def test_other_organisation_gets_404_and_sees_nothing(client, auth, make_reminder):  # type: ignore[no-untyped-def]
    mine = make_reminder("org-a", status="due")
    make_reminder("org-b", status="due")
    for action in ACTIONS:
        assert _post(client, auth, mine.id, action, org="org-b").status_code == 404
    assert client.get(f"/v1/reminders/{mine.id}", headers=auth("org-b")).status_code == 404
    listed = client.get("/v1/reminders", headers=auth("org-b")).json()["items"]
    assert mine.id not in {item["id"] for item in listed} and len(listed) == 1
    by_patient = client.get("/v1/reminders", params={"patient_id": mine.patient_id}, headers=auth("org-b"))
    assert by_patient.json() == {"items": [], "next_cursor": None}
    assert client.get(f"/v1/reminders/{mine.id}", headers=auth("org-a")).json()["status"] == "due"


def test_roles_and_tokens(client, auth, make_reminder):  # type: ignore[no-untyped-def]
    reminder = make_reminder(status="due")
    assert client.get("/v1/reminders").status_code == 401
    assert client.get("/v1/reminders", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert client.get("/v1/reminders", headers=auth(role="client")).status_code == 200
    assert _post(client, auth, reminder.id, "acknowledge", role="client").status_code == 403
    assert _post(client, auth, reminder.id, "acknowledge", role="ops").status_code == 200


def test_list_filters_and_stable_cursor_paging(client, auth, make_patient, make_reminder):  # type: ignore[no-untyped-def]
    patient = make_patient()
    created = [
        make_reminder(patient_id=patient, kind=kind, due_at=T0 + timedelta(days=day), status=status)
        for day, (kind, status) in enumerate(
            [
                ("pt_follow_up", "scheduled"),
                ("pdmp_review", "due"),
                ("pt_follow_up", "due"),
                ("pdmp_review", "completed"),
                ("pt_follow_up", "scheduled"),
            ]
        )
    ]
    make_reminder(due_at=T0)  # another patient
    seen, cursor = [], None
    while True:
        params = {"patient_id": patient, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/reminders", params=params, headers=auth()).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r.id for r in created]
    due = client.get("/v1/reminders", params={"patient_id": patient, "status": "due"}, headers=auth()).json()
    assert [i["id"] for i in due["items"]] == [created[1].id, created[2].id]
    kinds = client.get("/v1/reminders", params={"patient_id": patient, "kind": "pdmp_review"}, headers=auth()).json()
    assert [i["id"] for i in kinds["items"]] == [created[1].id, created[3].id]
    before = client.get(
        "/v1/reminders",
        params={"patient_id": patient, "due_before": isoformat(T0 + timedelta(days=2))},
        headers=auth(),
    ).json()
    assert [i["id"] for i in before["items"]] == [created[0].id, created[1].id]
    item = before["items"][0]
    assert set(item) >= {
        "id",
        "patient_id",
        "kind",
        "due_at",
        "status",
        "text",
        "citation",
        "delivered_at",
        "escalated_at",
        "snoozed_until",
        "fact_ids",
    }


@pytest.mark.parametrize(
    "params",
    [
        {"status": "lost"},
        {"limit": 0},
        {"limit": 1000},
        {"due_before": "2026-01-01T00:00:00"},
        {"due_before": "tomorrow"},
        {"cursor": "not-a-cursor"},
        {"kind": "DROP TABLE"},
    ],
)
def test_list_rejects_bad_parameters(client, auth, params):  # type: ignore[no-untyped-def]
    assert client.get("/v1/reminders", params=params, headers=auth()).status_code == 422


def test_calendar_feed_holds_only_the_organisations_scheduled_and_due(client, settings, make_reminder):  # type: ignore[no-untyped-def]
    scheduled = make_reminder("org-a", status="scheduled")
    due = make_reminder("org-a", status="due", kind="pdmp_review")
    make_reminder("org-a", status="completed")
    other = make_reminder("org-b", status="scheduled")
    assert client.get("/v1/reminders.ics").status_code == 401
    feed = create_token(settings, "org-a", "coordinator", typ=FEED)
    # Calendar apps cannot send headers: the feed token as ?token=.
    response = client.get("/v1/reminders.ics", params={"token": feed})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(response.content)
    events = {str(e["uid"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {f"{scheduled.id}@carepath", f"{due.id}@carepath"}
    assert other.patient_id not in response.text
    event = events[f"{due.id}@carepath"]
    assert "pdmp_review" in str(event["summary"]) and due.patient_id in str(event["description"])
    # The event leads to the patient's page, at the reminder (ids only).
    assert str(event["url"]) == f"http://testserver/worklist/patients/{due.patient_id}#reminder-{due.id}"
    # No clinical text: neither the reminder's sentence nor its citation, and no MRN.
    assert due.text not in response.text and due.citation not in response.text and "MRN" not in response.text
    assert events[f"{scheduled.id}@carepath"].decoded("dtstart") == scheduled.due_at
    assert client.get("/v1/reminders.ics", params={"token": feed + "x"}).status_code == 401
    assert client.get("/v1/reminders", params={"token": feed}).status_code == 401  # the API takes headers only
    assert client.get("/v1/reminders", headers={"Authorization": f"Bearer {feed}"}).status_code == 401


def test_openapi_declares_every_status(client):  # type: ignore[no-untyped-def]
    paths = client.get("/openapi.json").json()["paths"]
    for action in ACTIONS:
        declared = set(paths[f"/v1/reminders/{{reminder_id}}/{action}"]["post"]["responses"])
        assert {"200", "401", "403", "404", "409", "422"} <= declared
    assert {"200", "401", "422"} <= set(paths["/v1/reminders"]["get"]["responses"])
