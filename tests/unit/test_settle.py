import pytest

from farm.scheduler.settle import Settlement


def test_guess_confirmed_by_workers_settles_on_discovery_order() -> None:
    settlement = Settlement(["a.py::1", "a.py::2", "b.py::1"])
    assert settlement.discovered(["b.py", "a.py"]) == []
    assert not settlement.ready
    assert settlement.learn("a.py", ["a.py::1", "a.py::2"]) == ()
    assert settlement.waiting() == ["b.py"]
    assert settlement.learn("b.py", ["b.py::1"]) == ()
    assert settlement.ready
    assert settlement.collected() == ("b.py::1", "a.py::1", "a.py::2")


def test_new_tests_in_a_known_module_are_returned_for_dispatch() -> None:
    settlement = Settlement(["a.py::1"])
    settlement.discovered(["a.py"])
    assert settlement.learn("a.py", ["a.py::0", "a.py::1"]) == ("a.py::0",)
    assert settlement.collected() == ("a.py::0", "a.py::1")


def test_gone_tests_and_modules_are_owed_by_nobody() -> None:
    settlement = Settlement(["a.py::1", "a.py::2", "gone.py::1"])
    settlement.discovered(["a.py"])
    settlement.learn("a.py", ["a.py::2"])
    settlement.learn("gone.py", ["gone.py::1"])  # a worker ran its shard anyway
    assert settlement.collected() == ("a.py::2",)


def test_new_modules_are_named_and_empty_modules_count_as_known() -> None:
    settlement = Settlement(["a.py::1"])
    assert settlement.discovered(["a.py", "new.py", "helpers_test.py"]) == [
        "new.py",
        "helpers_test.py",
    ]
    settlement.learn("a.py", ["a.py::1"])
    assert settlement.learn("new.py", ["new.py::x"]) == ("new.py::x",)
    settlement.learn("helpers_test.py", [])
    assert settlement.collected() == ("a.py::1", "new.py::x")


def test_only_the_first_report_of_a_module_counts() -> None:
    settlement = Settlement(["r.py::t[1]"])
    settlement.discovered(["r.py"])
    assert settlement.learn("r.py", ["r.py::t[7]"]) == ("r.py::t[7]",)
    assert settlement.learn("r.py", ["r.py::t[9]"]) == ()
    assert settlement.collected() == ("r.py::t[7]",)


def test_collected_before_settling_is_refused() -> None:
    with pytest.raises(ValueError, match="not settled"):
        Settlement(["a.py::1"]).collected()
