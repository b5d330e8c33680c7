"""``round_robin``: test *i* goes to shard *i mod workers*; estimates are ignored.

The simplest baseline there is, kept for comparison in simulations and benches: it
splits every module across every shard (paying each setup up to ``workers`` times)
and balances only by count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from farm.scheduler.estimate import Estimates
from farm.scheduler.strategies.base import in_run_order, longest_first


@dataclass(frozen=True)
class RoundRobin:
    """Deal the tests out like cards, one shard per worker."""

    name: ClassVar[str] = "round_robin"

    def shard(self, node_ids: Sequence[str], estimates: Estimates, workers: int) -> list[list[str]]:
        position = {n: i for i, n in enumerate(node_ids)}
        shards: list[list[str]] = [[] for _ in range(min(workers, len(node_ids)))]
        for i, node_id in enumerate(node_ids):
            shards[i % len(shards)].append(node_id)
        return longest_first([in_run_order(s, position) for s in shards], estimates, position)
