"""Sharding strategies: partition invariants, lpt's design points, the noisy queue."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from farm.core.domain import History, module_of
from farm.core.errors import PlanError
from farm.scheduler.estimate import Estimates, estimate
from farm.scheduler.plan import make_plan
from farm.scheduler.simulate import (
    lower_bound_s,
    shard_cost_s,
    simulate_makespan_s,
    synthetic_suite,
)
from farm.scheduler.strategies import get_strategy, strategy_names
from farm.scheduler.strategies.lpt import LongestFirst

OVERHEAD_S = 0.3


def random_run(rng: random.Random) -> tuple[list[str], Estimates]:
    """A random suite: 0-300 tests over 1-12 modules, some with no history."""
    modules = rng.randint(1, 12)
    ids = [f"tests/m{rng.randrange(modules)}.py::t{i}" for i in range(rng.randint(0, 300))]
    known = {n: rng.lognormvariate(-3, 1.6) for n in ids if rng.random() < 0.9}
    setups = {f"tests/m{m}.py": rng.choice([0.0, 0.2, 1.0]) for m in range(modules)}
    return ids, estimate(ids, History(known, setups))


@pytest.mark.parametrize("name", strategy_names())
def test_every_test_lands_in_exactly_one_shard_once(name: str) -> None:
    rng = random.Random(2024)
    for _ in range(60):
        ids, est = random_run(rng)
        workers = rng.choice([1, 2, 3, 7, 16, 64])
        shards = get_strategy(name).shard(ids, est, workers)
        placed = [n for shard in shards for n in shard]
        assert sorted(placed) == sorted(ids)
        assert all(shards), "no empty shard"


@pytest.mark.parametrize("name", strategy_names())
def test_shards_run_in_collection_order_grouped_by_module(name: str) -> None:
    rng = random.Random(5)
    for _ in range(30):
        ids, est = random_run(rng)
        position = {n: i for i, n in enumerate(ids)}
        for shard in get_strategy(name).shard(ids, est, rng.choice([2, 5, 16])):
            modules = [module_of(n) for n in shard]
            blocks = [m for i, m in enumerate(modules) if i == 0 or m != modules[i - 1]]
            assert len(blocks) == len(set(blocks)), "each module once, contiguous"
            for a, b in itertools.pairwise(shard):
                if module_of(a) == module_of(b):
                    assert position[a] < position[b]


@pytest.mark.parametrize("name", strategy_names())
def test_same_input_same_plan(name: str) -> None:
    ids, est = random_run(random.Random(11))
    assert get_strategy(name).shard(ids, est, 8) == get_strategy(name).shard(ids, est, 8)


def test_unknown_strategy_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="known: lpt, modules, round_robin"):
        get_strategy("fastest")


def test_lpt_head_is_longest_first_and_long_tests_are_alone() -> None:
    suite = synthetic_suite(random.Random(3))
    est = estimate(suite.node_ids, suite.history)
    plan = make_plan(suite.node_ids, est, workers=16)
    solos = [s for s in plan.shards if len(s.node_ids) == 1 and s.estimate_s >= 3.0]
    assert solos, "the standard suite has tests long enough to be alone"
    head = plan.shards[: len(solos)]
    assert head == tuple(solos)
    assert all(a.estimate_s >= b.estimate_s for a, b in itertools.pairwise(head))
    # After the long tests and the probes, the rest is longest first too.
    rest = [s for s in plan.shards[len(solos) :] if not est.guessed & set(s.node_ids)]
    assert all(a.estimate_s >= b.estimate_s for a, b in itertools.pairwise(rest))


def test_lpt_makes_more_shards_than_workers_and_shrinks_them_toward_the_end() -> None:
    suite = synthetic_suite(random.Random(4))
    plan = make_plan(suite.node_ids, estimate(suite.node_ids, suite.history), workers=16)
    assert len(plan.shards) > 2 * 16
    tail = [s.estimate_s for s in plan.shards[-16:]]
    assert max(tail) < plan.lower_bound_s / 5


def test_lpt_keeps_small_modules_whole() -> None:
    # 30 small modules of 10 tests each: far below a shard's size, so never split.
    ids = [f"m{m:02d}.py::t{t}" for m in range(30) for t in range(10)]
    est = estimate(ids, History({n: 0.1 for n in ids}, {}))
    for shard in LongestFirst().shard(ids, est, workers=4):
        for module in {module_of(n) for n in shard}:
            assert sum(module_of(n) == module for n in shard) == 10


def test_lpt_starts_guessed_tests_early() -> None:
    suite = synthetic_suite(random.Random(6))
    est = estimate(suite.node_ids, suite.history)
    shards = LongestFirst().shard(suite.node_ids, est, workers=16)
    first_probe = next(i for i, s in enumerate(shards) if est.guessed & set(s))
    assert all(len(s) == 1 for s in shards[:first_probe]), "only long tests go before"
    first_rest = next(
        i for i, s in enumerate(shards) if i > first_probe and not est.guessed & set(s)
    )
    later = [s for s in shards[first_rest:] if est.guessed & set(s)]
    assert not later, "every guessed test is in a probe, ahead of the rest"


def test_lpt_with_one_worker_or_one_test() -> None:
    est = estimate(["a.py::t"], History({"a.py::t": 2.0}, {}))
    assert LongestFirst().shard(["a.py::t"], est, workers=16) == [["a.py::t"]]
    ids = [f"a.py::t{i}" for i in range(50)]
    est = estimate(ids, History({n: 1.0 for n in ids}, {}))
    shards = LongestFirst().shard(ids, est, workers=1)
    assert [n for s in shards for n in s] == ids


def simulated_ratio(name: str, seed: int, workers: int = 16) -> float:
    """True makespan / true lower bound of ``name`` on a make_suite-like suite.

    The suite follows make_suite.py's law (median 0.05 s, sigma 1.6, cap 20 s, 40
    modules, 0.2 s setup, history noise 0.3, 10% of tests new); the plan sees only
    the history, the simulation runs the truth.
    """
    suite = synthetic_suite(random.Random(seed))
    est = estimate(suite.node_ids, suite.history)
    shards = get_strategy(name).shard(suite.node_ids, est, workers)
    makespan_s = simulate_makespan_s(
        shards, suite.true_test_s, suite.true_setup_s, workers, OVERHEAD_S
    )
    return makespan_s / lower_bound_s(suite.true_test_s, suite.true_setup_s, workers)


@pytest.mark.parametrize("seed", range(1, 9))
def test_lpt_noisy_queue_stays_within_125_percent_of_the_lower_bound(seed: int) -> None:
    assert simulated_ratio("lpt", seed) < 1.25


def test_lpt_beats_the_baselines_in_the_noisy_queue() -> None:
    seeds = range(1, 9)
    mean = {n: sum(simulated_ratio(n, s) for s in seeds) / len(seeds) for n in strategy_names()}
    assert mean["lpt"] < mean["modules"] < mean["round_robin"]


@pytest.mark.parametrize("seed", range(1, 6))
def test_lpt_when_truth_is_the_estimate_times_lognormal_noise(seed: int) -> None:
    # Every test has an estimate here; the truth strays from it by log-normal noise.
    rng = random.Random(seed)
    suite = synthetic_suite(rng, new_fraction=0.0)
    est = estimate(suite.node_ids, suite.history)
    true_s = {n: s * math.exp(rng.gauss(0, 0.3)) for n, s in est.test_s.items()}
    shards = get_strategy("lpt").shard(suite.node_ids, est, 16)
    makespan_s = simulate_makespan_s(shards, true_s, suite.true_setup_s, 16, OVERHEAD_S)
    assert makespan_s / lower_bound_s(true_s, suite.true_setup_s, 16) < 1.25


def test_shard_cost_counts_setup_once_per_module() -> None:
    cost = shard_cost_s(
        ["a.py::1", "a.py::2", "b.py::1"],
        {"a.py::1": 1, "a.py::2": 2, "b.py::1": 3},
        {"a.py": 0.5, "b.py": 1},
    )
    assert cost == pytest.approx(7.5)
