"""What-if: the assessment posted facts give, stored nowhere (a dry run for clinicians and rule changes)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.intake.schemas import EvaluateIn
from services.pathway.mapping import facts_from_updates, org_params
from services.pathway.rules import evaluate
from shared.auth import Principal, require
from shared.clock import utcnow
from shared.db.uow import UnitOfWork
from shared.web import check_instant, no_nul_characters

router = APIRouter(prefix="/v1", dependencies=[Depends(no_nul_characters)])


@router.post("/pathway:evaluate", responses={401: {"description": "missing or invalid token"},
                                              403: {"description": "role not allowed"},
                                              422: {"description": "invalid updates"}})
def what_if(body: EvaluateIn, principal: Annotated[Principal, Depends(require())]) -> dict[str, Any]:
    check_instant(body.now, ("body", "now"))
    for index, update in enumerate(body.updates):
        check_instant(update.occurred_at, ("body", "updates", index, "occurred_at"))
    with UnitOfWork(read_only=True) as uow:
        params = org_params(uow, principal.org)
    return evaluate(facts_from_updates(body.updates), body.now or utcnow(), params).to_dict()
