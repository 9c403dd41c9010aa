"""The audit trail is append-only in the database itself: the migration's triggers refuse UPDATE and
DELETE (and TRUNCATE on PostgreSQL), whoever connects, and an audit row of a change commits or rolls back
with the change."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from shared import audit
from shared.db.engine import get_engine
from shared.db.tables import AuditEvent, Patient, table_of
from shared.db.uow import UnitOfWork
from shared.settings import Settings

pytestmark = pytest.mark.integration
TABLE = table_of(AuditEvent)


def _one_event(settings: Settings) -> None:
    audit.record_now(settings, audit.system_actor("test", "org-a"), "test.event", route="command test")


def _count(settings: Settings) -> int:
    with get_engine(settings.effective_database_url).connect() as connection:
        return int(connection.execute(select(func.count()).select_from(TABLE)).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        update(TABLE).values(outcome="success", actor_subject="someone-else"),
        delete(TABLE),
        delete(TABLE).where(TABLE.c.action == "test.event"),
    ],
    ids=["update", "delete all", "delete one"],
)
def test_update_and_delete_of_audit_rows_fail(settings: Settings, statement: object) -> None:
    _one_event(settings)
    with pytest.raises(DBAPIError, match="append-only"), get_engine(settings.effective_database_url).begin() as c:
        c.execute(statement)  # type: ignore[call-overload]
    assert _count(settings) == 1
    with UnitOfWork(settings, read_only=True) as uow:
        row = uow.session.execute(select(TABLE)).mappings().one()
    assert (row["actor_subject"], row["outcome"]) == ("test", "success")


def test_truncate_fails_on_postgresql(settings: Settings, backend: str) -> None:
    if backend != "pg":
        pytest.skip("SQLite has no TRUNCATE (its DELETE without WHERE is refused above)")
    _one_event(settings)
    with pytest.raises(DBAPIError, match="append-only"), get_engine(settings.effective_database_url).begin() as c:
        c.execute(text("TRUNCATE audit_event"))
    assert _count(settings) == 1


def test_inserting_still_works_and_ids_grow(settings: Settings) -> None:
    for _ in range(3):
        _one_event(settings)
    with UnitOfWork(settings, read_only=True) as uow:
        ids = list(uow.session.execute(select(TABLE.c.id).order_by(TABLE.c.id)).scalars())
    assert len(ids) == 3 and ids == sorted(set(ids))


def test_an_audit_row_shares_its_changes_transaction(settings: Settings) -> None:
    """Rolled back with the change it records; committed with it."""
    actor = audit.system_actor("test", "org-a")
    with UnitOfWork(settings) as uow:
        patient = Patient(org="org-a", external_id="MRN-TX-1", created_at=audit.utcnow())
        uow.session.add(patient)
        uow.session.flush()
        audit.record(uow, actor, "patient.create", route="command test", patient_id=patient.id)
        uow.rollback()
    assert _count(settings) == 0
    with UnitOfWork(settings) as uow:
        patient = Patient(org="org-a", external_id="MRN-TX-1", created_at=audit.utcnow())
        uow.session.add(patient)
        uow.session.flush()
        audit.record(uow, actor, "patient.create", route="command test", patient_id=patient.id)
        uow.commit()
        created = patient.id
    assert [e["patient_id"] for e in audit.export(settings, org="org-a")] == [created]
