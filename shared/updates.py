"""The patient update types of pathway-spec.md §1 as request models, shared by the services that accept
them (intake stores them; the pathway's what-if evaluates them). Strictly: unknown types and
fields, wrong enum values, out-of-range numbers and naive or non-RFC 3339 timestamps are refused (422)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

# RFC 3339 date-time (section 5.6; a space for the "T" as its note allows): seconds and an offset required.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")


def _rfc3339_string(value: Any) -> Any:
    example = "e.g. 2026-03-01T09:30:00+01:00"
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC 3339 timestamp string with an offset, {example}")
    if _NAIVE.fullmatch(value):
        raise ValueError(f"must include a time and a UTC offset (naive timestamps are refused), {example}")
    if not _RFC3339.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 timestamp with seconds and an offset, {example}")
    return value


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)]
Score = Annotated[int, Field(ge=0, le=10, strict=True)]
# JSON numbers only: a number written as a string ("50") is refused like any other wrong kind of value.
Peg = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=10, allow_inf_nan=False, strict=True)]
NonNegative = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, allow_inf_nan=False, strict=True)]
Percent = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=100, allow_inf_nan=False, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Level = Annotated[str, Field(pattern=r"^[CTLS][0-9]{1,2}-[CTLS]?[0-9]{1,2}$", max_length=10)]
Text = Annotated[str, Field(min_length=1, max_length=500)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SurgeryData(Strict):
    procedure: Literal["laminectomy", "foraminotomy", "laminectomy_foraminotomy", "discectomy", "fusion", "other"]
    levels: list[Level] | None = Field(default=None, max_length=20)


class PainAssessmentData(Strict):
    pain_nrs: Score
    function_peg: Peg | None = None
    distribution: Literal["axial", "radicular", "mixed"]
    facet_suspected: Flag = False


class NeuroExamData(Strict):
    progressive_deficit: Flag
    cauda_equina_signs: Flag = False


ImagingFinding = Literal[
    "recurrent_disc_herniation",
    "inadequate_decompression",
    "instability",
    "adjacent_segment_disease",
    "nerve_entrapment_in_scar",
    "no_surgical_target",
]


class ImagingData(Strict):
    modality: Literal["mri", "ct", "xray"]
    findings: list[ImagingFinding] = Field(max_length=20)
    indication: Text | None = None


OPIOID_CLASSES = ("opioid_ir", "opioid_er")


class MedicationData(Strict):
    drug_class: Literal[
        "nsaid",
        "gabapentinoid",
        "sodium_channel_anticonvulsant",
        "tca",
        "snri",
        "opioid_ir",
        "opioid_er",
        "benzodiazepine",
        "other",
    ]
    action: Literal["started", "dose_increased", "dose_decreased", "stopped"]
    mme_per_day: NonNegative | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _mme_only_for_opioids(self) -> MedicationData:
        if self.mme_per_day is not None and self.drug_class not in OPIOID_CLASSES:
            raise ValueError("mme_per_day applies to opioid_ir and opioid_er only")
        return self


class OpioidMonitoringData(Strict):
    plan_documented: Flag
    pdmp_checked: Flag | None = None
    urine_drug_test: Flag | None = None
    naloxone_offered: Flag | None = None


class OpioidReviewData(Strict):
    meaningful_relief: Flag
    pain_nrs: Score | None = None
    tolerance_or_hyperalgesia: Flag | None = None


class TherapyData(Strict):
    kind: Literal[
        "physical_therapy",
        "cbt",
        "biofeedback",
        "relaxation_training",
        "supportive_psychotherapy",
        "psychological_evaluation",
        "multidisciplinary_rehab",
        "tens",
    ]
    status: Literal["referred", "started", "progress", "completed", "stopped"]
    modality: Literal["active", "passive"] | None = None
    meaningful_relief: Flag | None = None

    @model_validator(mode="after")
    def _modality_only_for_pt_sessions(self) -> TherapyData:
        if self.modality is not None and (
            self.kind != "physical_therapy" or self.status not in ("started", "progress")
        ):
            raise ValueError("modality applies to physical_therapy with status started or progress only")
        return self


class ProcedureData(Strict):
    kind: Literal[
        "epidural_steroid_injection",
        "medial_branch_block",
        "radiofrequency_denervation",
        "scs_trial",
        "scs_implant",
        "endoscopic_decompression",
        "repeat_surgery",
    ]
    approach: Literal["transforaminal", "interlaminar", "caudal"] | None = None
    image_guided: Flag | None = None
    relief_percent: Percent | None = None


PsychosocialFactor = Literal[
    "high_motivation",
    "family_support",
    "good_function",
    "moderate_psychological_factors",
    "divorced",
    "unemployed",
    "diffuse_complaints",
    "predominant_psychological_factors",
    "secondary_gain",
    "substance_use_disorder",
    "prior_overdose",
]


class PsychosocialData(Strict):
    factors: list[PsychosocialFactor] = Field(max_length=20)
    symptom_months_before_surgery: NonNegative | None = None


class SurgicalEvaluationData(Strict):
    """A spine surgeon's evaluation (e.g. after a red flag): it closes the urgent surgical referral."""

    outcome: Literal["surgery_planned", "no_surgery_indicated", "declined"]


class UpdateBase(Strict):
    """What every update has; each type's model narrows `type` to its name and `data` to its data model."""

    type: str
    occurred_at: Instant
    data: Strict


def _update(type_name: str, data_model: type[Strict]) -> type[UpdateBase]:
    return type(
        f"{data_model.__name__.removesuffix('Data')}Update",
        (UpdateBase,),
        {
            "__annotations__": {"type": Literal[type_name], "occurred_at": Instant, "data": data_model},
            "__module__": __name__,
        },
    )


DATA_MODELS: dict[str, type[Strict]] = {
    "surgery": SurgeryData,
    "pain_assessment": PainAssessmentData,
    "neuro_exam": NeuroExamData,
    "imaging": ImagingData,
    "medication": MedicationData,
    "opioid_monitoring": OpioidMonitoringData,
    "opioid_review": OpioidReviewData,
    "therapy": TherapyData,
    "procedure": ProcedureData,
    "psychosocial": PsychosocialData,
    "surgical_evaluation": SurgicalEvaluationData,
}
_UPDATE_MODELS = tuple(_update(name, model) for name, model in DATA_MODELS.items())


def _update_tag(value: Any) -> str | None:
    """The union branch of an update: its type when known; an unknown or missing type goes to the `type`
    branch, which refuses it with a field-level error at `type` (loc [..., "type"])."""
    if isinstance(value, dict):
        type_name = value.get("type")
    elif isinstance(value, BaseModel):
        type_name = getattr(value, "type", None)
    else:
        return None  # not an object: pydantic's own "unable to extract tag" error
    return type_name if isinstance(type_name, str) and type_name in DATA_MODELS else "type"


def _unknown_type(value: Any) -> Any:
    type_name = value.get("type") if isinstance(value, dict) else None
    expected = ", ".join(DATA_MODELS)
    if type_name is None:
        raise PydanticCustomError(
            "missing", "Field required: the update type, one of {expected}", {"expected": expected}
        )
    raise PydanticCustomError(
        "literal_error",
        "Unknown update type {given!r}; expected one of {expected}",
        {"given": type_name, "expected": expected},
    )


# Statically an UpdateBase; at run time the discriminated union of every type's model.
if TYPE_CHECKING:
    UpdateIn: TypeAlias = UpdateBase
else:
    UpdateIn = Annotated[
        Union[  # noqa: UP007 - a Union built from a tuple of types; `|` has no such form
            tuple(Annotated[model, Tag(name)] for name, model in zip(DATA_MODELS, _UPDATE_MODELS, strict=True))
            + (Annotated[Any, BeforeValidator(_unknown_type), Tag("type"), WithJsonSchema({"not": {}})],)
        ],
        Discriminator(
            _update_tag,
            custom_error_type="update_type",
            custom_error_message="An update must be an object with type, occurred_at and data",
        ),
    ]
