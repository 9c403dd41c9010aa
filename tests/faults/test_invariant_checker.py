"""The invariant checker itself must be able to fail: broken histories and lost updates are reported."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from shared.db.schema import upgrade
from tests.faults.invariants import _valid_path, check


def test_history_paths() -> None:
    assert _valid_path([(None, "scheduled"), ("scheduled", "due"), ("due", "acknowledged")])
    assert _valid_path([(None, "scheduled"), ("scheduled", "cancelled"), ("cancelled", "scheduled")])
    assert not _valid_path([])
    assert not _valid_path([("scheduled", "due")])  # no creation
    assert not _valid_path([(None, "scheduled"), ("due", "acknowledged")])  # a gap
    assert not _valid_path([(None, "scheduled"), ("scheduled", "acknowledged")])  # not an edge
    assert not _valid_path([(None, "scheduled"), ("scheduled", "dismissed"), ("dismissed", "scheduled")])


def test_lost_and_unevaluated_updates_are_reported(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("INSERT INTO patient (id, org, external_id, created_at) VALUES ('p1', 'o', 'x', '2026-01-01')"))
        db.execute(
            text(
                "INSERT INTO patient_update (id, patient_id, org, type, occurred_at, occurred_at_text, data,"
                " received_at) VALUES ('u1', 'p1', 'o', 'surgery', '2026-01-01', '2026-01-01T00:00:00Z', '{}',"
                " '2026-01-01')"
            )
        )
    engine.dispose()
    report = check(url, ["u1", "u-never-stored"])
    assert report.lost == ["u-never-stored"]
    assert report.unevaluated == ["p1"]
    assert not report.ok
