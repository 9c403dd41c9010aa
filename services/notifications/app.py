"""FastAPI app factory of the notifications service."""
from __future__ import annotations

from fastapi import FastAPI

from shared.web import install_common


def create_app() -> FastAPI:
    from services.notifications import api
    from services.notifications.channels import api as channels_api
    from services.notifications.web import routes as web_routes

    app = FastAPI(title="carepath notifications", version="1")
    install_common(app, "notifications")
    app.include_router(api.router)
    app.include_router(channels_api.router)
    app.include_router(web_routes.router)
    return app
