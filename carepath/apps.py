"""The HTTP apps of the contract, assembled from the routers each service owns.

The intake process (port 8000) serves the intake service's routes and the pathway service's read, history,
what-if and configuration routes; the notifications process (port 8001) serves the notifications service.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from shared.auth import Principal
from shared.db.uow import UnitOfWork
from shared.fhir import terminology
from shared.observability.http import FASTAPI_TELEMETRY
from shared.web import install_common

log = logging.getLogger("carepath.apps")

# Celery task modules a worker imports: one per service that consumes events.
TASK_MODULES = ("services.pathway.tasks", "services.notifications.tasks")


class _NotificationsReminderActions:
    """The pathway's CDS feedback acting on reminders through the notifications service's own lifecycle."""

    def snooze(self, uow: UnitOfWork, principal: Principal, reminder_id: str, until: datetime, reason: str) -> bool:
        from services.notifications import lifecycle

        try:
            lifecycle.snooze(uow, principal, reminder_id, until, reason)
        except (lifecycle.ReminderNotFound, lifecycle.InvalidTransition, lifecycle.InvalidRequest):
            return False
        return True

    def dismiss(self, uow: UnitOfWork, principal: Principal, reminder_id: str, reason: str) -> bool:
        from services.notifications import lifecycle

        try:
            lifecycle.dismiss(uow, principal, reminder_id, reason)
        except (lifecycle.ReminderNotFound, lifecycle.InvalidTransition, lifecycle.InvalidRequest):
            return False
        return True


@functools.lru_cache(maxsize=512)  # a few distinct citations; a CSV export resolves one per row
def _catalogued_sources(citation: str) -> list[dict[str, Any]]:
    """A citation's sources from the pathway's catalogue (for reminders stored without them); a code the
    catalogue does not know (an older rule set) is shown as the code."""
    from services.pathway.rules import sources

    try:
        return sources.resolve(citation)
    except ValueError:
        return [
            {"code": code.strip(), "title": code.strip(), "url": None} for code in citation.split(";") if code.strip()
        ]


def _load_terminology() -> None:
    """The opioid value sets and MME factors are read at start. Missing, `carepath intake` refuses to start
    outside development (carepath/cli.py); in development the intake runs and the FHIR route and CDS order
    review answer 503 until they are there."""
    try:
        terminology.configured()
    except terminology.TerminologyUnavailable as missing:
        log.warning("%s: FHIR ingestion and CDS order review answer 503 until they are there", missing)


def create_intake_app() -> FastAPI:
    from services.intake import api as intake_api
    from services.intake.fhir import routes as fhir_routes
    from services.pathway import api as pathway_api
    from services.pathway import config_api as pathway_config_api
    from services.pathway.cds import routes as cds_routes
    from services.pathway.cds import service as cds_service

    app = FastAPI(title="carepath intake", version="1", telemetry=FASTAPI_TELEMETRY)  # type: ignore[arg-type]
    install_common(app, "intake")
    app.include_router(intake_api.router)
    _load_terminology()
    app.include_router(fhir_routes.router)
    app.include_router(pathway_api.router)
    app.include_router(pathway_config_api.router)
    cds_service.use_reminder_actions(_NotificationsReminderActions())
    app.include_router(cds_routes.router)
    return app


def create_notifications_app() -> FastAPI:
    from carepath.workspace import PathwayReadings
    from services.notifications import api
    from services.notifications.channels import api as channels_api
    from services.notifications.web import patient as web_patient
    from services.notifications.web import routes as web_routes
    from services.notifications.web import worklist as web_worklist
    from services.notifications.web import workspace as web_workspace

    app = FastAPI(title="carepath notifications", version="1", telemetry=FASTAPI_TELEMETRY)  # type: ignore[arg-type]
    install_common(app, "notifications", database_metrics=True)
    app.include_router(api.router)
    app.include_router(channels_api.router)
    web_worklist.use_source_catalogue(_catalogued_sources)
    app.include_router(web_routes.router)
    web_patient.use_readings(PathwayReadings())
    app.include_router(web_workspace.router)
    return app
