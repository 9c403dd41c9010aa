"""kombu's filesystem transport, made safe for several processes: the embedded default broker.

Upstream writes files in place: `_put` creates a message file and then writes it, and `_queue_bind` creates
(truncates) the exchange table and then locks it. A consumer polling the folder, or a process reading the
table, can read an empty file in between; Celery then stops the worker ("Unrecoverable error:
JSONDecodeError"), and two processes binding at once can lose one's binding. Here every file is written
under a temporary name and renamed into place (atomic on POSIX), so readers only ever see whole files, and
table updates are serialised by a lock file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.filesystem import LOCK_EX, exchange_queue_t, lock, unlock
from kombu.transport.virtual import Channel as VirtualChannel
from kombu.utils.json import dumps, loads


def _write_atomically(target: Path, text: str) -> None:
    # A name the consumer never takes: it only reads names whose part after the first "." is "<queue>.msg".
    partial = target.parent / f".partial-{uuid.uuid4()}"
    partial.write_text(text)
    os.replace(partial, target)


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu itself differs from its base
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        try:
            _write_atomically(Path(self.data_folder_out) / name, dumps(payload))
        except OSError as exc:
            raise ChannelError(f"cannot add a message to {self.data_folder_out!r}") from exc

    @contextmanager
    def _table_lock(self, exchange: str) -> Iterator[Path]:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        with open(file.with_name(f".{file.name}.lock"), "a") as guard:
            lock(guard, LOCK_EX)
            try:
                yield file
            finally:
                unlock(guard)

    @staticmethod
    def _read_table(file: Path) -> list[Any]:
        try:
            return [exchange_queue_t(*q) for q in loads(file.read_text())]
        except FileNotFoundError:
            return []

    def get_table(self, exchange: str) -> list[Any]:
        return self._read_table(self._exchange_file(exchange))

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        binding = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange) as file:
            queues = self._read_table(file)
            if binding not in queues:
                _write_atomically(file, dumps([binding, *queues]))

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any) -> None:
        VirtualChannel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        binding = exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._table_lock(exchange) as file:
            queues = self._read_table(file)
            if binding in queues:
                _write_atomically(file, dumps([q for q in queues if q != binding]))


class Transport(filesystem.Transport):
    Channel = Channel
