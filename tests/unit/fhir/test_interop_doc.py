"""docs/interop.md lists every code of the mapping's tables (codes.py), so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from shared.fhir import codes

DOC = (Path(__file__).resolve().parents[3] / "docs" / "interop.md").read_text()


def test_every_code_table_and_code_is_documented() -> None:
    missing = [
        f"{table.name}: {system}|{code}"
        for table in codes.ALL_TABLES
        for system, code in table.entries
        if f"`{code}`" not in DOC or f"`{system}`" not in DOC
    ]
    assert not missing
    assert all(f"### `{table.name}`" in DOC for table in codes.ALL_TABLES)
