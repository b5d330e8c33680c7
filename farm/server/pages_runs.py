"""The Run page: ``GET /runs/{id}`` and its JSON twin ``GET /api/runs/{id}``.

One view, built by :func:`run_view` from the store's dashboard reads, feeds both the
page and the JSON, so they cannot drift apart. The page shows the run's progress and
ETA, its shards on a time line (:mod:`farm.report.timeline_svg`, inlined), its
failures a page at a time grouped by signature, its slowest tests, and its makespan
against the plan and against a lower bound. While the run is running a small inline
script polls the JSON every two seconds and refreshes the numbers and the time line
(``GET /runs/{id}/timeline.svg``); no front-end build.

The page stays small whatever the run's size: one page of failures (each traceback
and output clipped, the full text a link away), a bounded number of slowest tests,
and a time line bounded by its own module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment

from farm.core.domain import RunState
from farm.core.errors import UsageError
from farm.report.timeline_svg import BarState, Timeline, TimelineBar, timeline_svg
from farm.server.pages_failure_groups import group_routes, group_urls
from farm.server.params import OneLineErrors
from farm.store.connection import UnknownRun
from farm.store.dashboard import DashboardQueries
from farm.store.dashboard_changes import encode_cursor
from farm.store.dashboard_records import FailureRow, RunProgress
from farm.store.records import ShardState, ShardView

# Attempt ids are signed 64-bit in every store: a larger one is refused before the query.
MAX_ATTEMPT_ID = 2**63 - 1

FAILURES_PER_PAGE = 20
FAILURE_GROUPS_SHOWN = 20
SLOWEST_SHOWN = 20
CLIP_CHARS = 8 * 1024  # of each traceback and output shown in the page
POLL_MS = 2000


def eta_s(progress: RunProgress) -> float | None:
    """Seconds the run still needs, for a running run: the time so far scaled by the
    tests still owed (elapsed * remaining / done), or, before any test reported, the
    plan's estimate less the time so far. None when it cannot be said."""
    run = progress.run
    if run.state is not RunState.RUNNING or progress.makespan_s is None:
        return None
    elapsed = progress.makespan_s
    done = progress.tests_reported
    remaining = max(0, run.total_tests - done)
    if done > 0:
        return elapsed * remaining / done
    if run.estimated_makespan_s > 0:
        return max(0.0, run.estimated_makespan_s - elapsed)
    return None


def lower_bound_s(shards: Sequence[ShardView], longest_test_s: float, now: float) -> float:
    """No schedule of this work on these slots can end sooner: the greater of the work
    spread evenly over the slots and the longest single test. The work is the shards'
    busy time as recorded (start to end, a running one to ``now``): the tests' own
    durations plus what running them cost (module setup, process start)."""
    slots = {s.worker for s in shards if s.worker}
    busy = sum(
        max(0.0, (s.finished_at if s.finished_at is not None else now) - s.started_at)
        for s in shards
        if s.started_at is not None and s.worker
    )
    return max(busy / len(slots) if slots else 0.0, longest_test_s)


def timeline_of(
    progress: RunProgress,
    shards: Sequence[ShardView],
    failed_shards: Collection[int],
    retry_of: Mapping[int, int] | None = None,
) -> Timeline:
    """The run's started shards as bars, in seconds since the run started; a shard
    in ``retry_of`` is linked to the shard whose failed tests it runs again."""
    retry_of = retry_of or {}
    start = progress.run.started_at or 0.0
    bars: list[TimelineBar] = []
    for shard in shards:
        if shard.started_at is None:
            continue  # pending, or reissued before it was seen to start
        running = shard.state is ShardState.RUNNING
        if shard.state is ShardState.LOST:
            state = BarState.REISSUED
        elif running:
            state = BarState.RUNNING
        elif shard.shard_id in failed_shards:
            state = BarState.FAILED
        else:
            state = BarState.OK
        end = None if running or shard.finished_at is None else shard.finished_at - start
        bars.append(
            TimelineBar(
                shard_id=shard.shard_id,
                attempt=shard.lease,
                worker_slot=shard.worker or "slot not known",
                machine=shard.machine or "",
                start_s=shard.started_at - start,
                end_s=end,
                state=state,
                retry_of=retry_of.get(shard.shard_id),
                tests=shard.test_count,
                label=f"{shard.test_count} test(s), estimate {shard.estimate_s:.1f}s",
            )
        )
    running = progress.run.state is RunState.RUNNING
    return Timeline(
        bars=tuple(bars),
        elapsed_s=progress.makespan_s or 0.0,
        estimated_makespan_s=progress.run.estimated_makespan_s or None,
        live=running,
    )


def clipped(text: str, limit: int = CLIP_CHARS) -> dict[str, Any]:
    """The text's first ``limit`` characters, whether it was cut and its full length."""
    return {"text": text[:limit], "clipped": len(text) > limit, "chars": len(text)}


def failure_dict(run_id: str, row: FailureRow) -> dict[str, Any]:
    return {
        "attempt_id": row.attempt_id,
        "node_id": row.node_id,
        "outcome": row.outcome.value,
        "attempt": row.attempt,
        "shard_id": row.shard_id,
        "worker": row.worker,
        "machine": row.machine,
        "duration_s": row.duration_s,
        "longrepr": clipped(row.longrepr),
        "output": clipped(row.output),
        "full_url": f"/api/runs/{run_id}/failures/{row.attempt_id}",
    }


def progress_of(board: DashboardQueries, run_id: str) -> RunProgress:
    """The run's progress; UnknownRun when the store has no such run (the store words
    that as a UsageError, which a read with no cursor raises for nothing else)."""
    try:
        return board.run_progress(run_id)
    except UsageError:
        raise UnknownRun(run_id) from None


def run_basics(board: DashboardQueries, run_id: str) -> tuple[RunProgress, tuple[ShardView, ...]]:
    """The run's progress and shards, read once for its view and its time line;
    UnknownRun when the store has no such run."""
    return progress_of(board, run_id), board.run_shards(run_id)


def run_view(
    board: DashboardQueries,
    progress: RunProgress,
    shards: Sequence[ShardView],
    *,
    cursor: str | None,
    now: float,
) -> dict[str, Any]:
    """What the page and its JSON twin show; UsageError for a bad cursor."""
    run_id = progress.run.run_id
    failures = board.run_failures(run_id, limit=FAILURES_PER_PAGE, cursor=cursor)
    slowest = board.run_slowest(run_id, limit=SLOWEST_SHOWN)
    run = progress.run
    longest = slowest.items[0].duration_s if slowest.items else 0.0
    bound = lower_bound_s(shards, longest, now)
    groups = board.run_failure_groups(run_id, limit=FAILURE_GROUPS_SHOWN)
    done = progress.tests_reported
    return {
        "run_id": run.run_id,
        "project": run.project,
        "state": run.state.value,
        "verdict": run.verdict.value if run.verdict else None,
        "message": run.message,
        "live": run.state is RunState.RUNNING,
        "poll_ms": POLL_MS,
        "generated_at": now,
        "progress": {
            "total_tests": run.total_tests,
            "tests_reported": done,
            "percent": round(100.0 * done / run.total_tests, 1) if run.total_tests else 0.0,
            "attempts": progress.attempts,
            "retries": progress.retries,
            "by_outcome": {outcome.value: count for outcome, count in progress.by_outcome},
            "eta_s": eta_s(progress),
        },
        "makespan": {
            "makespan_s": progress.makespan_s,
            "estimated_s": run.estimated_makespan_s or None,
            "lower_bound_s": bound,
            "longest_test_s": longest,
            "slots": len({s.worker for s in shards if s.worker}),
            "shards": len(shards),
        },
        "failure_groups": [
            {
                "headline": g.headline(),
                "count": g.tests,
                "signature": g.signature,
                "example": g.example_message,
                "example_node_id": g.example_node_id,
                "example_attempt_id": g.example_attempt_id,
                **group_urls(run_id, g.signature),
            }
            for g in groups
        ],
        "failures": [failure_dict(run_id, row) for row in failures.items],
        "failures_cursor": cursor,
        "failures_next_cursor": failures.next_cursor,
        "slowest": [{**asdict(item), "outcome": item.outcome.value} for item in slowest.items],
    }


def _timeline_svg(
    board: DashboardQueries, progress: RunProgress, shards: Sequence[ShardView]
) -> str:
    run_id = progress.run.run_id
    failed = board.run_failing_shards(run_id)
    retry_of: dict[int, int] = {}
    for link in board.run_retry_links(run_id):  # by shard: a retry links to its first
        retry_of.setdefault(link.retry_shard_id, link.first_shard_id)
    return timeline_svg(timeline_of(progress, shards, failed, retry_of))


def run_routes(
    store_dashboard: DashboardQueries,
    *,
    environment: Environment,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """The run page, its JSON twin, its time line and its failures a page at a time."""
    router = APIRouter(route_class=OneLineErrors)
    router.include_router(
        group_routes(store_dashboard, environment=environment, failure_dict=failure_dict)
    )

    def problem(run_id: str, error: Exception) -> tuple[int, str]:
        if isinstance(error, UnknownRun):
            return 404, f"there is no run {run_id}"
        return 400, str(error)

    def html_problem(status: int, line: str) -> HTMLResponse:
        page = environment.get_template("run.html").render(problem=line, run_id="", view=None)
        return HTMLResponse(page, status_code=status)

    def json_problem(status: int, line: str) -> JSONResponse:
        return JSONResponse({"status": "refused", "reason": line}, status_code=status)

    @router.get("/api/runs/{run_id}")
    def run_json(run_id: str, cursor: str | None = None) -> Response:
        try:
            progress, shards = run_basics(store_dashboard, run_id)
            view = run_view(store_dashboard, progress, shards, cursor=cursor, now=clock())
            return JSONResponse(view)
        except (UnknownRun, UsageError) as error:
            return json_problem(*problem(run_id, error))

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(run_id: str, cursor: str | None = None) -> HTMLResponse:
        try:
            progress, shards = run_basics(store_dashboard, run_id)
            view = run_view(store_dashboard, progress, shards, cursor=cursor, now=clock())
            svg = _timeline_svg(store_dashboard, progress, shards)
        except (UnknownRun, UsageError) as error:
            return html_problem(*problem(run_id, error))
        page = environment.get_template("run.html").render(
            problem=None, run_id=run_id, view=view, timeline=svg
        )
        return HTMLResponse(page)

    @router.get("/runs/{run_id}/timeline.svg")
    def run_timeline(run_id: str) -> Response:
        try:
            svg = _timeline_svg(store_dashboard, *run_basics(store_dashboard, run_id))
        except UnknownRun as error:
            return Response(problem(run_id, error)[1], status_code=404, media_type="text/plain")
        return Response(svg, media_type="image/svg+xml")

    @router.get("/api/runs/{run_id}/failures")
    def failures_json(run_id: str, cursor: str | None = None) -> Response:
        try:
            page = store_dashboard.run_failures(run_id, limit=FAILURES_PER_PAGE, cursor=cursor)
        except UsageError as error:
            # Without a cursor the read fails only for a run the store does not have.
            unknown = cursor is None
            return json_problem(*problem(run_id, UnknownRun(run_id) if unknown else error))
        return JSONResponse(
            {
                "failures": [failure_dict(run_id, row) for row in page.items],
                "next_cursor": page.next_cursor,
            }
        )

    @router.get("/api/runs/{run_id}/failures/{attempt_id}")
    def failure_json(
        run_id: str, attempt_id: Annotated[int, Path(ge=1, le=MAX_ATTEMPT_ID)]
    ) -> Response:
        """One failure in full: the page of one row that starts just before it."""
        after = encode_cursor([attempt_id - 1])
        page = store_dashboard.run_failures(run_id, limit=1, cursor=after)
        if not page.items or page.items[0].attempt_id != attempt_id:
            return json_problem(404, f"run {run_id} has no failure {attempt_id}")
        row = page.items[0]
        return JSONResponse({**asdict(row), "outcome": row.outcome.value})

    return router


__all__ = [
    "clipped",
    "eta_s",
    "lower_bound_s",
    "run_basics",
    "run_routes",
    "run_view",
    "timeline_of",
]
