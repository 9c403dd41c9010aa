"""Quick intake load/profile script (performance work; the full harness is `carepath bench`).

Starts one `carepath intake` on PostgreSQL + Redis (or SQLite + filesystem broker with --sqlite), creates
200 patients, then drives POST /v1/patients/{id}/updates (pain assessments) with wrk (64 connections) and,
in the same run, a hello-world FastAPI POST served the same way (uvicorn, one process). Optional
`--py-spy SECONDS` records a py-spy profile of the intake during the run.

Run: .venv/bin/python bench/profile_intake.py [--duration 10] [--connections 64] [--sqlite] [--py-spy 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HELLO = """
from fastapi import FastAPI
from pydantic import BaseModel

class Body(BaseModel):
    type: str
    occurred_at: str
    data: dict

app = FastAPI()

@app.post("/hello", status_code=202)
async def hello(body: Body) -> dict:
    return {"ok": True}
"""
LUA = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
local token = "%(token)s"
local n = 0
request = function()
  n = n + 1
  local id = ids[(n %% #ids) + 1]
  local body = '{"type":"pain_assessment","occurred_at":"2026-11-01T10:00:00Z","data":{"pain_nrs":6,"distribution":"axial"}}'
  return wrk.format("POST", "%(path)s" .. id .. "%(suffix)s",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status, summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready")


def wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    requests, micros, p50, p99, bad, timeouts = (int(x) for x in match.groups())
    return {
        "rps": requests / (micros / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "non_2xx": bad,
        "timeouts": timeouts,
        "requests": requests,
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--py-spy", type=int, default=0, help="record a py-spy profile for this many seconds")
    parser.add_argument("--no-hello", action="store_true")
    parser.add_argument("--code", help="run the intake from this checkout instead (a before/after baseline)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perffast-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_")}
    port = free_port()
    database = f"carepath_perffast_{uuid.uuid4().hex[:8]}"
    env.update(
        {
            "CAREPATH_VAR_DIR": str(work / "var"),
            "CAREPATH_INTAKE_PORT": str(port),
            "CAREPATH_RATE_LIMIT_PER_TOKEN": "10000000/minute",
            "CAREPATH_RATE_LIMIT_PER_ORG": "10000000/minute",
            "CAREPATH_RATE_LIMIT_PREFIX": f"perffast-{database}",
        }
    )
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    if not args.sqlite:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        env["CAREPATH_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
        env["CAREPATH_BROKER_URL"] = "redis://127.0.0.1:6379/9"
    carepath = [str(BIN / "carepath")]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([*carepath, "migrate"], env=env, cwd=work, check=True, capture_output=True)
        token = subprocess.run(
            [*carepath, "token", "create", "--org", "bench", "--role", "client"],
            env=env,
            cwd=work,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        log = open(work / "intake.log", "ab")  # noqa: SIM115
        intake = subprocess.Popen([*carepath, "intake"], env=env, cwd=work, stdout=log, stderr=log)
        processes.append(intake)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz")
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        with httpx.Client(base_url=base, headers=headers) as client:
            for n in range(200):
                answer = client.post("/v1/patients", json={"external_id": f"bench-{n}"})
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        (work / "ids.txt").write_text("\n".join(ids) + "\n")
        script = work / "post.lua"
        script.write_text(
            LUA % {"ids": work / "ids.txt", "token": token, "path": "/v1/patients/", "suffix": "/updates"}
        )
        wrk(base, script, 2, args.connections)  # warm-up
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                [
                    str(BIN / "py-spy"),
                    "record",
                    "-p",
                    str(intake.pid),
                    "-d",
                    str(args.py_spy),
                    "-f",
                    "raw",
                    "-o",
                    str(work / "profile.txt"),
                    "-r",
                    "200",
                    "--nonblocking",
                    "--gil",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu_before = cpu_seconds(intake.pid)
        result = wrk(base, script, args.duration, args.connections)
        cpu = cpu_seconds(intake.pid) - cpu_before
        result["cpu_ms_per_request"] = 1000 * cpu / max(result["requests"], 1)
        if spy is not None:
            spy.wait()
        intake.terminate()
        intake.wait(30)
        report: dict[str, object] = {"intake": result}
        if not args.no_hello:
            (work / "hello.py").write_text(HELLO)
            hello_port = free_port()
            hello = subprocess.Popen(
                [
                    str(BIN / "uvicorn"),
                    "hello:app",
                    "--port",
                    str(hello_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(hello)
            hello_base = f"http://127.0.0.1:{hello_port}"
            wait_ready(f"{hello_base}/docs")
            hello_script = work / "hello.lua"
            hello_script.write_text(LUA % {"ids": work / "ids.txt", "token": token, "path": "/hello", "suffix": ""})
            hello_script.write_text(hello_script.read_text().replace('"/hello" .. id .. ""', '"/hello"'))
            wrk(hello_base, hello_script, 2, args.connections)
            report["hello"] = wrk(hello_base, hello_script, args.duration, args.connections)
            report["ratio"] = result["rps"] / report["hello"]["rps"]  # type: ignore[index]
        if args.py_spy:
            report["profile"] = str(work / "profile.txt")
        print(json.dumps(report, indent=2))
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        if not args.sqlite:
            with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not args.py_spy:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
