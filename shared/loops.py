"""Objects that belong to one asyncio event loop (an asyncio database pool, an async Redis client): their
connections wait on the loop that opened them, and tests run several loops in one process (one per
TestClient), so each loop gets its own, dropped with the loop."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def loop_local(key: Hashable, make: Callable[[], T]) -> T:
    """The running loop's object for `key`, made by `make()` the first time."""
    loop = asyncio.get_running_loop()
    with _lock:
        objects = _per_loop.setdefault(loop, {})
        if key not in objects:
            objects[key] = make()
        return objects[key]  # type: ignore[no-any-return]
