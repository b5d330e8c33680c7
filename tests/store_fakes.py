"""What the store's contract tests share: a clock moved by hand, results and runs."""

from __future__ import annotations

from dataclasses import dataclass

from farm.core.domain import Outcome, TestResult
from farm.store import ResultStore


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
