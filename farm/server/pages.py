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
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request

from farm.core import defaults
from farm.server.params import OneLineErrors
from farm.store.dashboard import DashboardQueries
from farm.store.dashboard_records import MachineActivity
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


WINDOW_HOURS = 24  # the Workers page's window over the results store, unless ?hours=
WINDOW_HOURS_MAX = 720  # 30 days: past that the reads cost more than the page is worth
HOUR_S = 3600.0
WindowHours = Annotated[
    int,
    Query(
        ge=1,
        le=WINDOW_HOURS_MAX,
        description="How many hours back the results store is read for each machine's "
        "shards and failures.",
    ),
]


def activity_fields(activity: MachineActivity | None, now: float) -> dict[str, Any]:
    """What the store says of a machine, as the page and its JSON show it (zeros and
    no last sighting for a machine it holds nothing of)."""
    from farm.server.pages_changes import test_url  # it imports this module

    if activity is None:
        activity = MachineActivity("", 0, 0, 0.0, 0, 0, 0, 0, (), 0.0)
        seen_at = None
    else:
        seen_at = activity.last_seen_at
    fields = asdict(activity)
    del fields["machine"]
    fields["last_seen_at"] = seen_at
    fields["last_seen_ago_s"] = None if seen_at is None else max(0.0, now - seen_at)
    for test in fields["passed_elsewhere_tests"]:
        test["url"] = test_url(test["node_id"], test["project"])
    return fields


def worker_routes(
    live_workers: Callable[[], Sequence[WorkerInfo]],
    *,
    environment: Environment,
    clock: Callable[[], float] = time.time,
    dashboard: DashboardQueries | None = None,
) -> APIRouter:
    """``GET /workers`` and ``GET /api/workers``: the machines and slots alive and, given
    the store's ``dashboard`` reads, what each machine did over the last ``hours`` and
    the failures that point at it, machines the store saw but no worker is alive on
    included ("not alive")."""
    router = APIRouter(route_class=OneLineErrors)

    def workers_view(hours: int) -> dict[str, Any]:
        now = clock()
        machines = machines_of(live_workers(), now)
        seen: dict[str, MachineActivity] = {}
        if dashboard is not None:
            found = dashboard.machines(since=now - hours * HOUR_S)
            seen = {activity.machine: activity for activity in found}
        rows = [
            {**asdict(machine), "alive": True, "activity": seen.pop(machine.name, None)}
            for machine in machines
        ]
        rows += [
            {"name": name, "slots": 0, "workers": [], "alive": False, "activity": seen[name]}
            for name in sorted(seen)
        ]
        if dashboard is not None:
            for row in rows:
                row["activity"] = activity_fields(row["activity"], now)
        return {
            "machines": rows,
            "alive_machines": len(machines),
            "total_workers": sum(len(m.workers) for m in machines),
            "total_slots": sum(m.slots for m in machines),
            "seen_window_s": defaults.WORKER_SEEN_S,
            "window_hours": None if dashboard is None else hours,
            "window_hours_max": WINDOW_HOURS_MAX,
        }

    @router.get("/api/workers")
    def workers_json(hours: WindowHours = WINDOW_HOURS) -> dict[str, Any]:
        return workers_view(hours)

    @router.get("/workers", response_class=HTMLResponse)
    def workers_page(request: Request, hours: WindowHours = WINDOW_HOURS) -> HTMLResponse:
        html = environment.get_template("workers.html").render(**workers_view(hours))
        return HTMLResponse(html)

    return router


__all__ = [
    "WINDOW_HOURS",
    "WINDOW_HOURS_MAX",
    "MachineRow",
    "WorkerRow",
    "activity_fields",
    "machines_of",
    "page_environment",
    "when",
    "worker_routes",
]
