"""The ASGI app of ``farm serve``, composed from explicit parts.

FastAPI (on Starlette, served by uvicorn) because the dashboard this server grows
into needs a JSON API described by an OpenAPI document, which FastAPI derives from
the routes themselves. The parts come in from outside (the configuration, what
remembers deliveries, what queues a run), so the app is built the same way by
``farm serve`` and by tests that give it a real store and a recording queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from farm.core.server_config import ServerConfig
from farm.core.trigger import TriggerRequest
from farm.server.answers import Refused, answer, refusal
from farm.server.changes_api import change_routes
from farm.server.hooks import hook_routes
from farm.server.intake import Intake, SeenKeys


@dataclass(frozen=True)
class ServerParts:
    config: ServerConfig
    seen: SeenKeys  # the store's deliveries
    enqueue: Callable[[TriggerRequest], None]  # puts a run on the conductors' queue


def create_app(parts: ServerParts) -> FastAPI:
    app = FastAPI(title="farm", summary="Distributed pytest: triggers and results.")
    intake = Intake(parts.seen, parts.enqueue)
    app.include_router(hook_routes(parts.config, intake))
    app.include_router(change_routes(parts.config, intake))

    @app.get("/api/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "repositories": len(parts.config.repositories)}

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> JSONResponse:
        return refusal(error)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        # A store or broker failure: the sender may deliver again, nothing was queued.
        return answer(503, "unavailable", f"{type(error).__name__}: {error}"[:300])

    return app


__all__ = ["ServerParts", "create_app"]
