"""make_plan: validation, the queue simulation, the lower bound and the JSON shape."""

from __future__ import annotations

import json

import pytest

from farm.core.defaults import SHARD_OVERHEAD_S
from farm.core.errors import PlanError
from farm.scheduler.estimate import Estimates
from farm.scheduler.plan import Plan, make_plan
from farm.scheduler.simulate import list_schedule_makespan_s


def estimates(test_s: dict[str, float], setup_s: dict[str, float] | None = None) -> Estimates:
    modules = {n.split("::")[0] for n in test_s}
    setups = {m: (setup_s or {}).get(m, 0.0) for m in modules}
    return Estimates(test_s=test_s, setup_s=setups, from_history=len(test_s))


def test_list_scheduling_on_known_inputs() -> None:
    # Two workers: 5 -> w0, 4 -> w1, 3 -> w1 (free at 4), 2 -> w0 (free at 5): 7 and 7.
    assert list_schedule_makespan_s([5, 4, 3, 2], workers=2) == 7
    # With 1 s start-up per shard: w0 6, w1 5 -> 3 goes to w1 (9), 2 to w0 (9).
    assert list_schedule_makespan_s([5, 4, 3, 2], workers=2, overhead_s=1) == 9
    # Order matters: shortest first leaves the longest shard for the end.
    assert list_schedule_makespan_s([2, 3, 4, 5], workers=2) == 8
    assert list_schedule_makespan_s([], workers=3) == 0


def test_plan_simulates_its_own_shards() -> None:
    est = estimates({f"m{i}.py::t": float(s) for i, s in enumerate([5, 4, 3, 2])})
    plan = make_plan(list(est.test_s), est, workers=2, strategy_name="modules")
    # modules: LPT over module totals into 2 shards: {5, 2} and {4, 3}.
    assert sorted(s.estimate_s for s in plan.shards) == [7.0, 7.0]
    assert plan.estimated_makespan_s == pytest.approx(7.0 + SHARD_OVERHEAD_S)
    assert plan.total_s == pytest.approx(14.0)
    assert plan.lower_bound_s == pytest.approx(7.0)


def test_overhead_is_a_parameter() -> None:
    est = estimates({"a.py::t": 1.0})
    plan = make_plan(["a.py::t"], est, workers=4, shard_overhead_s=0.0)
    assert plan.estimated_makespan_s == pytest.approx(1.0)
    assert plan.shard_overhead_s == 0.0


def test_lower_bound_counts_one_setup_per_module_and_the_longest_test() -> None:
    est = estimates({"a.py::1": 1.0, "a.py::2": 1.0, "b.py::1": 6.0}, {"a.py": 1.0, "b.py": 0.5})
    # work = 8 + 1.5 = 9.5 -> 4.75 per worker on 2; longest = 6 + 0.5.
    assert make_plan(list(est.test_s), est, workers=2).lower_bound_s == pytest.approx(6.5)
    assert make_plan(list(est.test_s), est, workers=1).lower_bound_s == pytest.approx(9.5)


def test_shard_estimate_includes_each_module_setup_once() -> None:
    est = estimates({"a.py::1": 1.0, "a.py::2": 2.0}, {"a.py": 0.5})
    plan = make_plan(["a.py::1", "a.py::2"], est, workers=1, strategy_name="modules")
    assert [s.estimate_s for s in plan.shards] == [3.5]


def test_shards_are_numbered_in_dispatch_order() -> None:
    est = estimates({f"m{i}.py::t": float(i + 1) for i in range(10)})
    plan = make_plan(list(est.test_s), est, workers=3)
    assert [s.shard_id for s in plan.shards] == list(range(len(plan.shards)))


def test_empty_run_gives_an_empty_plan() -> None:
    plan = make_plan([], estimates({}), workers=4)
    assert plan.shards == ()
    assert plan.estimated_makespan_s == 0.0
    assert plan.lower_bound_s == 0.0
    assert plan.to_json()["shards"] == []


@pytest.mark.parametrize("workers", [0, -1, True, 2.5])
def test_bad_worker_counts_are_refused(workers: object) -> None:
    with pytest.raises(PlanError, match="workers"):
        make_plan(["a.py::t"], estimates({"a.py::t": 1.0}), workers=workers)  # type: ignore[arg-type]


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(PlanError, match=r"'nope'.*known: lpt, modules, round_robin"):
        make_plan(["a.py::t"], estimates({"a.py::t": 1.0}), workers=1, strategy_name="nope")


def test_duplicate_and_unestimated_node_ids_are_refused() -> None:
    est = estimates({"a.py::t": 1.0})
    with pytest.raises(PlanError, match="more than once"):
        make_plan(["a.py::t", "a.py::t"], est, workers=1)
    with pytest.raises(PlanError, match="no estimate"):
        make_plan(["a.py::t", "b.py::u"], est, workers=1)


def test_to_json_round_trips_through_json() -> None:
    est = estimates({"a.py::1": 1.23456, "b.py::1": 2.0})
    plan = make_plan(["a.py::1", "b.py::1"], est, workers=2)
    data = json.loads(json.dumps(plan.to_json()))
    assert data["strategy"] == "lpt"
    assert data["workers"] == 2
    assert data["tests"] == 2
    assert sorted(n for s in data["shards"] for n in s["node_ids"]) == ["a.py::1", "b.py::1"]
    assert {s["estimate_s"] for s in data["shards"]} == {1.235, 2.0}
    assert isinstance(plan, Plan)
