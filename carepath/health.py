"""`carepath health <part>`: the liveness probe of a part, for an orchestrator's healthcheck. Exit 0 when
healthy; 1 when a loop of a live process of the part is stuck (no heartbeat for CAREPATH_HEARTBEAT_MAX_AGE
seconds), when none runs, or (HTTP services) when /readyz is not 200."""

from __future__ import annotations

import argparse
import sys
import time

from shared.settings import get_settings

PARTS = ("worker", "relay", "scheduler", "intake", "notifications")


def cmd_health(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.part in ("intake", "notifications"):
        return _http_ready(args.part)
    from shared.observability.heartbeat import check

    verdict = check(args.part, time.time(), args.max_age or settings.heartbeat_max_age)
    for line in verdict.lines:
        print(line, file=sys.stdout if verdict.ok else sys.stderr)
    return 0 if verdict.ok else 1


def _http_ready(part: str) -> int:
    import httpx

    settings = get_settings()
    host = settings.intake_host if part == "intake" else settings.notifications_host
    port = settings.intake_port if part == "intake" else settings.notifications_port
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    try:
        response = httpx.get(f"http://{host}:{port}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        print(f"{part}: unreachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(f"{part}: {response.text}", file=sys.stdout if response.status_code == 200 else sys.stderr)
    return 0 if response.status_code == 200 else 1


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    health = sub.add_parser("health", help="liveness of a part (exit 1 when stuck or down): for healthchecks")
    health.add_argument("part", choices=PARTS)
    health.add_argument("--max-age", type=float, help="seconds (default: CAREPATH_HEARTBEAT_MAX_AGE)")
    health.set_defaults(func=cmd_health)
