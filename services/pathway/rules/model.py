"""Value types of the pathway engine: the facts it reads and the assessment it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .sources import resolve

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class Fact:
    """One clinical update (pathway-spec §1), already validated by intake."""

    id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)  # hashable facts despite dict data

    def __post_init__(self) -> None:
        if self.occurred_at.utcoffset() is None:
            raise ValueError(f"fact {self.id!r}: occurred_at must be timezone-aware")


def to_micros(moment: datetime) -> int:
    """Exact UTC instant as integer microseconds since the epoch (whatever offset it was written with)."""
    try:
        delta = moment - _EPOCH  # one utcoffset() call; naive datetimes raise TypeError here
    except TypeError as exc:
        raise ValueError("timestamps must be timezone-aware") from exc
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(0, micros // 1_000_000, micros % 1_000_000)  # positional: cheapest form


def iso_utc(micros: int | None) -> str | None:
    """ISO 8601 in UTC, always with the "Z" suffix."""
    if micros is None:
        return None
    return from_micros(micros).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Flag:
    code: str
    fact_ids: tuple[str, ...]
    rationale: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "fact_ids": list(self.fact_ids), "rationale": self.rationale}


@dataclass(frozen=True)
class Recommendation:
    code: str
    text: str
    citation: str
    fact_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "text": self.text,
            "citation": self.citation,
            "sources": resolve(self.citation),
            "fact_ids": list(self.fact_ids),
        }


@dataclass(frozen=True)
class Deadline:
    kind: str
    due_at: datetime
    status: str  # pending | satisfied | cancelled
    text: str
    citation: str
    fact_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "due_at": iso_utc(to_micros(self.due_at)),
            "status": self.status,
            "text": self.text,
            "citation": self.citation,
            "sources": resolve(self.citation),
            "fact_ids": list(self.fact_ids),
        }


@dataclass(frozen=True)
class StageReason:
    text: str
    fact_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "fact_ids": list(self.fact_ids)}


@dataclass(frozen=True)
class PainScore:
    pain_nrs: Any
    function_peg: Any
    at: datetime
    fact_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "pain_nrs": self.pain_nrs,
            "function_peg": self.function_peg,
            "at": _iso(self.at),
            "fact_id": self.fact_id,
        }


@dataclass(frozen=True)
class PainTrend:
    baseline: PainScore | None
    latest: PainScore | None
    change_percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "latest": None if self.latest is None else self.latest.to_dict(),
            "change_percent": self.change_percent,
        }


@dataclass(frozen=True)
class Assessment:
    """The pathway state of one patient at `evaluated_at` (pathway-spec §6).

    `pathway_stage`/`pathway_stage_since` hold the stage underneath an urgent evaluation (equal to
    `stage`/`stage_since` otherwise); they are not part of `to_dict()`.
    """

    stage: str
    stage_since: datetime | None
    rule_set_version: str
    profile: str
    params_digest: str
    evaluated_at: datetime
    next_evaluation_at: datetime | None
    updates_evaluated: int
    flags: tuple[Flag, ...]
    recommendations: tuple[Recommendation, ...]
    deadlines: tuple[Deadline, ...]
    pathway_stage: str
    pathway_stage_since: datetime | None
    stage_reason: StageReason = StageReason("", ())
    pain: PainTrend = PainTrend(None, None, None)
    current_mme: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "stage_since": _iso(self.stage_since),
            "stage_reason": self.stage_reason.to_dict(),
            "rule_set_version": self.rule_set_version,
            "profile": self.profile,
            "params_digest": self.params_digest,
            "evaluated_at": _iso(self.evaluated_at),
            "next_evaluation_at": _iso(self.next_evaluation_at),
            "updates_evaluated": self.updates_evaluated,
            "pain": self.pain.to_dict(),
            "current_mme": self.current_mme,
            "flags": [flag.to_dict() for flag in self.flags],
            "recommendations": [rec.to_dict() for rec in self.recommendations],
            "deadlines": [deadline.to_dict() for deadline in self.deadlines],
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso_utc(to_micros(moment))
