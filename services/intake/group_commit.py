"""Group commit of single-update POSTs: the updates of requests arriving together share one transaction.

Each request (an async route: no thread-pool trip) hands its validated update to one writer thread and awaits
it; the writer's thread stays synchronous (the sync engine) and settles each request's future on the event
loop with `call_soon_threadsafe`. The writer takes everything
queued (up to MAX_BATCH), stores it in one transaction (one patient lookup, one INSERT each for the updates,
their outbox rows and their audit rows, one COMMIT) and only then wakes the requests: a 202 still means
committed (tests/e2e/test_spine.py kills the intake after a 202 and finds the update). Nothing waits to fill
a batch: a lone request is committed at once, and while one commit is on its way the next batch gathers.

Each request gets the answer it would have had alone: a patient not found (in the caller's organisation)
is a 404 for that request only, and if the shared transaction fails, every request of it is retried in a
transaction of its own, so one request's failure is never another's.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from services.intake import handlers
from shared import audit
from shared.auth import Principal
from shared.db.uow import UnitOfWork
from shared.settings import Settings

log = logging.getLogger("carepath.intake.group_commit")
MAX_BATCH = 256


@dataclass
class Pending:
    settings: Settings
    principal: Principal
    patient_id: str
    prepared: handlers.PreparedUpdate
    trail: audit.Audit
    action: str
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[dict[str, Any]]
    finished: bool = field(default=False)  # the fields below: read and written by the writer thread only
    result: dict[str, Any] | None = None
    error: BaseException | None = None

    def finish(self, result: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        """From the writer thread: the outcome, handed to the request's loop by `_wake`."""
        self.finished, self.result, self.error = True, result, error


def _wake(batch: list[Pending]) -> None:
    """Settle the futures of a finished batch: one `call_soon_threadsafe` per event loop, not per request
    (each call wakes the loop through its self-pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Pending]] = defaultdict(list)
    for pending in batch:
        by_loop[pending.loop].append(pending)
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            log.warning("group commit: %d answers for a closed event loop", len(settled))


def _settle(batch: list[Pending]) -> None:
    for pending in batch:
        if pending.answer.done():  # the request was cancelled (client gone): what was committed stays committed
            continue
        if pending.error is not None:
            pending.answer.set_exception(pending.error)
        else:
            assert pending.result is not None
            pending.answer.set_result(pending.result)


class GroupCommitter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def submit(self, pending: Pending) -> dict[str, Any]:
        """Store `pending` (with others); returns {"update_id", "event_id"} once committed, or raises what
        storing it alone would have raised (PatientNotFound, a database error)."""
        self._ensure_writer()
        self._queue.put(pending)
        return await pending.answer

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="carepath-group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                self._store_all(batch)
            except BaseException as failure:  # never leave a request waiting, never let the writer die
                for pending in batch:
                    if not pending.finished:
                        pending.finish(error=failure)
            _wake(batch)

    def _store_all(self, batch: list[Pending]) -> None:
        while len(batch) < MAX_BATCH:  # everything that queued up meanwhile
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        by_database: dict[str, list[Pending]] = defaultdict(list)
        for pending in batch:
            by_database[pending.settings.effective_database_url].append(pending)
        for group in by_database.values():
            self._store(group)

    def _store(self, batch: list[Pending]) -> None:
        try:
            with UnitOfWork(batch[0].settings) as uow:
                outcomes = handlers.record_single_updates(uow, [pending.prepared for pending in batch])
                stored = [(p, o) for p, o in zip(batch, outcomes, strict=True) if not isinstance(o, Exception)]
                audit.insert_rows(
                    uow,
                    [
                        row
                        for pending, (update_id, event_id) in stored
                        for row in pending.trail.rows(
                            pending.principal,
                            pending.action,
                            patient_id=pending.patient_id,
                            resource=("event", event_id),
                        )
                    ],
                )
                uow.commit()
        except Exception as failure:
            if len(batch) == 1:
                batch[0].finish(error=failure)
                return
            log.warning(
                "group commit of %d updates failed (%s); storing each alone", len(batch), type(failure).__name__
            )
            for pending in batch:
                self._store([pending])
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                pending.finish(error=outcome)
            else:
                update_id, event_id = outcome
                pending.finish(result={"update_id": update_id, "event_id": event_id})


_committer = GroupCommitter()


async def store_update(
    settings: Settings, principal: Principal, patient_id: str, update: Any, trail: audit.Audit, action: str
) -> dict[str, Any]:
    """One update POST (no Idempotency-Key), stored and committed together with those arriving with it."""
    prepared = handlers.prepare_update(principal, patient_id, update)  # here: the request's id and trace
    loop = asyncio.get_running_loop()
    pending = Pending(settings, principal, patient_id, prepared, trail, action, loop, loop.create_future())
    return await _committer.submit(pending)
