"""The run's table (printed), its Markdown (for docs/performance.md) and its plots (matplotlib PNGs)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

PLOTS = ("intake_latency", "pathway_scaling", "steady_latency", "reminder_lateness", "cds_latency", "growth", "memory")


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rows(results: dict[str, Any], memory: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, measured, ceiling in the same run, ratio, target) for every figure that ran."""
    out: list[tuple[str, str, str, str, str]] = []
    intake = results.get("intake")
    if intake:
        hello, pgb = intake["hello"], intake["pgbench"]
        for backend, name in (("pg", "PostgreSQL"), ("sqlite", "SQLite (embedded)")):
            r = intake[backend]
            out.append(
                (
                    f"1 intake POSTs/s, 64 conn, {name}",
                    f"{_f(r['rate'])}/s, p50 {_f(r['p50_ms'])} ms, p99 {_f(r['p99_ms'])} ms, "
                    f"{_f(r['cpu_ms_per_request'], 2)} ms CPU/POST, errors {r['errors']}",
                    f"hello-world {_f(hello['rate'])}/s (p99 {_f(hello['p99_ms'])} ms)"
                    + (f"; pgbench {_f(pgb['rate'])} tx/s" if backend == "pg" else ""),
                    f"{r['ratio_hello']:.3f} × hello"
                    + (f"; {r['ratio_pgbench']:.3f} × pgbench" if backend == "pg" else ""),
                    "≥ 0.25 × (goal 0.4 ×) hello, p99 < 100 ms",
                )
            )
    pathway = results.get("pathway")
    if pathway:
        for key, name in (("pg", "PostgreSQL + Redis"), ("sqlite", "SQLite + filesystem broker")):
            for r in pathway.get(key, []):
                out.append(
                    (
                        f"2 burst {_f(r['updates'])} updates, {r['workers']} worker(s), {name}",
                        f"drain {_f(r['drain_s'])} s{'' if r['complete'] else ' (INCOMPLETE)'}, "
                        f"{_f(r['updates_per_s'])} updates/s, {_f(r['evaluations_per_s'])} evaluations/s, "
                        f"worker {_f(r.get('worker_cpu_ms_per_update'), 1)} ms CPU/update",
                        f"no-op Celery {_f(r.get('noop_tasks_per_s'))} tasks/s",
                        f"{_f(r.get('ratio_noop'), 3)} × no-op",
                        "≥ 1 × no-op",
                    )
                )
        for r in pathway.get("scaling_pg", []):
            out.append(
                (
                    f"2 scaling {_f(r['updates'])} updates, {r['workers']} worker(s), PostgreSQL + Redis",
                    f"drain {_f(r['drain_s'])} s, {_f(r['updates_per_s'])} updates/s",
                    "—",
                    "—",
                    "issue 15 table",
                )
            )
    steady = results.get("steady")
    if steady and steady["latency_s"].get("n"):
        lat = steady["latency_s"]
        out.append(
            (
                f"2 update → assessment, steady {_f(steady['offered_rate'], 0)}/s offered",
                f"p50 {_f(lat['p50'], 3)} s, p99 {_f(lat['p99'], 3)} s ({_f(steady['achieved_rate'])}/s accepted)",
                "—",
                "—",
                "p99 < 1 s",
            )
        )
    reminders = results.get("reminders")
    if reminders and reminders["recorded_s"].get("n"):
        rec = reminders["recorded_s"]
        out.append(
            (
                f"3 reminders {_f(reminders['reminders'])} due within {_f(reminders['window_s'], 0)} s",
                f"delivered_at − due_at p50 {_f(rec['p50'], 3)} s, p99 {_f(rec['p99'], 3)} s",
                "—",
                "—",
                "p99 ≤ 1 s",
            )
        )
    cds = results.get("cds")
    if cds:
        for key, name in (("order_sign_ms", "order-sign"), ("what_if_ms", "pathway:evaluate")):
            r = cds[key]
            out.append(
                (
                    f"4 CDS {name}, 200-update history",
                    f"p50 {_f(r.get('p50'))} ms, p95 {_f(r.get('p95'))} ms",
                    "—",
                    "—",
                    "p95 < 500 ms" if key == "order_sign_ms" else "—",
                )
            )
    growth = results.get("growth")
    if growth:
        small, large = growth["points"]
        ratios = growth["ratios"]
        for key, name, unit in (
            ("due_query_ms", "scheduler due query", "ms"),
            ("worklist_query_ms", "worklist query", "ms"),
            ("intake_rate", "intake rate", "/s"),
        ):
            out.append(
                (
                    f"5 growth: {name}",
                    f"{_f(large[key], 2)} {unit} at {_f(large['reminders'])} reminders",
                    f"{_f(small[key], 2)} {unit} at {_f(small['reminders'])} reminders",
                    f"{_f(ratios[key], 3)} ×",
                    "within 10 %",
                )
            )
        for key, name in (("worklist_page", "reminders API page"), ("worklist_html", "worklist HTML page")):
            if f"{key}_ms" not in large:  # results of a run before the HTML page was measured
                continue
            out.append(
                (
                    f"5 growth: {name} (HTTP p50)",
                    f"{_f(large[f'{key}_ms']['p50'])} ms at {_f(large['reminders'])}",
                    f"{_f(small[f'{key}_ms']['p50'])} ms at {_f(small['reminders'])}",
                    f"{_f(ratios[f'{key}_p50'], 3)} ×",
                    "within 10 %",
                )
            )
    for kind, m in sorted(memory.items()):
        out.append(
            (
                f"6 peak RSS: {kind}",
                f"{_f(m['peak_rss_mb'])} MB (largest OS process of {m['processes']})",
                "—",
                "—",
                "< 200 MB, flat" if kind == "worker" else "—",
            )
        )
    steady_series = (results.get("steady") or {}).get("worker_rss_series") or []
    if len(steady_series) >= 4:
        quarter = max(1, len(steady_series) // 4)
        first = sum(v for _, v in steady_series[:quarter]) / quarter
        last = sum(v for _, v in steady_series[-quarter:]) / quarter
        out.append(
            (
                "6 worker RSS over the steady run",
                f"first quarter {first:.1f} MB, last quarter {last:.1f} MB ({last - first:+.1f} MB)",
                "—",
                "—",
                "flat",
            )
        )
    return out


def table(results: dict[str, Any], memory: dict[str, Any]) -> str:
    lines = []
    for figure, measured, ceiling, ratio, target in rows(results, memory):
        lines.append(f"{figure}\n    {measured}\n    ceiling: {ceiling}   ratio: {ratio}   target: {target}")
    return "\n".join(lines)


def markdown(machine: dict[str, Any], plan: dict[str, Any], results: dict[str, Any], memory: dict[str, Any]) -> str:
    md = [
        "### Run",
        "",
        f"- date: {machine['date']}; commit `{machine['git_commit']}`; mode: {'quick' if plan['quick'] else 'full'}",
        f"- machine: {machine['cores']} cores, {machine['cpu']} ({machine['machine']}), Linux {machine['kernel']}, "
        f"CPython {machine['python']}, PostgreSQL {machine['postgresql']}",
        f"- load average at start: {' / '.join(str(x) for x in machine['load_avg_start'])} (1/5/15 min); "
        f"at end: {machine.get('load_avg_end', '—')}",
        "",
        "| figure | measured | ceiling (same run) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    md += [f"| {' | '.join(r)} |" for r in rows(results, memory)]
    growth = results.get("growth")
    if growth:
        for point in growth["points"]:
            for name, plan_text in point["plans"].items():
                md += [
                    "",
                    f"EXPLAIN ANALYZE, {name} query at {point['reminders']:,} reminders / {point['patients']:,} patients:",
                    "",
                    "```",
                    plan_text,
                    "```",
                ]
    return "\n".join(md) + "\n"


def plots(results: dict[str, Any], memory_series: dict[str, list[tuple[float, float]]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    intake = results.get("intake")
    if intake:
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, label in (
            ("pg", "intake, PostgreSQL"),
            ("sqlite", "intake, SQLite"),
            ("hello", "hello-world FastAPI"),
        ):
            pct = intake[key]["percentiles_ms"]
            qs = [q for q in sorted(pct, key=float) if pct[q] > 0]  # wrk reports 0 for its 100th percentile
            ax.plot(
                [pct[q] for q in qs], [float(q) for q in qs], marker=".", label=f"{label} ({intake[key]['rate']:.0f}/s)"
            )
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("percentile")
        ax.set_title("Intake POST latency at 64 connections (wrk)")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "intake_latency")
    pathway = results.get("pathway")
    if pathway:
        fig, ax = plt.subplots(figsize=(7, 4))
        for key, label in (
            ("pg", "carepath, PostgreSQL + Redis"),
            ("noop_pg", "no-op Celery, Redis"),
            ("sqlite", "carepath, SQLite + fs broker"),
            ("noop_sqlite", "no-op Celery, fs broker"),
            ("scaling_pg", "carepath, 5,000-update burst, PostgreSQL"),
        ):
            series = pathway.get(key) or []
            if series:
                rate_key = "tasks_per_s" if key.startswith("noop") else "updates_per_s"
                ax.plot([r["workers"] for r in series], [r[rate_key] for r in series], marker="o", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("worker processes")
        ax.set_ylabel("drained per second (log)")
        ax.set_title("Burst drain rate against worker processes")
        ax.set_xticks(sorted({r["workers"] for r in pathway.get("pg", [])}))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save(fig, "pathway_scaling")
    for key, name, field, _unit, title in (
        ("steady", "steady_latency", "latencies", "s", "Update → assessment latency at a steady rate"),
        ("reminders", "reminder_lateness", "lateness", "s", "Reminder delivered_at − due_at"),
    ):
        data = (results.get(key) or {}).get(field) or []
        if data:
            fig, ax = plt.subplots(figsize=(7, 4))
            ax.hist(data, bins=50)
            ax.set_xlabel(f"seconds ({len(data):,} samples)")
            ax.set_ylabel("count")
            ax.set_title(title)
            save(fig, name)
    cds = results.get("cds")
    if cds:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist([cds["order_sign"], cds["what_if"]], bins=40, label=["order-sign", "pathway:evaluate"])
        ax.set_xlabel("ms")
        ax.set_ylabel("count")
        ax.set_title("CDS order-sign and what-if, 200-update history")
        ax.legend()
        save(fig, "cds_latency")
    growth = results.get("growth")
    if growth:
        points = growth["points"]
        scale = [p["reminders"] for p in points]
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        axes[0].plot(scale, [p["due_query_ms"] for p in points], marker="o", label="scheduler due query")
        axes[0].plot(scale, [p["worklist_query_ms"] for p in points], marker="o", label="worklist query")
        axes[0].plot(
            scale, [p["worklist_page_ms"]["p50"] for p in points], marker="o", label="reminders API page (HTTP p50)"
        )
        if all("worklist_html_ms" in p for p in points):
            axes[0].plot(
                scale, [p["worklist_html_ms"]["p50"] for p in points], marker="o", label="worklist HTML (HTTP p50)"
            )
        axes[0].set_xscale("log")
        axes[0].set_xlabel("scheduled reminders (log)")
        axes[0].set_ylabel("ms")
        axes[0].legend(fontsize=8)
        axes[1].plot(scale, [p["intake_rate"] for p in points], marker="o")
        axes[1].set_xscale("log")
        axes[1].set_ylim(bottom=0)
        axes[1].set_xlabel("scheduled reminders (log)")
        axes[1].set_ylabel("intake POSTs/s")
        fig.suptitle("Cost against scale")
        save(fig, "growth")
    if memory_series:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, series in sorted(memory_series.items()):
            if len(series) > 1 and not name.split(":")[1].startswith(("workerb", "workers", "noop")):
                ax.plot([t for t, _ in series], [v for _, v in series], label=name)
        ax.set_xlabel("seconds since the run started")
        ax.set_ylabel("RSS of the largest OS process (MB)")
        ax.set_title("Resident memory per process")
        ax.legend(fontsize=7)
        save(fig, "memory")
    return written


def capacity(results: dict[str, Any]) -> str:
    """docs/operations.md's scaling table and capacity model, from the PostgreSQL + Redis scaling series."""
    pathway = results.get("pathway") or {}
    series = pathway.get("scaling_pg") or []
    noop = {r["workers"]: r for r in pathway.get("noop_pg") or []}
    if not series:
        return ""
    one = series[0]
    per_worker = one["updates_per_s"]
    md = [
        f"| worker processes | drain of {_f(one['updates'])} updates | updates/s | evaluations/s | "
        "speed-up vs 1 | no-op Celery tasks/s (same N) | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in series:
        md.append(
            f"| {r['workers']} | {_f(r['drain_s'])} s{'' if r['complete'] else ' (incomplete)'} | "
            f"{_f(r['updates_per_s'])} | {_f(r['evaluations_per_s'])} | "
            f"{r['updates_per_s'] / per_worker:.2f} × | {_f(noop.get(r['workers'], {}).get('tasks_per_s'))} | "
            f"{r['load_avg']} |"
        )
    flat = next(
        (
            (a, b)
            for a, b in itertools.pairwise(series)
            if b["updates_per_s"] < a["updates_per_s"] * (1 + 0.5 * (b["workers"] - a["workers"]) / a["workers"])
        ),
        None,
    )
    md += [
        "",
        f"One worker process carried **{_f(per_worker)} updates/s** ({_f(one['evaluations_per_s'])} evaluations/s). "
        "For Y updates/s run Z = ⌈Y / "
        f"{_f(per_worker)}⌉ processes while each has a core of its own and the database keeps up "
        f"(e.g. Y = 200/s → Z = {-(-200 // max(per_worker, 0.1)):.0f}).",
    ]
    if flat is not None:
        a, b = flat
        md.append(
            f"On this machine the curve flattens between {a['workers']} and {b['workers']} processes "
            f"({_f(a['updates_per_s'])} → {_f(b['updates_per_s'])} updates/s): the cores, not the processes, are "
            "the limit (the workers share them with PostgreSQL, Redis, the relay and whatever else runs)."
        )
    return "\n".join(md) + "\n"
