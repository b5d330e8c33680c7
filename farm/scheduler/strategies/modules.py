"""``modules``: whole modules only, one shard per worker, balanced by LPT.

A baseline like a file-level splitter: no module is ever split (each setup is paid
exactly once), but a single heavy module bounds the makespan, and with exactly one
shard per worker the queue has nothing left to absorb estimation error.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from farm.scheduler.estimate import Estimates
from farm.scheduler.strategies.base import group_by_module, in_run_order, longest_first


@dataclass(frozen=True)
class WholeModules:
    """Longest-processing-time-first over module totals (tests + one setup)."""

    name: ClassVar[str] = "modules"

    def shard(self, node_ids: Sequence[str], estimates: Estimates, workers: int) -> list[list[str]]:
        position = {n: i for i, n in enumerate(node_ids)}
        modules = group_by_module(node_ids)
        totals = [
            (estimates.setup_s[m] + sum(estimates.test_s[n] for n in ids), i)
            for i, (m, ids) in enumerate(modules)
        ]
        totals.sort(key=lambda t: (-t[0], t[1]))
        bins: list[list[str]] = [[] for _ in range(min(workers, len(modules)))]
        load_s = [(0.0, b) for b in range(len(bins))]  # heap of (load, bin index)
        for total_s, i in totals:
            load, b = heapq.heappop(load_s)
            bins[b].extend(modules[i][1])
            heapq.heappush(load_s, (load + total_s, b))
        shards = [in_run_order(b, position) for b in bins]
        return longest_first(shards, estimates, position)
