"""`carepath up`: migrate, then run every part as a child process in the foreground; Ctrl-C (or SIGTERM)
stops them all cleanly. A part that dies takes the stack down (non-zero exit) rather than limping on."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from shared.db.schema import upgrade
from shared.settings import get_settings

log = logging.getLogger("carepath.up")
PARTS = ("intake", "notifications", "worker", "relay", "scheduler")
GRACE_SECONDS = 20


def _spawn(part: str) -> subprocess.Popen[bytes]:
    # Own session: the terminal's Ctrl-C reaches only us, and we stop the children in order.
    return subprocess.Popen([sys.executable, "-m", "shared.cli", part], env=os.environ.copy(), start_new_session=True)


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in children.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for part, process in children.items():
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %ss; killing it", part, GRACE_SECONDS)
            process.kill()
            process.wait()


def run_stack() -> int:
    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    settings.signing_key()  # create the development key once, before the children race to do it
    upgrade(settings.effective_database_url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    children = {part: _spawn(part) for part in PARTS}
    log.info("carepath is up: intake http://%s:%s  notifications http://%s:%s  (Ctrl-C stops)",
             settings.intake_host, settings.intake_port, settings.notifications_host, settings.notifications_port)
    failed = None
    while not stop.is_set():
        stop.wait(0.5)
        failed = next((part for part, process in children.items() if process.poll() is not None), None)
        if failed:
            log.error("%s exited with %s; stopping the stack", failed, children[failed].returncode)
            break
    _stop_all(children)
    log.info("carepath stopped")
    return 1 if failed else 0
