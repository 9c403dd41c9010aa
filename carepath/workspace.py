"""The pathway readings the coordinators' workspace needs (services/notifications/web/patient.py's port),
computed by the pathway's own rules: the composition root is the only place that may import both services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.pathway.rules import courses, sources
from services.pathway.rules.model import from_micros, to_micros
from services.pathway.rules.timeline import Event, ordered


class PathwayReadings:
    def mme_steps(
        self, medications: Sequence[tuple[str, datetime, dict[str, Any]]]
    ) -> list[tuple[datetime, float | None]]:
        """Current MME (pathway-spec §1) right after every medication instant: 0 off opioids, None when on
        opioids with no dose recorded."""
        events = ordered([Event(to_micros(at), "medication", data, fact_id) for fact_id, at, data in medications])
        steps: list[tuple[datetime, float | None]] = []
        for instant in sorted({event.t for event in events}):
            built = courses.build_courses([event for event in events if event.t <= instant])
            on_opioids = any(c.drug_class in courses.OPIOID_CLASSES and c.open_at(instant) for c in built)
            value = courses.current_mme(built, instant) if on_opioids else 0.0
            if not steps or steps[-1][1] != value:
                steps.append((from_micros(instant), value))
        return steps

    def resolve_sources(self, citation: str) -> list[dict[str, Any]]:
        try:
            return sources.resolve(citation)
        except ValueError:  # a code this catalogue does not know (an older rule set): shown as the code
            return [
                {"code": code.strip(), "title": code.strip(), "url": None}
                for code in citation.split(";")
                if code.strip()
            ]
