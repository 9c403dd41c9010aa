"""`carepath bench`: every figure of docs/performance.md measured beside its ceiling in the same run.

The harness starts its own stack — a PostgreSQL database of its own on the machine's server (dropped
after), a private redis-server on a free port, a private SQLite var dir — runs real `carepath` processes,
and drives them from separate processes (wrk with a Lua script; a bounded asyncio client). It prints a
table and writes results.json, run.md (the Markdown for docs/performance.md) and PNG plots to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

FIGURE_NAMES = ("intake", "pathway", "steady", "reminders", "cds", "growth")


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser("bench", help="run the benchmark harness (its own stack; see docs/performance.md)")
    bench.add_argument("--quick", action="store_true", help="small sizes (CI: proves the harness, about 2 minutes)")
    bench.add_argument(
        "--only", nargs="+", choices=FIGURE_NAMES, metavar="NAME", help=f"figures: {', '.join(FIGURE_NAMES)}"
    )
    bench.add_argument("--out", default="bench-results", help="folder for results.json, run.md and the PNGs")
    bench.add_argument("--keep", action="store_true", help="keep the work folder (process logs) after the run")
    bench.add_argument(
        "--set", nargs="*", default=[], metavar="FIELD=VALUE", help="override a size, e.g. burst_updates=5000"
    )
    bench.set_defaults(func=main)


def _plan(args: argparse.Namespace) -> object:
    from bench.harness.figures import Plan

    plan = Plan.quick_plan() if args.quick else Plan.full()
    for item in args.set:
        key, _, raw = item.partition("=")
        current = getattr(plan, key)
        if isinstance(current, tuple):
            value: object = tuple(int(x) for x in raw.split(","))
        else:
            value = type(current)(raw)
        setattr(plan, key, value)
    return plan


def main(args: argparse.Namespace) -> int:
    import logging

    from bench.harness import report
    from bench.harness.figures import FIGURES, Run, Sampler, dump, private_redis
    from bench.harness.stack import loadavg, machine_facts

    logging.getLogger("httpx").setLevel(logging.WARNING)  # the harness's own polling is not news
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = _plan(args)
    workdir = Path(tempfile.mkdtemp(prefix="carepath-bench-"))
    machine = machine_facts()
    run = Run(plan=plan, workdir=workdir)  # type: ignore[arg-type]
    names = args.only or list(FIGURE_NAMES)
    started = time.monotonic()
    run.say(f"machine: {machine['cores']} cores, {machine['cpu']}, load {machine['load_avg_start']}; work in {workdir}")
    sampler = Sampler(run)
    sampler.start()
    failures: dict[str, str] = {}
    try:
        with private_redis(run):
            run.pending = list(names)
            while run.pending:
                name = run.pending.pop(0)
                t0 = time.monotonic()
                try:
                    if name == "steady":
                        FIGURES[name](run, sampler)
                    else:
                        FIGURES[name](run)
                except Exception as exc:  # one figure's failure must not hide the others'
                    failures[name] = f"{type(exc).__name__}: {exc}"[:2000]
                    run.say(f"figure {name} FAILED: {failures[name]}")
                run.results.setdefault("timings_s", {})[name] = round(time.monotonic() - t0, 1)
                dump(run, out / "results.json")
    finally:
        sampler.stopped.set()
        sampler.join(5)
    machine["load_avg_end"] = loadavg()
    machine["elapsed_s"] = round(time.monotonic() - started, 1)
    run.results["failures"] = failures
    plan_dict = asdict(plan)  # type: ignore[call-overload]
    (out / "results.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "plan": plan_dict,
                "results": run.results,
                "memory": run.memory,
                "memory_series": sampler.series,
            },
            indent=1,
            default=str,
        )
    )
    (out / "run.md").write_text(report.markdown(machine, plan_dict, run.results, run.memory))
    (out / "capacity.md").write_text(report.capacity(run.results))
    written = report.plots(run.results, sampler.series, out)
    print(report.table(run.results, run.memory))
    print(f"\nwrote {out / 'results.json'}, {out / 'run.md'} and {len(written)} plots in {machine['elapsed_s']} s")
    if args.keep or failures:
        print(f"process logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    for name, error in failures.items():
        print(f"figure {name} failed: {error}", file=sys.stderr)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return 1 if failures else 0
