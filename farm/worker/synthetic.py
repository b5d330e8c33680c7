"""The results the runner makes itself, for tests their test process did not report.

A test process that dies in a test (``os._exit``, a segfault, the OOM killer) leaves
that test ``crashed``; a test the runner stopped over its time limit is ``timeout``
(see :mod:`farm.worker.deadline`); tests pytest never ran (not collected on the
worker, an import error) are ``error``, with the reason. Each such result carries
what the runner knows in the test's place: the process's last output, its exit
code, and the modules that ran around the test in that process (see
:mod:`farm.core.order`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from farm.core.domain import Outcome, TestResult
from farm.core.shard_task import ShardTask
from farm.worker.deadline import Overrun, truncate

# The modules that ran before and after a test in its process.
Around = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class SyntheticResults:
    """Makes the results of one shard's tests that the runner reports in their place."""

    task: ShardTask
    worker: str
    machine: str

    def result(
        self,
        node_id: str,
        outcome: Outcome,
        text: str,
        now: float,
        output: str = "",
        duration_s: float = 0.0,
        *,
        around: Around | None = None,
    ) -> TestResult:
        """A result that ended at ``now``; ``around``: the modules before and after it."""
        before, after = around if around is not None else (None, ())
        task = self.task
        return TestResult(
            run_id=task.run_id,
            shard_id=task.shard_id,
            lease=task.lease,
            node_id=node_id,
            outcome=outcome,
            duration_s=duration_s,
            worker=self.worker,
            attempt=task.attempt,
            machine=self.machine,
            longrepr=truncate(text, task.result_limit_bytes),
            output=output,  # truncated by the caller
            started_at=now - duration_s,
            finished_at=now,
            modules_before=before,
            modules_after=after,
        )

    def timed_out(
        self, overrun: Overrun, captured: str | None, tail: str, around: Around, now: float
    ) -> TestResult:
        """The test the runner stopped: its stack, and its output up to the stop."""
        output = overrun.output_text(captured, tail, self.task.result_limit_bytes)
        node_id, ran_s, text = overrun.node_id, overrun.ran_s, overrun.longrepr()
        return self.result(node_id, Outcome.TIMEOUT, text, now, output, ran_s, around=around)

    def crashed(
        self,
        node_id: str,
        exit_code: int,
        tail: str,
        captured: str | None,
        around: Around,
        now: float,
    ) -> TestResult:
        """The test in flight when its process died with ``exit_code``."""
        output = truncate(captured or "", self.task.result_limit_bytes)
        how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        text = f"the test process {how} during this test; its last output:\n{tail}"
        return self.result(node_id, Outcome.CRASHED, text, now, output, around=around)


def not_run_text(collect_errors: Sequence[str], exit_code: int, tail: str) -> str:
    """Why a process that ended left tests without a result."""
    if collect_errors:
        return "collection failed on the worker:\n" + "\n".join(collect_errors)
    return (
        f"pytest on the worker did not run this test (exit code {exit_code}); "
        f"its last output:\n{tail}"
    )
