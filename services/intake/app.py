"""FastAPI app factory of the intake service."""
from __future__ import annotations

from fastapi import FastAPI

from shared.web import install_common


def create_app() -> FastAPI:
    from services.intake import api, config_api, evaluate_api

    app = FastAPI(title="carepath intake", version="1")
    install_common(app, "intake")
    app.include_router(api.router)
    app.include_router(evaluate_api.router)
    app.include_router(config_api.router)
    return app
