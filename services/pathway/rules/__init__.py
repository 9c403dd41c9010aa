"""The pure pathway engine, rule set lbp-postlam-2026.2 (docs/pathway-spec.md, docs/clinical-rules.md).

No database, broker, web framework, logging I/O or wall clock: `now` is a parameter.
"""

from .catalog import RULE_SET_VERSION
from .engine import evaluate
from .model import Assessment, Deadline, Fact, Flag, PainScore, PainTrend, Recommendation, StageReason
from .params import PROFILES, Params, params_for

__all__ = [
    "PROFILES",
    "RULE_SET_VERSION",
    "Assessment",
    "Deadline",
    "Fact",
    "Flag",
    "PainScore",
    "PainTrend",
    "Params",
    "Recommendation",
    "StageReason",
    "evaluate",
    "params_for",
]
