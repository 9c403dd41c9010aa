"""`carepath up`: migrate, then run every part as a child process in the foreground; Ctrl-C (or SIGTERM)
stops them all cleanly. A part that dies is restarted with backoff (the database holds every update and
reminder, so a restart costs seconds, never data); a part that keeps dying takes the stack down."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared import token_keys
from shared.db.schema import upgrade
from shared.files import private_dir
from shared.settings import Settings, get_settings

log = logging.getLogger("carepath.up")
PARTS = ("intake", "notifications", "worker", "relay", "scheduler")
GRACE_SECONDS = 20
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0


def _spawn(part: str) -> subprocess.Popen[bytes]:
    # Own session: the terminal's Ctrl-C reaches only us, and we stop the children in order.
    return subprocess.Popen([sys.executable, "-m", "carepath.cli", part], env=os.environ.copy(), start_new_session=True)


def _share_metrics(settings: Settings) -> None:
    """Every child writes its metrics to one folder (prometheus-client's multi-process mode), emptied at
    start: the notifications /metrics then shows the whole stack (docs/operations.md)."""
    folder = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str((settings.var_dir / "metrics").resolve())))
    private_dir(folder)
    for stale in folder.glob("*.db"):  # a previous run's processes must not count
        stale.unlink()


@dataclass
class Child:
    part: str
    process: subprocess.Popen[bytes]
    restarts: list[float] = field(default_factory=list)
    restart_at: float | None = None

    def check(self, now: float) -> bool:
        """Restart the part if it died (after a backoff); False when it died too often to go on."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.process, self.restart_at = _spawn(self.part), None
                log.warning("%s restarted", self.part)
            return True
        if self.process.poll() is None:
            return True
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
        log.error("%s exited with %s (%d in the last minute)", self.part, self.process.returncode, len(self.restarts))
        if len(self.restarts) > MAX_RESTARTS:
            return False
        self.restart_at = now + min(2 ** (len(self.restarts) - 1), 30)
        return True


def _stop_all(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %ss; killing it", child.part, GRACE_SECONDS)
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def run_stack() -> int:
    settings = get_settings()
    private_dir(settings.var_dir)
    try:  # create the development keys once, before the children race to do it
        settings.signing_key()
        token_keys.keys(settings)
    except RuntimeError as exc:  # production without usable keys: every part would refuse to start
        log.error("not starting: %s", exc)
        return 78
    upgrade(settings.effective_database_url)
    _share_metrics(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    children = [Child(part, _spawn(part)) for part in PARTS]
    log.info(
        "carepath is up: intake http://%s:%s  notifications http://%s:%s  (Ctrl-C stops)",
        settings.intake_host,
        settings.intake_port,
        settings.notifications_host,
        settings.notifications_port,
    )
    healthy = True
    while healthy and not stop.is_set():
        stop.wait(0.5)
        healthy = all(child.check(time.monotonic()) for child in children)
    if not healthy:
        log.error("a part keeps failing; stopping the stack")
    _stop_all(children)
    log.info("carepath stopped")
    return 0 if healthy else 1
