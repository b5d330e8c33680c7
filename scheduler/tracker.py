"""What a run still owes: pure bookkeeping of shards and results, no I/O.

The tracker is told every event read from the run's stream and answers which
results to store and whether the run is complete. A shard that ends with tests
still lacking a result gets an ``error`` result for each of them, carrying the
worker's reason, so a lost test is never taken for a pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from farm.domain import Outcome, TestResult
from farm.messages import Event, ShardEnd, ShardStart


@dataclass
class _ShardState:
    node_ids: tuple[str, ...]
    worker: str = ""
    started_at: float | None = None
    ended: bool = False


@dataclass
class Accepted:
    """The outcome of feeding events: what to store and what happened to shards."""

    results: list[TestResult] = field(default_factory=list)
    started: list[ShardStart] = field(default_factory=list)
    ended: list[ShardEnd] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why each ignored event was dropped


class RunTracker:
    """Shards of one run and the final result of each of its tests."""

    def __init__(self, run_id: str, shards: Iterable[tuple[int, tuple[str, ...]]]) -> None:
        self.run_id = run_id
        self.shards = {shard_id: _ShardState(node_ids) for shard_id, node_ids in shards}
        self.shard_of = {n: s for s, state in self.shards.items() for n in state.node_ids}
        self.final: dict[str, TestResult] = {}

    @property
    def complete(self) -> bool:
        return len(self.final) == len(self.shard_of)

    @property
    def shards_left(self) -> int:
        return sum(1 for state in self.shards.values() if not state.ended)

    def feed(self, events: Iterable[Event]) -> Accepted:
        accepted = Accepted()
        for event in events:
            if event.run_id != self.run_id:
                accepted.ignored.append(f"event for another run {event.run_id!r}")
                continue
            state = self.shards.get(event.shard_id)
            if state is None:
                accepted.ignored.append(f"event for unknown shard {event.shard_id}")
                continue
            if isinstance(event, ShardStart):
                state.worker, state.started_at = event.worker, event.at
                accepted.started.append(event)
            elif isinstance(event, ShardEnd):
                accepted.results.extend(self._close(event, state))
                accepted.ended.append(event)
            elif self.shard_of.get(event.node_id) != event.shard_id:
                accepted.ignored.append(f"result for {event.node_id!r} not in shard")
            else:
                self.final[event.node_id] = event
                accepted.results.append(event)
        return accepted

    def _close(self, end: ShardEnd, state: _ShardState) -> list[TestResult]:
        state.ended = True
        reason = end.message or f"shard ended (pytest exit code {end.exit_code})"
        synthetic = []
        for node_id in state.node_ids:
            if node_id not in self.final:
                result = TestResult(
                    run_id=self.run_id,
                    shard_id=end.shard_id,
                    lease=end.lease,
                    node_id=node_id,
                    outcome=Outcome.ERROR,
                    duration_s=0.0,
                    worker=end.worker,
                    longrepr=f"no result from the worker: {reason}",
                    started_at=end.at,
                    finished_at=end.at,
                )
                self.final[node_id] = result
                synthetic.append(result)
        return synthetic
