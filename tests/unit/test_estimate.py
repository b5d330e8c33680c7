"""Estimates: every test and module gets a positive, explained expected duration."""

from __future__ import annotations

import math
import random

import pytest

from farm.core.domain import History
from farm.scheduler.estimate import MIN_TEST_S, estimate


def history(tests: dict[str, float], setups: dict[str, float] | None = None) -> History:
    return History(test_duration_s=tests, module_setup_s=setups or {})


def test_known_tests_keep_their_history() -> None:
    est = estimate(["a.py::t1", "a.py::t2"], history({"a.py::t1": 1.5, "a.py::t2": 0.25}))
    assert est.test_s == {"a.py::t1": 1.5, "a.py::t2": 0.25}
    assert (est.from_history, est.from_module, est.from_suite, est.from_default) == (2, 0, 0, 0)
    assert est.guessed == frozenset()


def test_new_test_takes_the_mean_of_its_module() -> None:
    hist = history({"a.py::t1": 1.0, "a.py::t2": 3.0, "b.py::t1": 100.0})
    est = estimate(["a.py::t1", "a.py::new"], hist)
    assert est.test_s["a.py::new"] == pytest.approx(2.0)
    assert est.from_module == 1
    assert est.guessed == frozenset({"a.py::new"})


def test_module_statistics_use_history_beyond_the_selection() -> None:
    # a.py::t2 is not selected this run, but it still says how long a.py's tests take.
    est = estimate(["a.py::new"], history({"a.py::t2": 4.0}))
    assert est.test_s["a.py::new"] == pytest.approx(4.0)


def test_new_module_takes_the_suite_mean() -> None:
    est = estimate(["c.py::t1"], history({"a.py::t1": 1.0, "b.py::t1": 2.0}))
    assert est.test_s["c.py::t1"] == pytest.approx(1.5)
    assert est.from_suite == 1


def test_no_history_uses_the_default() -> None:
    est = estimate(["a.py::t1", "b.py::t1"], history({}), default_test_s=0.7)
    assert est.test_s == {"a.py::t1": 0.7, "b.py::t1": 0.7}
    assert est.from_default == 2
    assert est.setup_s == {"a.py": 0.0, "b.py": 0.0}


@pytest.mark.parametrize("recorded_s", [0.0, -1.0, math.nan, math.inf])
def test_estimates_are_never_zero_or_invalid(recorded_s: float) -> None:
    hist = history({"a.py::t1": recorded_s, "a.py::t2": 0.0})
    est = estimate(["a.py::t1", "a.py::t2", "b.py::t1"], hist, default_test_s=0.0)
    assert all(math.isfinite(s) and s >= MIN_TEST_S for s in est.test_s.values())


def test_zero_default_is_floored() -> None:
    est = estimate(["a.py::t1"], history({}), default_test_s=0.0)
    assert est.test_s["a.py::t1"] == MIN_TEST_S


def test_fallbacks_never_zero_on_random_histories() -> None:
    rng = random.Random(7)
    for _ in range(50):
        ids = [f"m{rng.randrange(5)}.py::t{i}" for i in range(rng.randrange(1, 40))]
        known = {n: rng.choice([0.0, rng.random() * 3]) for n in ids if rng.random() < 0.5}
        est = estimate(ids, history(known), default_test_s=rng.choice([0.0, 0.1]))
        assert set(est.test_s) == set(ids)
        assert all(s >= MIN_TEST_S for s in est.test_s.values())
        counts = est.from_history + est.from_module + est.from_suite + est.from_default
        assert counts == len(set(ids))


def test_setup_from_history_else_median_of_known_setups() -> None:
    hist = history({}, {"a.py": 0.5, "x.py": 0.1, "y.py": 0.2, "z.py": 9.0})
    est = estimate(["a.py::t", "b.py::t"], hist, default_setup_s=3.0)
    assert est.setup_s["a.py"] == 0.5
    assert est.setup_s["b.py"] == pytest.approx(0.35)  # median of 0.1, 0.2, 0.5, 9.0


def test_setup_default_when_no_setup_is_known() -> None:
    est = estimate(["a.py::t"], history({}), default_setup_s=0.2)
    assert est.setup_s == {"a.py": 0.2}


def test_shard_cost_counts_one_setup_per_module() -> None:
    hist = history({"a.py::1": 1.0, "a.py::2": 2.0, "b.py::1": 4.0}, {"a.py": 0.5, "b.py": 0.25})
    est = estimate(["a.py::1", "a.py::2", "b.py::1"], hist)
    assert est.shard_s(["a.py::1", "a.py::2", "b.py::1"]) == pytest.approx(7.75)
    assert est.shard_s(["a.py::2"]) == pytest.approx(2.5)
