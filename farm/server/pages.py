"""The dashboard's server-rendered pages: Jinja2 templates shipped in the package.

Every value a template shows goes through Jinja2's autoescaping (on for every
template, whatever its name): names, output and tracebacks come from tests and
workers, and a test named ``<script>`` must show as text. Each page has its JSON
twin under ``/api/``, built from the same function, so what a page shows and what
the API answers cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request

from farm.core import defaults
from farm.worker.registry import WorkerInfo

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def when(timestamp: float | None) -> str:
    """A store time for people: UTC to the second ("" for none)."""
    if timestamp is None:
        return ""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def page_environment() -> Environment:
    """Templates with escaping always on and no silent holes for a misspelt name;
    ``|when`` shows a store time (unix seconds) to people."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = when
    return environment


@dataclass(frozen=True)
class WorkerRow:
    name: str
    pid: int
    capacity: int
    queue: str
    up_s: float
    seen_ago_s: float


@dataclass(frozen=True)
class MachineRow:
    name: str
    slots: int
    workers: tuple[WorkerRow, ...]


def machines_of(workers: Sequence[WorkerInfo], now: float) -> tuple[MachineRow, ...]:
    """Live workers grouped by machine, machines by name, workers by name."""
    by_machine: dict[str, list[WorkerRow]] = {}
    for info in sorted(workers, key=lambda w: (w.machine, w.name)):
        by_machine.setdefault(info.machine, []).append(
            WorkerRow(
                name=info.name,
                pid=info.pid,
                capacity=info.capacity,
                queue=info.queue,
                up_s=max(0.0, now - info.started_at),
                seen_ago_s=max(0.0, now - info.seen_at),
            )
        )
    return tuple(
        MachineRow(name, sum(w.capacity for w in rows), tuple(rows))
        for name, rows in by_machine.items()
    )


def worker_routes(
    live_workers: Callable[[], Sequence[WorkerInfo]],
    *,
    environment: Environment,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """``GET /workers`` and ``GET /api/workers``: the machines and slots alive."""
    router = APIRouter()

    def workers_view() -> dict[str, Any]:
        machines = machines_of(live_workers(), clock())
        return {
            "machines": [asdict(machine) for machine in machines],
            "total_workers": sum(len(m.workers) for m in machines),
            "total_slots": sum(m.slots for m in machines),
            "seen_window_s": defaults.WORKER_SEEN_S,
        }

    @router.get("/api/workers")
    def workers_json() -> dict[str, Any]:
        return workers_view()

    @router.get("/workers", response_class=HTMLResponse)
    def workers_page(request: Request) -> HTMLResponse:
        html = environment.get_template("workers.html").render(**workers_view())
        return HTMLResponse(html)

    return router


__all__ = ["MachineRow", "WorkerRow", "machines_of", "page_environment", "when", "worker_routes"]
