"""A scheduler as its own OS process, for the multi-process tests: `python scheduler_child.py WORKER LEASE`.
Configuration comes from the CAREPATH_* environment; SIGTERM stops it cleanly (SIGKILL is the test)."""

from __future__ import annotations

import signal
import sys
import threading

from services.notifications.scheduler import run_scheduler


def main() -> None:
    worker_id, lease = sys.argv[1], float(sys.argv[2])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    run_scheduler(stop, worker_id=worker_id, lease=lease)


if __name__ == "__main__":
    main()
