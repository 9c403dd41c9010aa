"""Rolling out a rule set over a database of patients that the previous one evaluated, on real processes.

The database is seeded with tests/data/rules-2026.1/patients.json: facts, and the assessments that rule set
2026.1 really produced for them (tests/data/make_rule_fixture.py ran the 2026.1 engine). The 2026.1 pathway's
`assessed` events go through the real notifications consumer, so the reminders are what reconciliation built
and the scheduler delivered. Then, with the current engine:

1. `carepath reevaluate --dry-run` prints per organisation what the test computes itself from the engine.
2. `carepath reevaluate --all` is SIGKILLed mid-run and resumed: one re-evaluation event per patient.
3. `carepath up` evaluates everybody: each stored assessment is the engine's output under the current rule
   set version; the history says what changed (and, across rule sets, that it was a rule change); the active
   reminders are exactly the pending deadlines, those a rule change created are marked as such, delivered once
   and not escalated at once.

While the current engine is still 2026.1 (until the 2026.2 rules land) the same flow runs and checks the
time-driven changes, and that nothing is labelled a rule change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.notifications.escalation import escalation_at
from services.notifications.reconcile import handle_event as reconcile_event
from services.notifications.scheduler import deliver_due
from services.pathway.handler import assessed_event, describe_changes
from services.pathway.rules import RULE_SET_VERSION, Fact, evaluate, params_for
from shared.clock import as_utc
from shared.db.tables import Assessment, OutboxMessage, Patient, PatientUpdate, ReevaluationRun, Reminder
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_ASSESSED, PATHWAY_REEVALUATION_REQUESTED, REMINDER_DUE
from shared.messaging.consumer import consume
from shared.messaging.publisher import InMemoryPublisher
from shared.messaging.relay import relay_once
from shared.messaging.routing import NOTIFICATIONS
from shared.settings import Settings
from tests.e2e.conftest import Stack, carepath_command, wait_for

pytestmark = pytest.mark.e2e

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "data/rules-2026.1/patients.json").read_text())
OLD_VERSION = FIXTURE["rule_set_version"]
RULE_CHANGE = RULE_SET_VERSION != OLD_VERSION
ORGS = ("org-rollout-a", "org-rollout-b")
ACTIVE = {"scheduled", "due", "acknowledged", "snoozed"}
PRECEDENCE = {"pending": 2, "satisfied": 1, "cancelled": 0}


def _patients() -> list[tuple[str, dict[str, Any]]]:
    """(org, fixture patient): two thirds in the first organisation, the rest in the second."""
    return [(ORGS[index % 3 == 2], patient) for index, patient in enumerate(FIXTURE["patients"])]


def _facts(patient: dict[str, Any]) -> list[Fact]:
    return [Fact(f["id"], f["type"], datetime.fromisoformat(f["occurred_at"]), f["data"]) for f in patient["facts"]]


def _instant(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


# --- the test's own reading of two assessments (independent of services/pathway/dryrun.py) ------------------


def _states(deadlines: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    states: dict[tuple[str, str], str] = {}
    for d in deadlines:
        key = (d["kind"], d["due_at"])
        if key not in states or PRECEDENCE[d["status"]] > PRECEDENCE[states[key]]:
            states[key] = d["status"]
    return states


def _pending(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {key for key, status in _states(body["deadlines"]).items() if status == "pending"}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    old_flags, new_flags = {f["code"] for f in old["flags"]}, {f["code"] for f in new["flags"]}
    new_states = _states(new["deadlines"])
    added = _pending(new) - _pending(old)
    withdrawn = {key for key in _pending(old) - _pending(new) if new_states.get(key) != "satisfied"}
    return {
        "stage": (old["stage"], new["stage"]) if old["stage"] != new["stage"] else None,
        "gained": new_flags - old_flags,
        "lost": old_flags - new_flags,
        "added": added,
        "withdrawn": withdrawn,
    }


def _expected(now: datetime) -> dict[str, dict[str, Any]]:
    """Per organisation: the dry run's counts, computed from the engine at `now`."""
    params = params_for()
    out: dict[str, dict[str, Any]] = {}
    for org, patient in _patients():
        new = evaluate(_facts(patient), now, params).to_dict()
        diff = _diff(patient["assessment"], new)
        counts = out.setdefault(
            org,
            {
                "patients": 0,
                "stage_changes": 0,
                "gained": Counter(),
                "lost": Counter(),
                "moves": Counter(),
                "scheduled": 0,
                "past_due": 0,
                "cancelled": 0,
            },
        )
        counts["patients"] += 1
        if diff["stage"]:
            counts["stage_changes"] += 1
            counts["moves"][diff["stage"]] += 1
        counts["gained"].update(diff["gained"])
        counts["lost"].update(diff["lost"])
        counts["scheduled"] += len(diff["added"])
        counts["past_due"] += sum(1 for _, due in diff["added"] if _instant(due) <= now)
        counts["cancelled"] += len(diff["withdrawn"])
    return out


def _as_report(expected: dict[str, Any]) -> dict[str, Any]:
    return {
        "patients": expected["patients"],
        "stage_changes": expected["stage_changes"],
        "stage_moves": sorted((a, b, n) for (a, b), n in expected["moves"].items()),
        "flags_gained": dict(expected["gained"]),
        "flags_lost": dict(expected["lost"]),
        "reminders": {
            "scheduled": expected["scheduled"],
            "scheduled_past_due": expected["past_due"],
            "cancelled": expected["cancelled"],
        },
    }


def _reported(org: dict[str, Any]) -> dict[str, Any]:
    return {
        "patients": org["patients"],
        "stage_changes": org["stage_changes"],
        "stage_moves": sorted((m["from"], m["to"], m["patients"]) for m in org["stage_moves"]),
        "flags_gained": org["flags_gained"],
        "flags_lost": org["flags_lost"],
        "reminders": org["reminders"],
    }


# --- seeding: what a database run by the 2026.1 release holds ------------------------------------------------


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        database_url=env["CAREPATH_DATABASE_URL"],
        broker_url=env["CAREPATH_BROKER_URL"],
        var_dir=env["CAREPATH_VAR_DIR"],
    )


def _seed(settings: Settings) -> None:
    evaluated_at = _instant(FIXTURE["now"])
    with UnitOfWork(settings) as uow:
        for org, item in _patients():
            body = item["assessment"]
            patient = Patient(
                id=item["patient_id"], org=org, external_id=f"TEST-{item['key']}"[:200], created_at=evaluated_at
            )
            patient.next_evaluation_at = _instant(body["next_evaluation_at"]) if body["next_evaluation_at"] else None
            uow.session.add(patient)
            uow.session.flush()
            for fact in _facts(item):
                uow.session.add(
                    PatientUpdate(
                        id=fact.id,
                        patient_id=patient.id,
                        org=org,
                        type=fact.type,
                        occurred_at=fact.occurred_at,
                        occurred_at_text=fact.occurred_at.isoformat(),
                        data=dict(fact.data),
                        received_at=evaluated_at,
                    )
                )
            uow.session.add(
                Assessment(
                    patient_id=patient.id,
                    org=org,
                    seq=1,
                    stage=body["stage"],
                    rule_set_version=body["rule_set_version"],
                    profile=body["profile"],
                    params_digest=body["params_digest"],
                    updates_evaluated=body["updates_evaluated"],
                    evaluated_at=evaluated_at,
                    body=body,
                    changes=describe_changes(None, body),
                    trigger="update",
                )
            )
            uow.publish(assessed_event(patient, 1, body, "update"))  # as the 2026.1 worker published it
        uow.commit()
    _reconcile(settings)
    deliver_due(settings, worker_id="seed-scheduler", limit=10_000)  # the old release delivered what was due


def _reconcile(settings: Settings) -> None:
    """The real notifications consumer on the seeded assessed events (relay -> in-memory broker -> consume)."""
    publisher = InMemoryPublisher()
    while relay_once(publisher, settings):
        for consumer, envelope, outbox_id in publisher.drain():
            if consumer == NOTIFICATIONS:
                consume(consumer, envelope, outbox_id, reconcile_event, settings)


# --- reading the database ---------------------------------------------------------------------------------


def _events(settings: Settings, event_type: str) -> Counter[str]:
    query = select(OutboxMessage.envelope).where(OutboxMessage.event_type == event_type)
    with UnitOfWork(settings, read_only=True) as uow:
        return Counter(envelope["subject"] for envelope in uow.session.execute(query).scalars())


def _enqueued(settings: Settings) -> int:
    with UnitOfWork(settings, read_only=True) as uow:
        return int(uow.session.execute(select(func.coalesce(func.sum(ReevaluationRun.enqueued), 0))).scalar_one())


def _settled(settings: Settings) -> bool:
    """Every event handled by the pathway and notifications, and nothing due left undelivered."""
    now = datetime.now(UTC)
    with UnitOfWork(settings, read_only=True) as uow:
        unfinished = uow.session.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.done_at.is_(None), OutboxMessage.consumer.in_(("pathway", "notifications")))
        ).scalar_one()
        undelivered = uow.session.execute(
            select(func.count()).select_from(Reminder).where(Reminder.status == "scheduled", Reminder.due_at <= now)
        ).scalar_one()
    return unfinished == 0 and undelivered == 0


def _latest(settings: Settings) -> dict[str, Assessment]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(select(Assessment).order_by(Assessment.seq)).scalars())
        uow.session.expunge_all()
    return {row.patient_id: row for row in rows}  # the highest seq wins


def _reminders(settings: Settings) -> list[Reminder]:
    with UnitOfWork(settings, read_only=True) as uow:
        rows = list(uow.session.execute(select(Reminder)).scalars())
        uow.session.expunge_all()
    return rows


# --- the test -------------------------------------------------------------------------------------------------


def _dry_run(stack: Stack) -> tuple[dict[str, Any], str]:
    report = json.loads(stack.run("reevaluate", "--dry-run", "--all", "--json"))
    table = stack.run("reevaluate", "--dry-run", "--org", ORGS[0])
    return report, table


def _killed_mid_run(stack: Stack, settings: Settings, total: int) -> None:
    first = subprocess.Popen(
        [*carepath_command(), "reevaluate", "--all", "--rate", "4", "--max-backlog", "0"],
        env=stack.env,
        cwd=stack.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: first.poll() is not None or _enqueued(settings) >= 8,
            timeout=60,
            interval=0.02,
            what="the run to enqueue its first batches",
        )
        assert first.poll() is None, "the run finished before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=30)
    assert 8 <= _enqueued(settings) < total
    assert sum(_events(settings, PATHWAY_REEVALUATION_REQUESTED).values()) == _enqueued(settings)
    stack.run("reevaluate", "--all", "--rate", "1000", "--max-backlog", "0")  # resumes the same runs


def test_rule_set_rollout_over_a_database_evaluated_by_2026_1(stack_factory: Stack) -> None:
    stack = stack_factory
    settings = _settings(stack.env)
    Path(stack.env["CAREPATH_VAR_DIR"]).mkdir(parents=True, exist_ok=True)  # where the SQLite file goes
    stack.run("migrate")
    _seed(settings)
    seeded = {r.id: r for r in _reminders(settings)}
    assert seeded and any(r.status == "due" for r in seeded.values())
    patients = {item["patient_id"]: item for _, item in _patients()}

    before = _expected(datetime.now(UTC))
    report, table = _dry_run(stack)
    assert report["rule_set_version"] == RULE_SET_VERSION and report["dry_run"] is True
    assert [org["org"] for org in report["orgs"]] == list(ORGS)
    for org in report["orgs"]:
        assert org["stored_rule_sets"] == {OLD_VERSION: before[org["org"]]["patients"]}
        assert _reported(org) == _as_report(before[org["org"]]), org["org"]
    first = report["orgs"][0]
    [row] = [line.split() for line in table.splitlines() if line.startswith(ORGS[0] + " ")]
    reminders = first["reminders"]
    assert row == [
        ORGS[0],
        *map(
            str,
            (
                first["patients"],
                first["would_change"],
                first["stage_changes"],
                reminders["scheduled"],
                reminders["scheduled_past_due"],
                reminders["cancelled"],
            ),
        ),
    ]
    assert ORGS[1] not in table
    with UnitOfWork(settings, read_only=True) as uow:  # the dry run stored nothing, not even a run row
        assert uow.session.execute(select(func.count()).select_from(ReevaluationRun)).scalar_one() == 0
        assert uow.session.execute(select(func.count()).select_from(Assessment)).scalar_one() == len(patients)

    _killed_mid_run(stack, settings, len(patients))
    assert _events(settings, PATHWAY_REEVALUATION_REQUESTED) == dict.fromkeys(patients, 1)

    stack.start("up")
    stack.wait_ready()
    wait_for(lambda: stack.assert_running() or _settled(settings), timeout=60, what="the re-evaluation to settle")
    after = _expected(datetime.now(UTC))
    assert after == before, "a time threshold passed during the test; the counts moved under it"

    latest = _latest(settings)
    params = params_for()
    changed = {p for p, row in latest.items() if row.seq > 1}
    assert len(changed) == sum(org["would_change"] for org in report["orgs"])
    assert all(row.seq <= 2 for row in latest.values())
    assessed = _events(settings, PATHWAY_ASSESSED)  # the seeded one, and one more where deadlines moved
    assert set(assessed) == set(patients) and set(assessed.values()) <= {1, 2}
    assert all(assessed[p] == 2 for p in changed if _pending(latest[p].body) != _pending(patients[p]["assessment"]))
    for patient_id, row in latest.items():
        facts = _facts(patients[patient_id])
        assert row.rule_set_version == RULE_SET_VERSION
        if patient_id in changed:  # exactly what the engine says at the instant the worker evaluated
            assert row.body == evaluate(facts, as_utc(row.evaluated_at), params).to_dict()
        else:
            assert row.body == patients[patient_id]["assessment"]

    _check_history(stack, patients, latest, changed)
    _check_reminders(stack, settings, seeded, latest)


def _check_history(stack: Stack, patients: dict[str, Any], latest: dict[str, Assessment], changed: set[str]) -> None:
    headers = {org: stack.token(org, "client") for org in ORGS}
    for patient_id in changed:
        org = latest[patient_id].org
        response = httpx.get(f"{stack.intake_url}/v1/patients/{patient_id}/pathway/history", headers=headers[org])
        assert response.status_code == 200, response.text
        newest, oldest = response.json()["items"]
        assert (newest["seq"], oldest["seq"]) == (2, 1)
        changes, diff = newest["changes"], _diff(patients[patient_id]["assessment"], newest["assessment"])
        if RULE_CHANGE:
            assert newest["trigger"] == "rule_set_changed"
            assert changes["rule_set_version"] == {"from": OLD_VERSION, "to": RULE_SET_VERSION}
        else:
            assert newest["trigger"] in ("reevaluation", "scheduled") and "rule_set_version" not in changes
        assert changes.get("stage") == ({"from": diff["stage"][0], "to": diff["stage"][1]} if diff["stage"] else None)
        flags = changes.get("flags", {"added": [], "removed": []})
        assert (set(flags["added"]), set(flags["removed"])) == (diff["gained"], diff["lost"])
        for key in ("added", "withdrawn"):
            listed = {(d["kind"], d["due_at"]) for d in changes.get(f"deadlines_{key}", [])}
            assert listed == diff[key], (patient_id, key)


def _check_reminders(
    stack: Stack, settings: Settings, seeded: dict[str, Reminder], latest: dict[str, Assessment]
) -> None:
    reminders = _reminders(settings)
    by_patient: dict[str, set[tuple[str, str]]] = {}
    for reminder in reminders:
        if reminder.status in ACTIVE:
            key = (reminder.kind, reminder.due_at.astimezone(UTC).isoformat().replace("+00:00", "Z"))
            by_patient.setdefault(reminder.patient_id, set()).add(key)
    for patient_id, row in latest.items():
        assert by_patient.get(patient_id, set()) == _pending(row.body), patient_id
    delivered = _events(settings, REMINDER_DUE)
    with UnitOfWork(settings, read_only=True) as uow:
        due_ids = Counter(
            e["data"]["reminder_id"]
            for e in uow.session.execute(
                select(OutboxMessage.envelope).where(OutboxMessage.event_type == REMINDER_DUE)
            ).scalars()
        )
    assert set(due_ids.values()) <= {1}  # every reminder delivered at most once
    assert sum(delivered.values()) == sum(1 for r in reminders if r.delivered_at is not None)

    new = [r for r in reminders if r.id not in seeded]
    now = datetime.now(UTC)
    for reminder in new:
        expected_origin = ("rule_change", RULE_SET_VERSION) if RULE_CHANGE else ("pathway", None)
        assert (reminder.origin, reminder.origin_rule_set_version) == expected_origin
        if as_utc(reminder.due_at) <= as_utc(reminder.created_at):  # made due in the past: delivered at once, once
            assert reminder.status == "due" and reminder.delivered_at is not None and reminder.escalated_at is None
            assert as_utc(reminder.next_action_at) == escalation_at(reminder.kind, as_utc(reminder.delivered_at))
            assert as_utc(reminder.next_action_at) > now  # escalation counted from delivery, not from due_at
    coordinator = {org: stack.token(org, "coordinator") for org in ORGS}
    for reminder in new[:5]:
        response = httpx.get(
            f"{stack.notifications_url}/v1/reminders",
            params={"patient_id": reminder.patient_id, "limit": 200},
            headers=coordinator[reminder.org],
        )
        assert response.status_code == 200, response.text
        [item] = [i for i in response.json()["items"] if i["id"] == reminder.id]
        assert (item["origin"], item["origin_rule_set_version"]) == (reminder.origin, reminder.origin_rule_set_version)
        assert "sources" in item and item["citation"] == reminder.citation
