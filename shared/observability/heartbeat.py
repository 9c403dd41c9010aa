"""Heartbeat files for liveness: each loop of a relay, scheduler or worker process touches
`<heartbeat dir>/<part>.<loop>.<pid>` after every pass. `carepath health <part>` fails when no live process
of the part beats, or when a live one's loop has not beaten for CAREPATH_HEARTBEAT_MAX_AGE seconds: a
stuck loop (deadlock, a hung query, a stopped process) fails the check, not only a dead process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.settings import get_settings

_part: str | None = None
# The loops each part runs: every one must beat.
LOOPS: dict[str, tuple[str, ...]] = {
    "relay": ("relay",),
    "scheduler": ("reminders", "channels", "timed-reevaluation", "rule-change-reevaluation"),
    "worker": ("worker",),
}


def set_part(part: str) -> None:
    """Name the part this process runs (heartbeats of a loop are filed under it)."""
    global _part
    _part = part


def directory() -> Path:
    settings = get_settings()
    return settings.heartbeat_dir or settings.var_dir / "heartbeats"


def touch(loop: str, now: float) -> None:
    if _part is None:  # a loop run in a test or a command, not a supervised part: nothing to probe
        return
    folder = directory()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_part}.{loop}.{os.getpid()}"
    path.touch()
    os.utime(path, (now, now))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check(part: str, now: float, max_age: float) -> Verdict:
    """Whether every loop of every live process of `part` beat within `max_age` seconds."""
    beats: dict[int, dict[str, float]] = {}
    for path in directory().glob(f"{part}.*.*"):
        _, loop, pid_text = path.name.rsplit(".", 2)
        if pid_text.isdigit() and _alive(int(pid_text)):
            try:
                beats.setdefault(int(pid_text), {})[loop] = path.stat().st_mtime
            except FileNotFoundError:
                continue
    if not beats:
        return Verdict(False, [f"{part}: no live process has a heartbeat in {directory()}"])
    lines, ok = [], True
    for pid, loops in sorted(beats.items()):
        for loop in LOOPS.get(part, tuple(loops)):
            age = now - loops[loop] if loop in loops else None
            fresh = age is not None and age <= max_age
            ok = ok and fresh
            shown = "never" if age is None else f"{age:.1f}s ago"
            lines.append(f"{part} pid {pid} {loop}: {'ok' if fresh else 'STUCK'} (last beat {shown})")
    return Verdict(ok, lines)


def forget_dead(part: str) -> None:
    """Remove the heartbeat files of processes of `part` that are gone."""
    for path in directory().glob(f"{part}.*.*"):
        pid = path.name.rsplit(".", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
