"""Default parameters of rule set lbp-postlam-2026.2 and the policy profiles (pathway-spec §5).

Every number of the spec that does not come from a source is a named field here, so an organisation can
override it; the assessment records the profile and a digest of the parameters it used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any

DEFAULT_PROFILE = "asra-2020"

# Medial branch block positivity: where Cohen et al. 2020 (ASRA) and the Medicare LCD disagree.
PROFILES: Mapping[str, Mapping[str, Any]] = {
    "asra-2020": {"mbb_blocks_required": 1, "mbb_relief_percent": 50, "mbb_min_days_apart": 0},
    "us-medicare-lcd": {"mbb_blocks_required": 2, "mbb_relief_percent": 80, "mbb_min_days_apart": 14},
}

# The source (a code of sources.py) behind each profile's thresholds.
PROFILE_SOURCES: Mapping[str, str] = {"asra-2020": "ASRA 2020", "us-medicare-lcd": "CMS LCD"}

_PERCENT_FIELDS = frozenset({"mbb_relief_percent", "scs_positive_percent"})
_FRACTION_FIELDS = frozenset({"relief_fraction", "worsening_fraction"})
_POSITIVE_FIELDS = frozenset({"mbb_blocks_required"})


@dataclass(frozen=True)
class Params:
    """All tunable numbers of the rule set. Days are exact 24 h multiples of UTC time."""

    profile: str = DEFAULT_PROFILE
    baseline_delay_days: int = 28  # acute post-operative pain before this is no baseline (2026.2)
    initial_evaluation_days: int = 14
    first_line_trial_days: int = 42
    pt_assessment_after_days: int = 28
    psych_therapy_days: int = 56
    relief_fraction: Fraction = Fraction(3, 10)
    worsening_points: int = 2
    worsening_fraction: Fraction = Fraction(3, 10)
    first_line_prompt_days: int = 14  # active_pt_not_started, non_opioid_not_started
    pt_not_started_days: int = 28
    rehab_after_surgery_days: int = 365
    pt_start_check_days: int = 14
    pt_follow_up_days: int = 28
    esi_follow_up_days: int = 14
    rfa_follow_up_days: int = 90
    scs_implant_follow_up_days: int = 90
    endoscopic_follow_up_days: int = 42
    repeat_surgery_follow_up_days: int = 42
    block_follow_up_days: int = 7  # medial_branch_block and scs_trial recorded without their result
    opioid_review_days: int = 28
    opioid_review_min_days: int = 21  # a review this long after a course start is the 4-week review
    opioid_benefit_days: int = 7
    taper_follow_up_days: int = 28
    stop_follow_up_min_days: int = 28
    stop_follow_up_days: int = 14
    dose_change_review_days: int = 28
    periodic_review_days: int = 90
    pdmp_interval_days: int = 90
    udt_interval_days: int = 365
    monitoring_lookback_days: int = 30
    naloxone_mme_threshold: int = 50
    scs_positive_percent: int = 50
    tolerance_days: int = 28
    symptom_months_good: int = 12
    mbb_blocks_required: int = 1
    mbb_relief_percent: int = 50
    mbb_min_days_apart: int = 0

    def __post_init__(self) -> None:
        # Exact arithmetic: 0.3 given as a float must still make 10 -> 7 count as 30 %.
        for name in _FRACTION_FIELDS:
            if not isinstance(getattr(self, name), Fraction):
                object.__setattr__(self, name, _checked_fraction(name, getattr(self, name)))

    def as_json_dict(self) -> dict[str, Any]:
        """Every parameter as JSON-ready values (fractions as exact "n/d" strings)."""
        return {f.name: _json_value(getattr(self, f.name)) for f in fields(self)}

    @cached_property
    def _digest(self) -> str:
        text = json.dumps(self.as_json_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def digest(self) -> str:
        """sha256 hex of the sorted-key compact JSON of all parameters, profile included."""
        return self._digest


def _json_value(value: Any) -> Any:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return value


def params_for(profile: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> Params:
    """Parameters of a policy profile, with an organisation's overrides on top. ValueError if invalid."""
    if profile not in PROFILES:
        raise ValueError(f"unknown policy profile {profile!r}; known: {sorted(PROFILES)}")
    values: dict[str, Any] = {"profile": profile, **PROFILES[profile]}
    known = {f.name for f in fields(Params)} - {"profile"}
    for name, raw in (overrides or {}).items():
        if name not in known:
            raise ValueError(f"unknown pathway parameter {name!r}")
        values[name] = _checked(name, raw)
    return replace(Params(), **values)


def _checked(name: str, raw: Any) -> Any:
    if name in _FRACTION_FIELDS:
        return _checked_fraction(name, raw)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, Decimal, Fraction)):
        raise ValueError(f"parameter {name!r} must be a number, got {raw!r}")
    value = Fraction(str(raw)) if isinstance(raw, (float, Decimal)) else Fraction(raw)
    if value < 0 or value.denominator != 1:
        raise ValueError(f"parameter {name!r} must be a whole number >= 0, got {raw!r}")
    if name in _PERCENT_FIELDS and value > 100:
        raise ValueError(f"parameter {name!r} is a percentage (0-100), got {raw!r}")
    if name in _POSITIVE_FIELDS and value < 1:
        raise ValueError(f"parameter {name!r} must be at least 1")
    return int(value)


def _checked_fraction(name: str, raw: Any) -> Fraction:
    if isinstance(raw, bool):
        raise ValueError(f"parameter {name!r} must be a number")
    try:
        value = Fraction(str(raw)) if isinstance(raw, (float, Decimal)) else Fraction(raw)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"parameter {name!r} must be a fraction, got {raw!r}") from exc
    if not 0 < value <= 1:
        raise ValueError(f"parameter {name!r} must be in (0, 1], got {raw!r}")
    return value
