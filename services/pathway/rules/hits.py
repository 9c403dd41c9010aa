"""What a flag rule yields: the flag code, the facts behind it and, for texts that name what was found, a
detail phrase (risks present, unmet criteria, factors)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .timeline import Event


class Hit(NamedTuple):
    code: str
    ids: tuple[str, ...]
    detail: str | None = None


def ids_of(events: Iterable[Event]) -> tuple[str, ...]:
    return tuple(e.id for e in events)


def words(items: Iterable[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    parts = list(items)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
