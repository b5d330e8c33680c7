"""A plan: the shards of a run in dispatch order, with what they are expected to cost.

Terms: a shard's *estimate* is its tests plus one module setup per module it
touches; the *total* is the sum of shard estimates (so it counts every setup a
split repeats); the *lower bound* is what no plan can beat,
``max((tests + one setup per module) / workers, longest test + its setup)``; the
*estimated makespan* is when the last worker would finish if the estimates were
exact and every shard also paid ``shard_overhead_s`` of pytest start-up, with shards
taken in dispatch order by whichever worker is free first (the queue model of
:mod:`farm.scheduler.simulate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from farm.core import defaults
from farm.core.errors import PlanError
from farm.scheduler.estimate import Estimates
from farm.scheduler.simulate import list_schedule_makespan_s, lower_bound_s
from farm.scheduler.strategies import get_strategy


@dataclass(frozen=True)
class Shard:
    """One unit of dispatch: ``node_ids`` in the order the pytest process runs them."""

    shard_id: int
    node_ids: tuple[str, ...]
    estimate_s: float


@dataclass(frozen=True)
class Plan:
    """The shards of a run, ``shards[0]`` dispatched first; ``shard_id`` is the index."""

    shards: tuple[Shard, ...]
    workers: int
    strategy: str
    total_s: float
    lower_bound_s: float
    estimated_makespan_s: float
    shard_overhead_s: float = defaults.SHARD_OVERHEAD_S

    @property
    def tests(self) -> int:
        """How many tests the plan runs."""
        return sum(len(s.node_ids) for s in self.shards)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data, seconds rounded to the millisecond."""
        return {
            "strategy": self.strategy,
            "workers": self.workers,
            "tests": self.tests,
            "total_s": round(self.total_s, 3),
            "lower_bound_s": round(self.lower_bound_s, 3),
            "estimated_makespan_s": round(self.estimated_makespan_s, 3),
            "shard_overhead_s": self.shard_overhead_s,
            "shards": [
                {
                    "shard_id": s.shard_id,
                    "estimate_s": round(s.estimate_s, 3),
                    "node_ids": list(s.node_ids),
                }
                for s in self.shards
            ],
        }


def make_plan(
    node_ids: Sequence[str],
    estimates: Estimates,
    workers: int,
    strategy_name: str = defaults.STRATEGY,
    *,
    shard_overhead_s: float = defaults.SHARD_OVERHEAD_S,
) -> Plan:
    """Shard ``node_ids`` (collection order) for ``workers`` with the named strategy.

    ``shard_overhead_s`` is charged per shard in the estimated makespan, and
    strategies that size shards (``lpt``) weigh it against balance. Raises PlanError
    for fewer than one worker, an unknown strategy, a node id given twice or without
    an estimate, or a strategy that loses or repeats a test.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PlanError(f"workers must be a whole number >= 1, got {workers!r}")
    if shard_overhead_s < 0:
        raise PlanError(f"shard overhead must be >= 0 seconds, got {shard_overhead_s!r}")
    strategy = get_strategy(strategy_name, shard_overhead_s=shard_overhead_s)
    given = _check_inputs(node_ids, estimates)

    groups = strategy.shard(node_ids, estimates, workers) if node_ids else []
    shards = tuple(
        Shard(shard_id=i, node_ids=tuple(g), estimate_s=estimates.shard_s(g))
        for i, g in enumerate(groups)
    )
    placed = {n for s in shards for n in s.node_ids}
    if sum(len(s.node_ids) for s in shards) != len(given) or placed != given:
        raise PlanError(f"strategy {strategy_name!r} did not place every test exactly once")

    test_s = estimates.test_s
    if len(test_s) != len(given):  # estimates for more tests than this run holds
        test_s = {n: test_s[n] for n in node_ids}
    return Plan(
        shards=shards,
        workers=workers,
        strategy=strategy.name,
        total_s=sum(s.estimate_s for s in shards),
        lower_bound_s=lower_bound_s(test_s, estimates.setup_s, workers),
        estimated_makespan_s=list_schedule_makespan_s(
            (s.estimate_s for s in shards), workers, shard_overhead_s
        ),
        shard_overhead_s=shard_overhead_s,
    )


def _check_inputs(node_ids: Sequence[str], estimates: Estimates) -> set[str]:
    """The node ids as a set, once they are known unique and all estimated."""
    seen: set[str] = set()
    for node_id in node_ids:
        if node_id in seen:
            raise PlanError(f"node id {node_id!r} is given more than once")
        seen.add(node_id)
        if node_id not in estimates.test_s:
            raise PlanError(f"node id {node_id!r} has no estimate")
    return seen
