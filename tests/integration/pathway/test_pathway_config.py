"""Per-organisation pathway configuration through `carepath config` and the ops-only HTTP route: validation,
organisation scoping, and a change re-evaluating exactly that organisation's patients."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from carepath.apps import create_intake_app as create_app
from carepath.cli import main
from services.pathway.reevaluation import drive_runs
from services.pathway.rules import params_for
from shared.auth import create_token
from shared.db.tables import OrgConfig, ReevaluationRun
from shared.db.uow import UnitOfWork
from shared.settings import Settings

pytestmark = pytest.mark.integration
DEFAULT_DIGEST = params_for().digest()


def _runs(settings: Settings, org: str) -> list[ReevaluationRun]:
    with UnitOfWork(settings, read_only=True) as uow:
        query = select(ReevaluationRun).where(ReevaluationRun.org == org).order_by(ReevaluationRun.created_at)
        runs = list(uow.session.execute(query).scalars())
        uow.session.expunge_all()
        return runs


def _headers(settings: Settings, org: str, role: str = "ops") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, org, role)}"}


def _drive(settings: Settings) -> int:
    return drive_runs(threading.Event(), settings=settings, max_backlog=0)


def test_cli_change_reevaluates_every_patient_of_that_org_only(settings: Settings, kit, capsys) -> None:
    ours, theirs = kit.patients("org-a", 12), kit.patients("org-b", 5)
    assert {kit.latest(p).params_digest for p in ours + theirs} == {DEFAULT_DIGEST}

    assert (
        main(
            [
                "config",
                "set",
                "--org",
                "org-a",
                "--profile",
                "us-medicare-lcd",
                "--param",
                "first_line_trial_days=35",
                "--param",
                "relief_fraction=0.25",
            ]
        )
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    expected = params_for("us-medicare-lcd", {"first_line_trial_days": 35, "relief_fraction": "1/4"}).digest()
    assert shown["overrides"] == {"first_line_trial_days": 35, "relief_fraction": "1/4"}
    assert shown["params_digest"] == expected and shown["reevaluation"]["status"] == "running"
    assert _runs(settings, "org-b") == []

    assert _drive(settings) == 12
    assert kit.drain() == 12
    assert kit.reevaluation_events() == dict.fromkeys(ours, 1)
    for patient_id in ours:
        latest = kit.latest(patient_id)
        assert (latest.profile, latest.params_digest) == ("us-medicare-lcd", expected)
        assert latest.trigger == "reevaluation"
        assert set(latest.changes["other"]) >= {"profile", "params_digest"}
    for patient_id in theirs:
        assert kit.assessment_count(patient_id) == 1
        assert kit.latest(patient_id).params_digest == DEFAULT_DIGEST
    [run] = _runs(settings, "org-a")
    assert (run.status, run.enqueued, run.total, run.requested_by) == ("done", 12, 12, "cli")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--param", "no_such_days=3"], "unknown pathway parameter 'no_such_days'"),
        (["--param", "pt_follow_up_days=-1"], "whole number"),
        (["--param", "relief_fraction=2"], "relief_fraction"),
        (["--param", "mbb_relief_percent=120"], "percentage"),
        (["--param", "first_line_trial_days"], "expected name=value"),
        (["--clear-param", "no_such_days"], "unknown pathway parameter"),
        (["--profile", "uk-nice"], "unknown policy profile"),
    ],
)
def test_cli_refuses_invalid_configuration_with_exit_2(settings: Settings, kit, capsys, argv, message):
    kit.patients("org-a", 2)
    assert main(["config", "set", "--org", "org-a", *argv]) == 2
    assert message in capsys.readouterr().err
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.get(OrgConfig, "org-a") is None
    assert _runs(settings, "org-a") == []


def test_cli_clear_param_returns_to_the_profile_default_and_reevaluates(settings: Settings, kit, capsys):
    patients = kit.patients("org-a", 3)
    assert main(["config", "set", "--org", "org-a", "--param", "tolerance_days=21"]) == 0
    assert main(["config", "set", "--org", "org-a", "--param", "tolerance_days=21"]) == 0  # no change, no run
    assert len(_runs(settings, "org-a")) == 1
    assert main(["config", "set", "--org", "org-a", "--clear-param", "tolerance_days"]) == 0
    capsys.readouterr()
    assert main(["config", "show", "--org", "org-a"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["overrides"] == {} and shown["params"]["tolerance_days"] == 28
    first, second = _runs(settings, "org-a")
    assert (first.status, second.status) == ("superseded", "running")
    assert _drive(settings) == 3 and kit.drain() == 3
    assert {kit.latest(p).params_digest for p in patients} == {DEFAULT_DIGEST}


def test_http_route_is_ops_only_and_scoped_to_the_token_org(settings: Settings, kit) -> None:
    ours, theirs = kit.patients("org-a", 4), kit.patients("org-b", 3)
    client = TestClient(create_app())
    for role in ("client", "coordinator"):
        headers = _headers(settings, "org-a", role)
        assert client.get("/v1/organisation/pathway-config", headers=headers).status_code == 403
        assert (
            client.put(
                "/v1/organisation/pathway-config", json={"overrides": {"tolerance_days": 1}}, headers=headers
            ).status_code
            == 403
        )
    assert client.get("/v1/organisation/pathway-config").status_code == 401

    body = {"profile": "us-medicare-lcd", "overrides": {"naloxone_mme_threshold": 90}}
    response = client.put("/v1/organisation/pathway-config", json=body, headers=_headers(settings, "org-a"))
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["changed"] is True and changed["reevaluation"]["id"] == changed["reevaluation_run_id"]
    other = client.get("/v1/organisation/pathway-config", headers=_headers(settings, "org-b")).json()
    assert (other["org"], other["profile"], other["overrides"]) == ("org-b", "asra-2020", {})
    assert other["params_digest"] == DEFAULT_DIGEST and other["reevaluation"] is None
    again = client.put("/v1/organisation/pathway-config", json=body, headers=_headers(settings, "org-a")).json()
    assert again["changed"] is False and again["reevaluation_run_id"] is None

    assert _drive(settings) == 4 and kit.drain() == 4
    assert {kit.latest(p).params_digest for p in ours} == {changed["params_digest"]}
    assert all(kit.assessment_count(p) == 1 for p in theirs)
    assert kit.reevaluation_events() == dict.fromkeys(ours, 1)


@pytest.mark.parametrize(
    "body",
    [
        {"overrides": {"no_such_days": 3}},
        {"overrides": {"tolerance_days": "soon"}},
        {"overrides": {"tolerance_days": True}},
        {"profile": "uk-nice"},
        {"overrides": {}, "org": "org-b"},
    ],
)
def test_http_refuses_invalid_configuration_with_422(settings: Settings, body) -> None:
    client = TestClient(create_app())
    response = client.put("/v1/organisation/pathway-config", json=body, headers=_headers(settings, "org-a"))
    assert response.status_code == 422, response.text
    with UnitOfWork(settings, read_only=True) as uow:
        assert uow.session.get(OrgConfig, "org-a") is None and uow.session.get(OrgConfig, "org-b") is None


def test_history_shows_the_reevaluation_newest_first_with_what_changed(settings: Settings, kit) -> None:
    from services.pathway.queries import BadCursor, pathway_history_page
    from shared.db.tables import Patient

    [patient_id] = kit.patients("org-a", 1)
    client = TestClient(create_app())
    ops = _headers(settings, "org-a")
    assert (
        client.put(
            "/v1/organisation/pathway-config", json={"overrides": {"pt_start_check_days": 10}}, headers=ops
        ).status_code
        == 200
    )
    _drive(settings)
    kit.drain()
    reader = _headers(settings, "org-a", "client")
    history = client.get(f"/v1/patients/{patient_id}/pathway/history", headers=reader)
    items = history.json()["items"]
    assert [item["seq"] for item in items] == [2, 1]
    assert items[0]["trigger"] == "reevaluation" and "params_digest" in items[0]["changes"]["other"]
    assert items[0]["assessment"]["params_digest"] == items[0]["params_digest"] != DEFAULT_DIGEST
    assert items[1]["changes"]["first"] is True
    other_org = _headers(settings, "org-b", "client")
    assert client.get(f"/v1/patients/{patient_id}/pathway/history", headers=other_org).status_code == 404

    with UnitOfWork(settings, read_only=True) as uow:
        patient = uow.session.get(Patient, patient_id)
        first = pathway_history_page(uow, patient, limit=1)
        second = pathway_history_page(uow, patient, limit=1, cursor=first["next_cursor"])
        with pytest.raises(BadCursor):
            pathway_history_page(uow, patient, cursor="seq-2")
    assert [i["seq"] for i in first["items"]] == [2] and first["next_cursor"] == "2"
    assert [i["seq"] for i in second["items"]] == [1] and second["next_cursor"] is None


def test_a_stored_configuration_that_no_longer_validates_is_shown_skipped_and_fixable(settings, kit, capsys):
    from services.pathway.reevaluation import ensure_current_rules
    from shared.clock import utcnow

    kit.patients("org-a", 2)
    kit.patients("org-b", 2)
    with UnitOfWork(settings) as uow:  # as if a new rule set had dropped this parameter
        uow.session.add(OrgConfig(org="org-a", profile="asra-2020", overrides={"retired_days": 5}, updated_at=utcnow()))
        uow.commit()
    assert main(["config", "show", "--org", "org-a"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["valid"] is False and shown["params"] is None
    assert ensure_current_rules(settings) == []  # org-a skipped (logged), org-b still handled
    assert [run.reason for run in _runs(settings, "org-b")] == ["baseline"] and _runs(settings, "org-a") == []
    assert main(["config", "set", "--org", "org-a", "--clear-param", "retired_days"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    [run] = _runs(settings, "org-a")
    assert run.status == "running" and run.params_digest == DEFAULT_DIGEST
