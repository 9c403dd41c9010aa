"""The organisation's pathway configuration, for ops tokens only; the organisation is always the token's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from services.pathway.config import ConfigError, describe_config, replace_config
from shared import orgtime
from shared.audit import AuditTrail
from shared.auth import Principal, require
from shared.db.uow import UnitOfWork
from shared.web import Responses, no_nul_characters

router = APIRouter(prefix="/v1/organisation", tags=["configuration"], dependencies=[Depends(no_nul_characters)])
Ops = Annotated[Principal, Depends(require("ops"))]
AUTH: Responses = {
    401: {"description": "missing or invalid token"},
    403: {"description": "only ops tokens may do this"},
    429: {"description": "rate limit exceeded (Retry-After says when to retry)"},
}
INVALID: Responses = {422: {"description": "unknown profile or parameter, or a bad value"}}
# No parameter (days, months, counts, an MME threshold) needs more than 100 years' worth of days; far larger
# ones were accepted and then overflowed every evaluation's date arithmetic (a 500 on each what-if).
MAX_PARAMETER = 36_500


class PathwayConfigIn(BaseModel):
    """The complete configuration: parameters not listed in `overrides` take the profile's defaults."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field("asra-2020", description="policy profile: asra-2020 or us-medicare-lcd")
    overrides: dict[str, Any] = Field(default_factory=dict, description="parameter name -> value")
    timezone: str | None = Field(
        None,
        max_length=orgtime.MAX_NAME,
        description="the organisation's IANA time zone (e.g. Europe/Berlin); absent or null: unchanged",
    )


@router.get("/pathway-config", responses=AUTH)
def get_pathway_config(principal: Ops, trail: AuditTrail) -> dict[str, Any]:
    with UnitOfWork(read_only=True) as uow:
        described = describe_config(uow, principal.org)
    trail.read(principal, "config.pathway.read", resource=("org_config", None))
    return described


@router.put("/pathway-config", responses={**AUTH, **INVALID})
def put_pathway_config(body: PathwayConfigIn, principal: Ops, trail: AuditTrail) -> dict[str, Any]:
    """Replace the configuration. A change to any parameter re-evaluates every patient of the organisation
    (a run driven by the scheduler); the response names that run under `reevaluation`."""
    with trail.failures(principal, "config.pathway.update"), UnitOfWork() as uow:
        for name, value in body.overrides.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_PARAMETER:
                raise HTTPException(422, detail=f"parameter {name!r} is at most {MAX_PARAMETER}, got {value!r}")
        try:
            zone_changed = body.timezone is not None and orgtime.set_timezone(uow, principal.org, body.timezone)
            change = replace_config(uow, principal.org, body.profile, body.overrides, requested_by=principal.actor)
        except (ConfigError, orgtime.InvalidTimezone) as exc:
            raise HTTPException(422, detail=str(exc)) from None
        trail.write(uow, principal, "config.pathway.update", resource=("reevaluation_run", change.run_id))
        uow.commit()
        described = describe_config(uow, principal.org)
        return {**described, "changed": change.changed or zone_changed, "reevaluation_run_id": change.run_id}
