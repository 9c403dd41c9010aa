"""Quick drain measurement of the embedded default (SQLite + filesystem broker) or PostgreSQL + Redis.

Starts `carepath up` (every part) in a fresh folder, creates PATIENTS patients, posts UPDATES updates spread
over them as fast as 16 concurrent clients can, and reports how long after the first post every patient's
newest assessment counted all of its updates, and how many evaluations that took.

Run: .venv/bin/python bench/profile_drain.py [--patients 100] [--updates 800] [--pg] [--code CHECKOUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NEWEST = """
SELECT count(*) FROM (
  SELECT a.patient_id, a.updates_evaluated,
         row_number() OVER (PARTITION BY a.patient_id ORDER BY a.seq DESC) AS n
  FROM assessment a) newest
WHERE n = 1 AND updates_evaluated = %s
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def post_all(base: str, headers: dict[str, str], ids: list[str], updates: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(updates):
        queue.put_nowait(n)
    body = {"type": "pain_assessment", "occurred_at": "2026-11-01T10:00:00Z", "data": {"distribution": "axial"}}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            while not queue.empty():
                n = queue.get_nowait()
                update = {**body, "data": {**body["data"], "pain_nrs": n % 10}}
                answer = await http.post(f"/v1/patients/{ids[n % len(ids)]}/updates", json=update)
                assert answer.status_code == 202, answer.text

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(16)))
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--updates", type=int, default=800)
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--code", help="run the stack from this checkout instead (a before/after baseline)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perffast-drain-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_")}
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    port = free_port()
    database = f"carepath_perffast_{uuid.uuid4().hex[:8]}"
    env.update(
        {
            "CAREPATH_VAR_DIR": str(work / "var"),
            "CAREPATH_INTAKE_PORT": str(port),
            "CAREPATH_NOTIFICATIONS_PORT": str(free_port()),
            "CAREPATH_RATE_LIMIT_PER_TOKEN": "10000000/minute",
            "CAREPATH_RATE_LIMIT_PER_ORG": "10000000/minute",
            "CAREPATH_LOG_LEVEL": "WARNING",
        }
    )
    if args.pg:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        env["CAREPATH_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
        env["CAREPATH_BROKER_URL"] = "redis://127.0.0.1:6379/10"
        env["CAREPATH_RATE_LIMIT_PREFIX"] = f"perffast-{database}"

    def newest_complete(per_patient: int) -> int:
        if args.pg:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as connection:
                return int(connection.execute(NEWEST, (per_patient,)).fetchone()[0])  # type: ignore[index]
        with sqlite3.connect(work / "var" / "carepath.db", timeout=30) as connection:
            return int(connection.execute(NEWEST.replace("%s", "?"), (per_patient,)).fetchone()[0])

    carepath = str(BIN / "carepath")
    stack = None
    try:
        subprocess.run([carepath, "migrate"], env=env, cwd=work, check=True, capture_output=True)
        token = subprocess.run(
            [carepath, "token", "create", "--org", "bench", "--role", "client"],
            env=env,
            cwd=work,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        log = open(work / "up.log", "ab")  # noqa: SIM115
        stack = subprocess.Popen([carepath, "up"], env=env, cwd=work, stdout=log, stderr=log, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("stack not ready")
            time.sleep(0.3)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            ids = [http.post("/v1/patients", json={"external_id": f"D-{n}"}).json()["id"] for n in range(args.patients)]
        time.sleep(2)  # let the stack settle (no work queued)
        first_post = time.monotonic()
        posting = asyncio.run(post_all(base, headers, ids, args.updates))
        per_patient = args.updates // args.patients
        while newest_complete(per_patient) < args.patients:
            if time.monotonic() - first_post > args.timeout:
                raise SystemExit("not drained in time")
            time.sleep(0.2)
        drained = time.monotonic() - first_post
        metrics = httpx.get(f"http://127.0.0.1:{env['CAREPATH_NOTIFICATIONS_PORT']}/metrics", timeout=10).text
        evaluations = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("carepath_pathway_evaluations_total{")
        )
        print(
            json.dumps(
                {
                    "backend": "pg" if args.pg else "sqlite",
                    "patients": args.patients,
                    "updates": args.updates,
                    "posting_seconds": round(posting, 2),
                    "drained_seconds_after_first_post": round(drained, 2),
                    "evaluations": evaluations,
                    "updates_per_second_evaluated": round(args.updates / drained, 1),
                },
                indent=2,
            )
        )
    finally:
        if stack is not None and stack.poll() is None:
            stack.terminate()
            try:
                stack.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, 9)
        if args.pg:
            with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
