"""Property-based fuzzing of both HTTP APIs with schemathesis, in process, against the real database.

Every operation of the intake and notifications OpenAPI documents gets generated requests (valid and
invalid ones) with a valid bearer token of org-a. Path ids are sometimes swapped for rows that exist
(a seeded patient, reminders, a webhook endpoint, an email recipient) so the handlers run past the 404.
Checks: no 5xx, only documented status codes, responses match their schema and content type, an
undocumented method is a 405 naming the allowed ones, and a write answered with a 4xx stores nothing.

Bounded and deterministic: a few examples per operation, derandomized, no example database.
By hand: FUZZ_EXAMPLES=200 searches deeper (every phase for every operation); FUZZ_ALL_CHECKS=1 adds
schemathesis' other checks (see docs/security.md for what they report).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy import func, select
from sqlmodel import SQLModel

from carepath.apps import create_intake_app as intake_app
from carepath.apps import create_notifications_app as notifications_app
from services.pathway.rules.params import params_for
from shared.auth import create_token
from shared.clock import utcnow
from shared.db.engine import get_engine
from shared.db.schema import upgrade
from shared.db.tables import Patient, Reminder
from shared.db.uow import UnitOfWork
from shared.messaging.celery_app import get_celery
from shared.settings import Settings, get_settings
from shared.testing import REDIS_URL, fresh_postgres_database, sqlite_url, test_backend

pytestmark = pytest.mark.integration

ORG = "org-a"
ROLES = ("coordinator", "ops")
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
DEEP = MAX_EXAMPLES > 10  # a search by hand: every phase for every operation
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    unsupported_method,  # a 405 whose Allow header lists every method of the path
]
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PARAMETERS = sorted(name for name in params_for().as_json_dict() if name != "profile")
# A what-if run after every accepted configuration: the organisation's parameters must still evaluate.
WHAT_IF = {
    "updates": [
        {"type": "surgery", "occurred_at": "2025-01-01T00:00:00Z", "data": {"procedure": "laminectomy"}},
        {
            "type": "pain_assessment",
            "occurred_at": "2025-06-01T00:00:00Z",
            "data": {"pain_nrs": 7, "distribution": "axial"},
        },
        {
            "type": "therapy",
            "occurred_at": "2025-06-02T00:00:00Z",
            "data": {"kind": "physical_therapy", "status": "started", "modality": "active"},
        },
        {
            "type": "medication",
            "occurred_at": "2025-06-02T00:00:00Z",
            "data": {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 30},
        },
        {
            "type": "medication",
            "occurred_at": "2025-07-02T00:00:00Z",
            "data": {"drug_class": "opioid_ir", "action": "dose_increased", "mme_per_day": 60},
        },
        {
            "type": "procedure",
            "occurred_at": "2025-06-03T00:00:00Z",
            "data": {"kind": "medial_branch_block", "relief_percent": 80},
        },
    ],
    "now": "2199-12-31T00:00:00Z",
}
# The seeded rows; path parameters of these names are sometimes replaced by one of them.
SEEDED: dict[str, list[str]] = {}


def _seed(settings: Settings) -> None:
    now = utcnow()
    with UnitOfWork(settings) as uow:
        patient = Patient(org=ORG, external_id=f"MRN-FUZZ-{uuid.uuid4().hex[:12]}", created_at=now)
        uow.session.add(patient)
        uow.session.flush()
        reminders = [
            Reminder(
                org=ORG,
                patient_id=patient.id,
                kind="pt_follow_up",
                due_at=now + timedelta(hours=hours),
                status=status,
                text="PT follow-up due",
                citation="G1",
                fact_ids=["f-1"],
                next_action_at=now + timedelta(hours=hours) if status == "scheduled" else None,
                created_at=now,
                updated_at=now,
            )
            for hours, status in ((-2, "due"), (-1, "acknowledged"), (3, "scheduled"), (-5, "completed"))
        ]
        uow.session.add_all(reminders)
        uow.commit()
        SEEDED.clear()
        SEEDED["patient_id"] = [patient.id]
        SEEDED["reminder_id"] = [r.id for r in reminders]


def _seed_channels(client: Any, headers: dict[str, str]) -> None:
    endpoint = client.post("/v1/webhook-endpoints", json={"url": "https://127.0.0.1:9/carepath"}, headers=headers)
    recipient = client.post("/v1/email-recipients", json={"address": "coordinators@example.org"}, headers=headers)
    assert endpoint.status_code == 201 and recipient.status_code == 201, (endpoint.text, recipient.text)
    SEEDED["endpoint_id"] = [endpoint.json()["id"]]
    SEEDED["recipient_id"] = [recipient.json()["id"]]


def _schema(create_app: Callable[[], Any], *, coverage: bool) -> Any:
    """The app's OpenAPI document (served without touching the database); requests go to the same app."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    # The coverage phase sends every boundary case the schema defines (hundreds for the update union).
    schema.config.phases.coverage.enabled = coverage or DEEP

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        swaps = [name for name in path_parameters or {} if name in SEEDED]
        if not swaps:
            return st.just(path_parameters)
        real = {**path_parameters, **{name: SEEDED[name][0] for name in swaps}}
        choices = [path_parameters, real] + [{**real, name: value} for name in swaps for value in SEEDED[name][1:]]
        return st.sampled_from(choices)

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        """Pathway-config overrides with the real parameter names (random names are only ever 422), and
        values around the limits first."""
        if not (
            context.operation.path.endswith("/pathway-config")
            and isinstance(body, dict)
            and set(body) <= {"profile", "overrides"}
        ):
            return st.just(body)
        values = st.sampled_from([10**9, 36_500, 36_501, 28, 0, -1, 1.5, "1/3", None])
        overrides = st.dictionaries(st.sampled_from(PARAMETERS), values, min_size=1, max_size=3)
        return overrides.map(lambda chosen: {**body, "overrides": chosen})

    return schema


# Operations whose bodies are lists of updates: fuzzing only (their coverage phase alone takes ~30 s).
UPDATE_BODIES = r"/updates|:evaluate"
intake = _schema(intake_app, coverage=True).exclude(path_regex=UPDATE_BODIES)
intake_updates = _schema(intake_app, coverage=False).include(path_regex=UPDATE_BODIES)
notifications = _schema(notifications_app, coverage=True)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, pg_template: str | None) -> Iterator[dict[str, str]]:
    """One migrated database for the whole module (as tests/conftest.py's `settings` makes one per test:
    migrating or copying it 36 times would cost more than the fuzzing); each test seeds fresh rows."""
    var_dir = tmp_path_factory.mktemp("fuzz") / "var"
    env = {"CAREPATH_VAR_DIR": str(var_dir), "CAREPATH_ALLOW_PRIVATE_WEBHOOKS": "true"}
    if test_backend() == "pg":
        with fresh_postgres_database(template=pg_template) as url:
            yield {**env, "CAREPATH_DATABASE_URL": url, "CAREPATH_BROKER_URL": REDIS_URL}
            get_engine(url).dispose()
    else:
        env = {**env, "CAREPATH_DATABASE_URL": sqlite_url(var_dir), "CAREPATH_BROKER_URL": "filesystem://"}
        upgrade(env["CAREPATH_DATABASE_URL"])
        yield env


@pytest.fixture
def fuzz_settings(database: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for key, value in database.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    get_celery.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    get_celery.cache_clear()


@dataclass
class Tokens:
    by_role: dict[str, str]
    turns: Iterator[str] = field(default_factory=lambda: itertools.cycle(ROLES))  # roles taken in turn


@pytest.fixture
def tokens(fuzz_settings: Settings) -> Tokens:
    """Seeds fresh org-a rows; then a coordinator's and an ops token of org-a."""
    issued = Tokens({role: create_token(fuzz_settings, ORG, role) for role in ROLES})
    _seed(fuzz_settings)
    with TestClient(notifications_app()) as client:
        _seed_channels(client, {"Authorization": f"Bearer {issued.by_role['coordinator']}"})
    return issued


def _stored() -> tuple[Any, ...]:
    """Row counts of every table, and each reminder's status and version: what a refused write must keep."""
    # The audit trail records refused requests too: every table but it.
    tables = sorted(
        (table for table in SQLModel.metadata.tables.values() if table.name != "audit_event"),
        key=lambda table: table.name,
    )
    with UnitOfWork(read_only=True) as uow:
        counts = uow.session.execute(
            select(*[select(func.count()).select_from(table).scalar_subquery() for table in tables])
        ).one()
        reminders = frozenset(uow.session.execute(select(Reminder.id, Reminder.status, Reminder.version)).all())
    return (*counts, reminders)


def _call(case: Any, tokens: Tokens) -> None:
    checks = None if os.environ.get("FUZZ_ALL_CHECKS") == "1" else CHECKS  # by hand: every schemathesis check
    write = case.method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    before = _stored() if write else None
    role = next(tokens.turns)
    if case.path.startswith("/v1/organisation/"):
        role = "ops"  # the configuration is ops-only: a coordinator's token would only ever meet 403
    auth = f"Bearer {tokens.by_role[role]}"
    response = case.call_and_validate(headers={"Authorization": auth}, checks=checks)
    if case.method.upper() == "PUT" and case.path.endswith("/pathway-config") and response.status_code == 200:
        with TestClient(intake_app()) as client:
            what_if = client.post("/v1/pathway:evaluate", json=WHAT_IF, headers={"Authorization": auth})
        assert what_if.status_code == 200, f"what-if after {case.body!r}: {what_if.status_code} {what_if.text[:200]}"
    if write and 400 <= response.status_code < 500:
        assert _stored() == before, f"{case.method} {case.formatted_path} answered {response.status_code} but stored"


@intake.parametrize()
@FUZZ_SETTINGS
def test_intake_api(case: Any, tokens: Tokens) -> None:
    _call(case, tokens)


@intake_updates.parametrize()
@FUZZ_SETTINGS
def test_intake_update_bodies(case: Any, tokens: Tokens) -> None:
    _call(case, tokens)


@notifications.parametrize()
@FUZZ_SETTINGS
def test_notifications_api(case: Any, tokens: Tokens) -> None:
    _call(case, tokens)
