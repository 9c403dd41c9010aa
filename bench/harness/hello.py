"""The ceiling for intake: a hello-world FastAPI POST route (async: the framework at its best), served by uvicorn exactly as `carepath intake`
is (one process, factory, no access log), that parses a small JSON body and answers 202."""

from __future__ import annotations

import sys
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class Hello(BaseModel):
    type: str
    occurred_at: str
    data: dict[str, Any]


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/patients/{patient_id}/updates", status_code=202)
    async def hello(patient_id: str, body: Hello) -> dict[str, str]:
        return {"update_id": patient_id, "event_id": body.type}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    import uvicorn

    uvicorn.run(
        "bench.harness.hello:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
