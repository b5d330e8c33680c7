"""A pure model of the shard queue, to judge plans before anything real runs.

The *queue model*: shards are taken in dispatch order, each by whichever of the
``workers`` identical workers is free first (greedy list scheduling, as Celery
workers with prefetch 1 behave); a shard costs a fixed start-up overhead plus its
tests plus one module setup per module it touches. The *makespan* is when the last
worker finishes. The *lower bound* is what no plan can beat: the total work spread
perfectly, or the longest single test with its setup.

:func:`synthetic_suite` draws a suite by the same law as ``bench/make_suite.py``
(log-normal durations, a fixed setup per module, a history with multiplicative noise
and some tests missing), so strategies can be tuned and tested on a realistic mix.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import History
from farm.scheduler.estimate import with_modules


def list_schedule_makespan_s(
    shard_s: Iterable[float], workers: int, overhead_s: float = 0.0
) -> float:
    """Makespan of shards of ``shard_s`` seconds taken in order by the first free worker."""
    free_at_s = [0.0] * workers  # a heap: when each worker is next free
    for seconds in shard_s:
        start_s = heapq.heappop(free_at_s)
        heapq.heappush(free_at_s, start_s + overhead_s + seconds)
    return max(free_at_s)


def shard_cost_s(
    node_ids: Iterable[str], test_s: Mapping[str, float], setup_s: Mapping[str, float]
) -> float:
    """Seconds of one shard: its tests plus one setup per module it touches."""
    modules: set[str] = set()
    total_s = 0.0
    for node_id, module in with_modules(node_ids):
        total_s += test_s[node_id]
        modules.add(module)
    return total_s + sum(setup_s.get(m, 0.0) for m in modules)


def lower_bound_s(test_s: Mapping[str, float], setup_s: Mapping[str, float], workers: int) -> float:
    """max(all work with one setup per module / workers, longest test + its setup)."""
    if not test_s:
        return 0.0
    modules: set[str] = set()
    longest_s = 0.0
    for node_id, module in with_modules(test_s):
        modules.add(module)
        longest_s = max(longest_s, test_s[node_id] + setup_s.get(module, 0.0))
    work_s = math.fsum(test_s.values()) + math.fsum(setup_s.get(m, 0.0) for m in modules)
    return max(work_s / workers, longest_s)


def simulate_makespan_s(
    shards: Sequence[Sequence[str]],
    test_s: Mapping[str, float],
    setup_s: Mapping[str, float],
    workers: int,
    overhead_s: float = 0.0,
) -> float:
    """Makespan of ``shards`` (in dispatch order) when tests really take ``test_s``."""
    costs = (shard_cost_s(shard, test_s, setup_s) for shard in shards)
    return list_schedule_makespan_s(costs, workers, overhead_s)


@dataclass(frozen=True)
class SyntheticSuite:
    """A suite whose true durations are known, and the history a farm would hold of it.

    ``node_ids`` are in collection order; ``true_test_s`` and ``true_setup_s`` are
    what the tests and module setups really take; ``history`` is the truth with
    multiplicative noise, some tests missing, and (if ``setup_known``) noisy setups.
    """

    node_ids: tuple[str, ...]
    true_test_s: dict[str, float]
    true_setup_s: dict[str, float]
    history: History


def synthetic_suite(
    rng: random.Random,
    *,
    tests: int = 2000,
    modules: int = 40,
    median_s: float = 0.05,
    sigma: float = 1.6,
    max_s: float = 20.0,
    noise: float = 0.3,
    new_fraction: float = 0.1,
    setup_s: float = 0.2,
    setup_known: bool = True,
) -> SyntheticSuite:
    """Draw a suite by the law of ``bench/make_suite.py`` (same defaults)."""
    node_ids: list[str] = []
    truth: dict[str, float] = {}
    history: dict[str, float] = {}
    setups: dict[str, float] = {}
    known_setups: dict[str, float] = {}
    # Same draws in the same order as make_suite.py, so a seed gives the same suite.
    for m in range(modules):
        name = f"test_mod{m:04d}.py"
        setups[name] = setup_s
        for t in range(tests // modules + (1 if m < tests % modules else 0)):
            node_id = f"{name}::test_{t:05d}"
            seconds = min(max_s, median_s * math.exp(rng.gauss(0, sigma)))
            truth[node_id] = round(seconds, 4)
            if rng.random() >= new_fraction:
                history[node_id] = round(seconds * math.exp(rng.gauss(0, noise)), 4)
            node_ids.append(node_id)
    if setup_known:
        for name in setups:
            known_setups[name] = round(setup_s * math.exp(rng.gauss(0, noise)), 4)
    return SyntheticSuite(
        node_ids=tuple(node_ids),
        true_test_s=truth,
        true_setup_s=setups,
        history=History(test_duration_s=history, module_setup_s=known_setups),
    )
