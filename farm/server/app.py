"""The ASGI app of ``farm serve``, composed from explicit parts.

FastAPI (on Starlette, served by uvicorn) because the dashboard this server grows
into needs a JSON API described by an OpenAPI document, which FastAPI derives from
the routes themselves. The parts come in from outside (the configuration, what
remembers deliveries, what queues a run), so the app is built the same way by
``farm serve`` and by tests that give it a real store and a recording queue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from farm.core.server_config import ServerConfig
from farm.core.trigger import TriggerRequest
from farm.server.answers import Refused, answer, refusal
from farm.server.auth import install_auth, require_reader
from farm.server.changes_api import change_routes
from farm.server.hooks import hook_routes
from farm.server.intake import Intake, SeenKeys
from farm.server.metrics import MetricsReaders
from farm.server.rerun import Rerun, rerun_routes, triggers
from farm.store import ResultStore
from farm.worker.registry import WorkerInfo


@dataclass(frozen=True)
class ServerParts:
    config: ServerConfig
    seen: SeenKeys  # the store's deliveries
    enqueue: Callable[[TriggerRequest], None]  # puts a run on the conductors' queue
    metrics: MetricsReaders | None = None  # None: no /metrics
    live_workers: Callable[[], Sequence[WorkerInfo]] | None = None  # None: no Workers page
    store: ResultStore | None = None  # None: no pages of changes, runs and tests


def create_app(parts: ServerParts) -> FastAPI:
    app = FastAPI(title="farm", summary="Distributed pytest: triggers and results.")
    intake = Intake(parts.seen, parts.enqueue)
    app.include_router(hook_routes(parts.config, intake))
    app.include_router(change_routes(parts.config, intake))
    install_auth(app, parts.config)
    if parts.metrics is not None:
        _add_metrics(app, parts.metrics)
    _add_pages(app, parts)
    if parts.store is not None:
        app.include_router(rerun_routes(Rerun(parts.config, intake, parts.store.dashboard)))

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


def _add_pages(app: FastAPI, parts: ServerParts) -> None:
    """The dashboard's pages, each behind the reader's check."""
    from farm.server.pages import page_environment, worker_routes
    from farm.server.pages_changes import change_routes_pages
    from farm.server.pages_runs import run_routes
    from farm.server.pages_tests import test_routes

    environment = page_environment()
    reader = [Depends(require_reader)]
    if parts.live_workers is not None:
        reads = None if parts.store is None else parts.store.dashboard
        workers = worker_routes(parts.live_workers, environment=environment, dashboard=reads)
        app.include_router(workers, dependencies=reader)
    if parts.store is not None:
        dashboard = parts.store.dashboard
        changes = change_routes_pages(
            dashboard, environment=environment, triggers=triggers(parts.config)
        )
        app.include_router(changes, dependencies=reader)
        app.include_router(run_routes(dashboard, environment=environment), dependencies=reader)
        app.include_router(test_routes(parts.store, environment=environment),
                           dependencies=reader)  # fmt: skip


def _add_metrics(app: FastAPI, readers: MetricsReaders) -> None:
    from prometheus_client import generate_latest

    from farm.server.metrics import CONTENT_TYPE, metrics_registry

    registry = metrics_registry(readers)

    # Not async: a scrape reads Redis and the store, so it runs in the thread pool.
    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require_reader)])
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)


__all__ = ["ServerParts", "create_app"]
