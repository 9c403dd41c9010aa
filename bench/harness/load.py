"""Load from a separate process: wrk (Debian's package) with a Lua script for closed-loop throughput at a
fixed number of connections, and a bounded asyncio client (`python -m bench.harness.load`, its own process)
for an open-loop steady rate and for sequential latency samples.

    python -m bench.harness.load steady SPEC.json OUT.json
    python -m bench.harness.load replay SPEC.json OUT.json
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WRK = shutil.which("wrk") or "/usr/bin/wrk"
PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9, 100]

# One POST per request of a pain assessment for a patient taken round-robin from BENCH_IDS (one id a line);
# done() prints one JSON line with the counts and the latency percentiles (microseconds).
WRK_SCRIPT = r"""
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local auth = "Bearer " .. os.getenv("BENCH_TOKEN")
local n = 0
request = function()
  n = n + 1
  local id = ids[(n % #ids) + 1]
  local body = string.format(
    '{"type":"pain_assessment","occurred_at":"2026-01-%02dT10:%02d:00+00:00","data":{"pain_nrs":%d,"distribution":"axial"}}',
    (n % 28) + 1, n % 60, n % 11)
  return wrk.format("POST", "/v1/patients/" .. id .. "/updates",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
done = function(summary, latency, requests)
  local p = {}
  for _, q in ipairs({PCTS}) do p[#p + 1] = string.format('"%s":%d', tostring(q), latency:percentile(q)) end
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"mean_us":%.1f,"percentiles_us":{%s}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency.mean, table.concat(p, ",")))
end
""".replace("{PCTS}", "{" + ", ".join(str(p) for p in PERCENTILES) + "}")


def wrk_post(url: str, token: str, ids: list[str], seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    """Closed-loop: `connections` connections posting as fast as answers come, for `seconds`."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "post_update.lua"
    script.write_text(WRK_SCRIPT)
    id_file = workdir / "ids.txt"
    id_file.write_text("\n".join(ids) + "\n")
    threads = max(1, min(2, os.cpu_count() or 1))
    done = subprocess.run(
        [
            WRK,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        env={**os.environ, "BENCH_IDS": str(id_file), "BENCH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCHJSON "))
    seconds_run = result["duration_us"] / 1e6
    errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    ok = result["requests"] - result["status_errors"]
    pct = {k: v / 1000 for k, v in result["percentiles_us"].items()}  # ms
    return {
        "connections": connections,
        "seconds": round(seconds_run, 2),
        "requests": result["requests"],
        "errors": errors,
        "status_errors": result["status_errors"],  # answered, but not 2xx/3xx
        "timeouts": result["timeouts"],
        "rate": round(ok / seconds_run, 1) if seconds_run else 0.0,
        "p50_ms": round(pct["50"], 2),
        "p99_ms": round(pct["99"], 2),
        "max_ms": round(pct["100"], 2),
        "percentiles_ms": pct,
    }


def run_client(mode: str, spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run this module as its own process (the load never shares the server's interpreter)."""
    spec_file, out_file = workdir / f"{mode}-spec.json", workdir / f"{mode}-out.json"
    spec_file.write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-m", "bench.harness.load", mode, str(spec_file), str(out_file)],
        check=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


# -- the client process ---------------------------------------------------------------------------------


async def _steady(spec: dict[str, Any]) -> dict[str, Any]:
    """Open loop: request i is sent at start + i / rate (never more than `max_in_flight` at once)."""
    import httpx

    rate, seconds, base = float(spec["rate"]), float(spec["seconds"]), spec["url"]
    headers = {"Authorization": f"Bearer {spec['token']}", "Content-Type": "application/json"}
    ids: list[str] = spec["ids"]
    total = int(rate * seconds)
    results: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(int(spec.get("max_in_flight", 256)))
    start = time.monotonic()
    limits = httpx.Limits(max_connections=int(spec.get("connections", 64)), max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            async with gate:
                if time.monotonic() > start + seconds:  # offered but never sent: the server fell behind
                    results.append({"sent": time.time(), "done": time.time(), "status": -1, "event_id": None})
                    return
                body = {
                    "type": "pain_assessment",
                    "occurred_at": f"2026-02-{i % 28 + 1:02d}T09:{i % 60:02d}:00+00:00",
                    "data": {"pain_nrs": i % 11, "distribution": "axial"},
                }
                sent = time.time()
                try:
                    response = await client.post(f"/v1/patients/{ids[i % len(ids)]}/updates", json=body)
                    status, event_id = response.status_code, response.json().get("event_id")
                except Exception:
                    status, event_id = 0, None
                results.append({"sent": sent, "done": time.time(), "status": status, "event_id": event_id})

        tasks = []
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return {"requests": results, "elapsed": elapsed, "offered_rate": rate}


async def _replay(spec: dict[str, Any]) -> dict[str, Any]:
    """Sequential: each request once, in order; the latency of each (ms) and its status."""
    import httpx

    out: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=spec["url"], timeout=30) as client:
        for item in spec["requests"]:
            start = time.perf_counter()
            response = await client.request(
                item["method"], item["path"], json=item.get("json"), headers=item["headers"]
            )
            out.append({"ms": (time.perf_counter() - start) * 1000, "status": response.status_code})
    return {"results": out}


def main(argv: list[str]) -> int:
    mode, spec_file, out_file = argv
    spec = json.loads(Path(spec_file).read_text())
    result = asyncio.run(_steady(spec) if mode == "steady" else _replay(spec))
    Path(out_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
