"""The HTTP apps of the contract, assembled from the routers each service owns.

The intake process (port 8000) serves the intake service's routes and the pathway service's read, history,
what-if and configuration routes; the notifications process (port 8001) serves the notifications service.
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.observability.http import FASTAPI_TELEMETRY
from shared.web import install_common

# Celery task modules a worker imports: one per service that consumes events.
TASK_MODULES = ("services.pathway.tasks", "services.notifications.tasks")


def create_intake_app() -> FastAPI:
    from services.intake import api as intake_api
    from services.intake.fhir import routes as fhir_routes
    from services.pathway import api as pathway_api
    from services.pathway import config_api as pathway_config_api
    from services.pathway.cds import routes as cds_routes

    app = FastAPI(title="carepath intake", version="1", telemetry=FASTAPI_TELEMETRY)  # type: ignore[arg-type]
    install_common(app, "intake")
    app.include_router(intake_api.router)
    fhir_routes.opioid_cds()  # the value sets and MME factors are read at start: a missing folder fails here
    app.include_router(fhir_routes.router)
    app.include_router(pathway_api.router)
    app.include_router(pathway_config_api.router)
    app.include_router(cds_routes.router)
    return app


def create_notifications_app() -> FastAPI:
    from services.notifications import api
    from services.notifications.channels import api as channels_api
    from services.notifications.web import routes as web_routes

    app = FastAPI(title="carepath notifications", version="1", telemetry=FASTAPI_TELEMETRY)  # type: ignore[arg-type]
    install_common(app, "notifications", database_metrics=True)
    app.include_router(api.router)
    app.include_router(channels_api.router)
    app.include_router(web_routes.router)
    return app
