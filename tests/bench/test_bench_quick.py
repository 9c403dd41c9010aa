"""`carepath bench --quick` end to end: the harness starts its own stack (its own PostgreSQL database, a
private redis-server, a SQLite var dir), runs real processes under load from separate processes, and
writes every figure, the Markdown and the plots. No performance threshold is asserted here: the figures
and their ceilings are read in docs/performance.md (the full run)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared.testing import test_backend
from tests.e2e.conftest import carepath_command

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(test_backend() != "pg", reason="the harness needs the local PostgreSQL (distributed pass)"),
]

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(900)
def test_quick_bench_produces_every_figure_the_markdown_and_the_plots(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [*carepath_command(), "bench", "--quick", "--out", str(out)], capture_output=True, text=True, timeout=880
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    data = json.loads((out / "results.json").read_text())
    results = data["results"]
    assert results["failures"] == {}
    assert data["machine"]["cores"] and data["machine"]["git_commit"] and data["machine"]["load_avg_start"]

    intake = results["intake"]
    summary = {k: {f: v for f, v in r.items() if f != "percentiles_ms"} for k, r in intake.items()}
    for key in ("pg", "sqlite", "hello", "pgbench"):
        assert intake[key]["rate"] > 0, (key, summary, data["machine"]["load_avg_start"])
    for key in ("pg", "sqlite"):  # every POST answered was a 202, and stored
        assert intake[key]["status_errors"] == 0, summary
        assert intake[key]["stored_updates"] >= intake[key]["requests"]

    pathway = results["pathway"]
    workers = data["plan"]["workers"]
    for key in ("pg", "sqlite", "scaling_pg", "noop_pg", "noop_sqlite"):
        assert [row["workers"] for row in pathway[key]] == workers, key
        assert all(row["complete"] for row in pathway[key]), key
    assert all(row["evaluations"] >= 1 for row in pathway["pg"] + pathway["sqlite"])

    steady = results["steady"]
    assert steady["accepted"] == steady["sent"] > 0
    assert steady["latency_s"]["n"] == steady["accepted"]  # every accepted update was evaluated
    assert results["reminders"]["delivered"] == data["plan"]["reminders"]
    cds = results["cds"]
    assert cds["statuses"] == [200] and cds["order_sign_ms"]["n"] == cds["what_if_ms"]["n"] == cds["runs"]
    growth = results["growth"]
    assert [p["reminders"] for p in growth["points"]] == [
        data["plan"]["growth_small"][0],
        data["plan"]["growth_large"][0],
    ]
    for point in growth["points"]:
        assert "Index" in point["plans"]["due"] and "Index" in point["plans"]["worklist"]
    assert {"intake", "worker", "relay", "scheduler", "notifications"} <= set(data["memory"])

    markdown = (out / "run.md").read_text()
    for figure in (
        "| 1 intake",
        "| 2 burst",
        "| 2 scaling",
        "| 2 update → assessment",
        "| 3 reminders",
        "| 4 CDS",
        "| 5 growth",
        "| 6 peak RSS: worker",
        "EXPLAIN ANALYZE",
    ):
        assert figure in markdown, figure
    for name in (
        "intake_latency",
        "pathway_scaling",
        "steady_latency",
        "reminder_lateness",
        "cds_latency",
        "growth",
        "memory",
    ):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG, name
