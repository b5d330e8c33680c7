"""The planner of a run: estimates from history, a plan per batch of tests, shard ids.

One run plans more than once: its first tests, tests a warm run's guess lacked,
the tests a resumed run still owes. The planner keeps what those plans share: the
history they estimate from, every estimate made (the report compares durations
with them), and the next free shard id, so shards planned later never reuse an id.
``farm plan`` uses the same planner without making tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import History
from farm.core.settings import Settings
from farm.core.shard_task import ShardTask
from farm.scheduler.estimate import estimate
from farm.scheduler.plan import Plan, Shard, make_plan
from farm.scheduler.simulate import list_schedule_makespan_s


@dataclass(frozen=True)
class Shards:
    """A plan, and one task per shard of it, numbered."""

    plan: Plan
    tasks: tuple[ShardTask, ...]


class Planner:
    """Plans batches of tests for ``workers`` with the named strategy."""

    def __init__(
        self,
        history: History,
        *,
        workers: int,
        strategy: str,
        shard_overhead_s: float,
        first_shard_id: int = 0,
    ) -> None:
        self.history = history
        self.workers = workers
        self.strategy = strategy
        self.shard_overhead_s = shard_overhead_s
        self._next_shard_id = first_shard_id
        self._estimates_s: dict[str, float] = {}

    @classmethod
    def for_settings(
        cls, settings: Settings, history: History, *, first_shard_id: int = 0
    ) -> Planner:
        """A planner for the workers, strategy and shard cost ``settings`` name."""
        return cls(
            history,
            workers=settings.workers,
            strategy=settings.strategy,
            shard_overhead_s=settings.shard_overhead_s,
            first_shard_id=first_shard_id,
        )

    @property
    def estimates_s(self) -> Mapping[str, float]:
        """Every test's estimate so far, in seconds (a live view)."""
        return self._estimates_s

    def plan(self, node_ids: Sequence[str]) -> Plan:
        """Estimate and shard ``node_ids`` (collection order)."""
        estimates = estimate(node_ids, self.history)
        self._estimates_s.update(estimates.test_s)
        return make_plan(
            node_ids,
            estimates,
            self.workers,
            self.strategy,
            shard_overhead_s=self.shard_overhead_s,
        )

    def plan_first(self, node_ids: Sequence[str], first: Collection[str]) -> Plan:
        """A plan of ``node_ids`` whose first shards hold the tests in ``first`` (they
        failed last time: a change still broken shows it within seconds)."""
        leading = [node_id for node_id in node_ids if node_id in first]
        if not leading or len(leading) == len(node_ids):
            return self.plan(node_ids)
        rest = [node_id for node_id in node_ids if node_id not in first]
        head, tail = self.plan(leading), self.plan(rest)
        shards = (*head.shards, *tail.shards)
        total_s = head.total_s + tail.total_s
        return dataclasses.replace(
            tail,
            shards=tuple(dataclasses.replace(s, shard_id=i) for i, s in enumerate(shards)),
            total_s=total_s,
            lower_bound_s=max(head.lower_bound_s, tail.lower_bound_s, total_s / self.workers),
            # The head shares the workers with the rest: about its share of them.
            estimated_makespan_s=tail.estimated_makespan_s + head.total_s / self.workers,
        )

    def plan_in_order(self, node_ids: Sequence[str]) -> Plan:
        """A plan of runs of consecutive tests, dispatched in collection order, as many
        and as large as the strategy's shards: a ``--sw`` run then meets its tests
        about as pytest does (with one worker, exactly), so the tests before its
        first failure have run when it stops."""
        plan = self.plan(node_ids)
        estimates = estimate(node_ids, self.history)
        shards: list[Shard] = []
        start = 0
        for shard in plan.shards:
            group = tuple(node_ids[start : start + len(shard.node_ids)])
            start += len(group)
            shards.append(Shard(len(shards), group, estimates.shard_s(group)))
        return dataclasses.replace(
            plan,
            shards=tuple(shards),
            total_s=sum(s.estimate_s for s in shards),
            estimated_makespan_s=list_schedule_makespan_s(
                (s.estimate_s for s in shards), self.workers, self.shard_overhead_s
            ),
        )

    def shard_ids(self, count: int) -> range:
        """``count`` shard ids no shard of the run had (for follow-up shards)."""
        first = self._next_shard_id
        self._next_shard_id += count
        return range(first, first + count)

    def shards(self, node_ids: Sequence[str], template: ShardTask) -> Shards:
        """Plan ``node_ids`` and make their tasks (see :meth:`tasks`)."""
        return self.tasks(self.plan(node_ids), template)

    def tasks(self, plan: Plan, template: ShardTask) -> Shards:
        """A task of each shard of ``plan``, made from ``template``, with shard ids no
        earlier shard of the run had."""
        first = self._next_shard_id
        self._next_shard_id += len(plan.shards)
        tasks = tuple(
            dataclasses.replace(template, shard_id=shard_id, node_ids=shard.node_ids)
            for shard_id, shard in enumerate(plan.shards, start=first)
        )
        return Shards(plan, tasks)
