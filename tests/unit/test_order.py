"""Order dependence, the pure parts: the modules around a test in its process, which
results carry them, how they travel, and which tests of a run are suspects."""

from __future__ import annotations

import dataclasses
import json

import pytest

from farm.core.domain import AttemptOrder, OrderSign, Outcome, TestResult
from farm.core.messages import decode_event, encode_event
from farm.core.order import ModuleOrder, order_suspects, planned_order, wants_order
from farm.core.wire_fields import MessageError

ORDER = [
    "a.py::t1",
    "a.py::t2",
    "b.py::t",
    "c.py::t1",
    "a.py::t3",  # a module may come back in an order: it is where its first test was
    "d.py::t",
    "c.py::t2",
]


def result(node_id: str, outcome: Outcome = Outcome.PASSED, **fields: object) -> TestResult:
    made = TestResult(run_id="r2", shard_id=1, lease=1, node_id=node_id, outcome=outcome,
                      duration_s=0.1, worker="w:1", machine="m1")  # fmt: skip
    return dataclasses.replace(made, **fields)  # type: ignore[arg-type]


class TestModuleOrder:
    def test_modules_before_and_after_each_test(self) -> None:
        order = ModuleOrder(ORDER)
        assert order.around(0) == ((), ("b.py", "c.py", "d.py"))
        assert order.around(1) == ((), ("b.py", "c.py", "d.py"))
        assert order.around(2) == (("a.py",), ("c.py", "d.py"))
        assert order.around(3) == (("a.py", "b.py"), ("d.py",))
        assert order.around(4) == (("b.py", "c.py"), ("d.py",))
        assert order.around(6) == (("a.py", "b.py", "d.py"), ())

    def test_outside_the_order_there_are_none(self) -> None:
        order = ModuleOrder(ORDER)
        assert order.around(-1) == order.around(7) == ((), ())
        assert ModuleOrder([]).around(0) == ((), ())

    def test_capped_to_the_nearest(self) -> None:
        order = ModuleOrder([f"m{i}.py::t" for i in range(10)])
        assert order.before(9, limit=3) == ("m6.py", "m7.py", "m8.py")
        assert order.after(0, limit=2) == ("m1.py", "m2.py")
        assert order.before(9, limit=0) == ()

    def test_planned_order_of_a_shard(self) -> None:
        assert planned_order(ORDER, "b.py::t") == (("a.py",), ("c.py", "d.py"))
        assert planned_order(ORDER, "e.py::t") is None


def test_only_failures_and_later_attempts_carry_the_order() -> None:
    failing = [Outcome.FAILED, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CRASHED]
    assert all(wants_order(outcome, 1) for outcome in failing)
    passing = [Outcome.PASSED, Outcome.SKIPPED, Outcome.XFAILED, Outcome.XPASSED]
    assert not any(wants_order(outcome, 1) for outcome in passing)
    assert all(wants_order(outcome, 2) for outcome in passing)


class TestWire:
    def test_the_order_round_trips(self) -> None:
        sent = result("a.py::t", Outcome.FAILED, modules_before=("x.py", "é.py"),
                      modules_after=("z.py",))  # fmt: skip
        assert decode_event(encode_event(sent)) == sent

    def test_a_result_without_it_sends_nothing_more(self) -> None:
        plain = result("a.py::t")
        data = json.loads(encode_event(plain))
        assert "modules_before" not in data and "modules_after" not in data
        assert decode_event(encode_event(plain)) == plain
        first = result("a.py::t", Outcome.FAILED, modules_before=())
        assert json.loads(encode_event(first))["modules_before"] == []
        assert "modules_after" not in json.loads(encode_event(first))

    @pytest.mark.parametrize("value", ['"a.py"', "[1]", "{}"])
    def test_a_malformed_order_is_refused(self, value: str) -> None:
        data = json.loads(encode_event(result("a.py::t")))
        raw = json.dumps(data)[:-1] + f', "modules_before": {value}}}'
        with pytest.raises(MessageError, match="modules_before"):
            decode_event(raw)


def attempt_order(
    outcome: Outcome, before: tuple[str, ...] | None, after: tuple[str, ...] = (), **kw: object
) -> AttemptOrder:
    values: dict[str, object] = {"run_id": "r1", "attempt": 1, "outcome": outcome,
                                 "worker": "w:9", "machine": "m9",
                                 "modules_before": before, "modules_after": after}  # fmt: skip
    values.update(kw)
    return AttemptOrder(**values)  # type: ignore[arg-type]


class TestSuspects:
    def test_a_retry_that_passed_after_other_modules_is_a_flaky_suspect(self) -> None:
        first = result("c.py::t", Outcome.FAILED, modules_before=("d.py",))
        retry = result("c.py::t", attempt=2, modules_before=())
        (suspect,) = order_suspects([retry], [first], {})
        assert (suspect.node_id, suspect.sign) == ("c.py::t", OrderSign.FLAKY)
        assert [(a.attempt, a.modules_before) for a in suspect.attempts] == [
            (1, ("d.py",)),
            (2, ()),
        ]

    def test_a_retry_that_passed_after_the_same_modules_is_only_flaky(self) -> None:
        first = result("c.py::t", Outcome.FAILED, modules_before=("d.py",))
        retry = result("c.py::t", attempt=2, modules_before=("d.py",))
        assert order_suspects([retry], [first], {}) == ()

    def test_modules_imported_after_it_count_too(self) -> None:
        first = result("c.py::t", Outcome.FAILED, modules_before=(), modules_after=("a.py",))
        retry = result("c.py::t", attempt=2, modules_before=())
        assert order_suspects([retry], [first], {})[0].sign is OrderSign.FLAKY

    def test_a_failure_after_a_pass_in_the_change_s_previous_run(self) -> None:
        previous = attempt_order(Outcome.PASSED, ("a.py",), planned=True)
        failed = result("b.py::t", Outcome.FAILED, modules_before=())
        retry = result("b.py::t", Outcome.FAILED, attempt=2, modules_before=())
        (suspect,) = order_suspects([retry], [failed], {"b.py::t": previous})
        assert suspect.sign is OrderSign.REGRESSED
        assert suspect.attempts[0] == previous
        assert [a.attempt for a in suspect.attempts[1:]] == [1, 2]

    @pytest.mark.parametrize(
        ("previous", "why"),
        [
            (attempt_order(Outcome.FAILED, ("a.py",)), "it failed before too"),
            (attempt_order(Outcome.PASSED, ()), "it ran after the same modules"),
        ],
    )
    def test_not_a_suspect(self, previous: AttemptOrder, why: str) -> None:
        failed = result("b.py::t", Outcome.FAILED, modules_before=())
        assert order_suspects([failed], [], {"b.py::t": previous}) == (), why

    def test_a_pass_now_or_nothing_known_before_is_no_suspect(self) -> None:
        passed = result("b.py::t")
        known = {"b.py::t": attempt_order(Outcome.PASSED, ("a.py",))}
        assert order_suspects([passed], [], known) == ()
        failed = result("b.py::t", Outcome.FAILED, modules_before=())
        assert order_suspects([failed], [], {}) == ()

    def test_a_previous_pass_with_its_order_unknown_is_a_suspect(self) -> None:
        failed = result("b.py::t", Outcome.FAILED, modules_before=())
        unknown = {"b.py::t": attempt_order(Outcome.PASSED, None)}
        assert order_suspects([failed], [], unknown)[0].sign is OrderSign.REGRESSED

    def test_suspects_keep_the_order_of_the_results(self) -> None:
        failed = [result(n, Outcome.FAILED, modules_before=()) for n in ("z.py::t", "a.py::t")]
        previous = {r.node_id: attempt_order(Outcome.PASSED, ("m.py",)) for r in failed}
        assert [s.node_id for s in order_suspects(failed, [], previous)] == ["z.py::t", "a.py::t"]
