"""The pathway consumer: which events re-evaluate which patient."""

from __future__ import annotations

import logging

from services.pathway.coalescing import evaluate_update
from services.pathway.handler import evaluate_patient
from shared.db.uow import UnitOfWork
from shared.events import PATHWAY_REEVALUATION_REQUESTED, PATIENT_UPDATED, Event
from shared.patients import PatientNotFound

log = logging.getLogger("carepath.pathway")
TRIGGERS = {PATIENT_UPDATED: "update", PATHWAY_REEVALUATION_REQUESTED: "reevaluation"}


def handle_event(uow: UnitOfWork, event: Event) -> None:
    trigger = event.data.get("reason") or TRIGGERS.get(event.type)
    if trigger is None:
        log.warning("pathway consumer ignored event type %s", event.type)
        return
    try:
        if event.type == PATIENT_UPDATED:
            coalesced = evaluate_update(uow, event, trigger)
            if coalesced is None:
                log.info("patient evaluation not needed: event=%s covered by an earlier evaluation", event.id)
                return
            outcome = coalesced
        else:
            outcome = evaluate_patient(uow, event.subject, trigger)
    except PatientNotFound:
        log.warning("event %s names no known patient; skipped", event.id)
        return
    log.info(
        "patient evaluated: event=%s seq=%s stored=%s published=%s",
        event.id,
        outcome.seq,
        outcome.stored,
        outcome.published,
    )
