"""What the store's contract tests share: a clock moved by hand, results and runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.store import ResultStore, ShardRecord


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def result(
    run_id: str,
    node_id: str,
    outcome: Outcome = Outcome.PASSED,
    duration_s: float = 1.0,
    *,
    attempt: int = 1,
    shard_id: int = 0,
    module_setup_s: float = 0.0,
    longrepr: str = "",
    output: str = "",
) -> TestResult:
    return TestResult(
        run_id=run_id,
        shard_id=shard_id,
        lease=1,
        node_id=node_id,
        outcome=outcome,
        duration_s=duration_s,
        module_setup_s=module_setup_s,
        worker="w1",
        attempt=attempt,
        longrepr=longrepr,
        output=output,
        started_at=10.0,
        finished_at=10.0 + duration_s,
    )


def new_run(store: ResultStore, project: str = "proj") -> str:
    return store.create_run(project=project, trigger="cli", settings={"workers": 2})


def finished_run(
    store: ResultStore,
    clock: FakeClock,
    results: Callable[[str], list[TestResult]],
    *,
    change: ChangeRef | None = None,
    verdict: Verdict = Verdict.PASSED,
    findings: RunFindings | None = None,
    message: str = "",
    project: str = "proj",
) -> str:
    """A finished run made now, of ``results`` in one shard (none: no shard); the
    clock then moves on an hour."""
    run_id = store.create_run(project=project, trigger="ci", settings={}, change=change)
    made = results(run_id)
    if made:
        store.start_run(
            run_id,
            total_tests=len({r.node_id for r in made}),
            estimated_makespan_s=5.0,
            shards=[ShardRecord(0, len(made), 5.0)],
        )
        store.shard_started(run_id, 0, worker="w1", started_at=clock.now, machine="m1")
        store.record_results(made)
        store.shard_finished(run_id, 0, finished_at=clock.now + 4)
    clock.now += 10
    store.finish_run(run_id, verdict=verdict, findings=findings, message=message)
    clock.now += 3600
    return run_id
