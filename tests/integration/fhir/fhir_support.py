"""Helpers of the FHIR tests: tokens, the example data, row counts of every table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.auth import create_token
from shared.db.tables import metadata
from shared.db.uow import UnitOfWork
from shared.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "data" / "fhir"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def auth(settings: Settings, org: str = "org-a", role: str = "client") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(settings, org, role)}"}


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def row_counts(settings: Settings) -> dict[str, int]:
    """The number of rows of every table but the audit trail (which records refusals too)."""
    with UnitOfWork(settings, read_only=True) as uow:
        return {
            name: uow.session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in sorted(metadata.tables.items())
            if name != "audit_event"
        }


def post_bundle(client: TestClient, settings: Settings, bundle: Any, org: str = "org-a") -> Any:
    return client.post("/fhir/r4", content=json.dumps(bundle), headers={**auth(settings, org), **FHIR_JSON})
