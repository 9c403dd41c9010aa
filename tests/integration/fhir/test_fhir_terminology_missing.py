"""Without the opioid value sets (CAREPATH_OPIOID_CDS_DIR pointing nowhere) the intake still starts in
development — patients and native updates work — while FHIR ingestion answers 503 with nothing stored and
medications are never guessed; outside development `carepath intake` refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carepath.apps import create_intake_app
from shared.settings import Settings, get_settings
from tests.integration.fhir.fhir_support import auth, load, post_bundle, row_counts

ROOT = Path(__file__).resolve().parents[3]


def test_missing_value_sets_degrade_to_503_in_development(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CAREPATH_OPIOID_CDS_DIR", str(tmp_path / "nowhere"))
    get_settings.cache_clear()
    client = TestClient(create_intake_app())
    created = client.post("/v1/patients", json={"external_id": "MRN-T1"}, headers=auth(settings))
    assert created.status_code == 201
    before = row_counts(settings)
    response = post_bundle(client, settings, load("postlaminectomy-course.bundle.json"))
    assert response.status_code == 503, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "CAREPATH_OPIOID_CDS_DIR" in response.text
    assert row_counts(settings) == before


def test_intake_refuses_to_start_without_value_sets_in_production(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CAREPATH_ENV": "production",
        "CAREPATH_SECRET_KEY": "x" * 48,
        "CAREPATH_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "CAREPATH_VAR_DIR": str(tmp_path / "var"),
        "CAREPATH_OPIOID_CDS_DIR": str(tmp_path / "nowhere"),
        "CAREPATH_INTAKE_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "carepath.cli", "intake"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78, done.stderr
    assert "opioid value sets and MME factors are missing" in done.stderr and "Traceback" not in done.stderr
