"""--lf, --ff, --nf and --lfnf over farm's store: which tests a run owes, as pytest says.

The expected lines and counts are pytest 9's own on the same suites (its
``run-last-failure`` line, its ``collected N items / M deselected`` and summary).
"""

from __future__ import annotations

import pytest

from farm.core.domain import Collection
from farm.core.pytest_options import PytestOptions
from farm.scheduler.last_failed import SOURCE, PastRuns, choose, failed_paths_first

A = "tests/test_a.py"
SUITE = (
    f"{A}::test_a1",
    f"{A}::test_a2",
    f"{A}::TestA::test_m1",
    f"{A}::TestA::test_m2",
    "tests/test_b.py::test_b1",
    "tests/test_b.py::test_b2",
    "tests/test_c.py::test_c[1]",
    "tests/test_c.py::test_c[2]",
    "tests/test_c.py::test_c[3]",
)
MODULES = (A, "tests/test_b.py", "tests/test_c.py", "tests/test_empty.py")
FAILED = {f"{A}::test_a2": "r1", f"{A}::TestA::test_m2": "r1", "tests/test_c.py::test_c[2]": "r2"}
PAST = PastRuns(FAILED, latest_failure_run="r2")


def _collection(
    node_ids: tuple[str, ...] = SUITE, modules: tuple[str, ...] = MODULES, **options: object
) -> Collection:
    return Collection("/r", "", node_ids, modules, options=PytestOptions(**options))  # type: ignore[arg-type]


def test_without_the_options_the_collection_is_untouched() -> None:
    collection = _collection()
    chosen = choose(collection, PAST)
    assert chosen.collection is collection
    assert (chosen.first, chosen.lines, chosen.stepwise) == (frozenset(), (), None)


def test_lf_keeps_failures_and_class_tests_of_failed_files_and_skips_the_other_files() -> None:
    # pytest: "collected 4 items / 1 deselected / 3 selected", then 3 failed, 1 deselected.
    chosen = choose(_collection(last_failed=True), PAST)
    assert chosen.collection.node_ids == (
        f"{A}::test_a2",
        f"{A}::TestA::test_m2",
        "tests/test_c.py::test_c[2]",
    )
    assert chosen.collection.deselected == 1  # TestA::test_m1: a class's tests are collected
    assert chosen.lines == (
        f"run-last-failure: rerun previous 3 failures (skipped 2 files) ({SOURCE}, run r2)",
    )
    assert chosen.first == frozenset()


def test_lf_keeps_every_test_of_a_file_named_on_the_command_line() -> None:
    # pytest --lf tests/test_a.py: 2 failed, 2 deselected, "rerun previous 2 failures".
    collection = _collection(SUITE[:4], (A,), last_failed=True, initial_files=(A,))
    chosen = choose(collection, PAST)
    assert chosen.collection.node_ids == (f"{A}::test_a2", f"{A}::TestA::test_m2")
    assert chosen.collection.deselected == 2
    assert chosen.lines[0].startswith("run-last-failure: rerun previous 2 failures (from")


def test_lf_adds_its_deselected_to_those_of_k_and_m() -> None:
    collection = Collection("/r", "", SUITE, MODULES, 5, options=PytestOptions(last_failed=True))
    assert choose(collection, PAST).collection.deselected == 6


def test_a_file_whose_failures_are_all_in_classes_does_not_start_skipping_files() -> None:
    # pytest filters a file's direct children: a class is no known failure, so the
    # file comes whole and the next file is not skipped ("3 deselected", no "skipped").
    suite = (f"{A}::TestA::test_m1", f"{A}::TestA::test_m2", f"{A}::test_f", "tests/test_b.py::b1")
    collection = _collection(suite, (A, "tests/test_b.py"), last_failed=True)
    chosen = choose(collection, PastRuns({f"{A}::TestA::test_m2": "r"}, latest_failure_run="r"))
    assert chosen.collection.node_ids == (f"{A}::TestA::test_m2",)
    assert chosen.collection.deselected == 3
    assert chosen.lines == (f"run-last-failure: rerun previous 1 failure ({SOURCE}, run r)",)


def test_lf_collects_failed_paths_first_in_each_folder() -> None:
    # tests/sub holds the failure: pytest collects it before tests/test_0.py, which
    # it then skips instead of collecting it whole.
    suite = ("tests/test_0.py::t", "tests/sub/test_s.py::s1", "tests/sub/test_s.py::s2")
    modules = ("tests/test_0.py", "tests/sub/test_s.py")
    failures = {"tests/sub/test_s.py::s2": "r"}
    chosen = choose(_collection(suite, modules, last_failed=True), PastRuns(failures, "r"))
    assert chosen.collection.node_ids == ("tests/sub/test_s.py::s2",)
    assert chosen.collection.deselected == 0
    assert chosen.lines[0].startswith("run-last-failure: rerun previous 1 failure (skipped 1 file)")


def test_failed_paths_first_keeps_folders_together() -> None:
    modules = ["a/x.py", "a/y.py", "b/z.py", "c.py"]
    assert failed_paths_first(modules, {"a", "a/y.py", "b", "b/z.py"}) == [
        "a/y.py",
        "a/x.py",
        "b/z.py",
        "c.py",
    ]
    assert failed_paths_first(modules, set()) == modules


def test_known_failures_outside_the_collection_deselect_nothing() -> None:
    # pytest --lf tests/test_b.py: "2 known failures not in selected tests", 2 passed.
    collection = _collection(SUITE[4:6], ("tests/test_b.py",), last_failed=True)
    past = PastRuns({f"{A}::test_a2": "r", "tests/test_c.py::test_c[2]": "r"}, "r")
    chosen = choose(collection, past)
    assert chosen.collection.node_ids == SUITE[4:6]
    assert chosen.collection.deselected == 0
    assert chosen.lines == (
        f"run-last-failure: 2 known failures not in selected tests ({SOURCE}, run r)",
    )


@pytest.mark.parametrize(
    ("no_failures", "owed", "deselected", "line"),
    [
        ("all", SUITE, 0, "no previously failed tests, not deselecting items."),
        ("none", (), 9, "no previously failed tests, deselecting all items."),
    ],
)
def test_lf_with_no_known_failure_runs_all_or_none(
    no_failures: str, owed: tuple[str, ...], deselected: int, line: str
) -> None:
    collection = _collection(last_failed=True, last_failed_no_failures=no_failures)
    chosen = choose(collection, PastRuns())
    assert chosen.collection.node_ids == owed
    assert chosen.collection.deselected == deselected
    assert chosen.lines == (f"run-last-failure: {line} ({SOURCE})",)


def test_lfnf_none_keeps_modules_that_skipped_themselves() -> None:
    # They are no items: pytest reports them skipped while it deselects every test.
    collection = _collection((*SUITE[:2], "tests/test_skip.py"), last_failed=True,
                             last_failed_no_failures="none")  # fmt: skip
    chosen = choose(collection, PastRuns())
    assert chosen.collection.node_ids == ("tests/test_skip.py",)
    assert chosen.collection.deselected == 2


def test_ff_runs_everything_with_the_failures_first() -> None:
    chosen = choose(_collection(failed_first=True), PAST)
    assert chosen.collection.node_ids == SUITE
    assert chosen.collection.deselected == 0
    assert chosen.first == frozenset(FAILED)
    assert chosen.lines == (
        f"run-last-failure: rerun previous 3 failures first ({SOURCE}, run r2)",
    )


def test_lf_and_ff_together_deselect_and_say_first() -> None:
    chosen = choose(_collection(last_failed=True, failed_first=True), PAST)
    assert len(chosen.collection.node_ids) == 3
    assert chosen.lines[0].startswith("run-last-failure: rerun previous 3 failures first (skipped")


def test_nf_plans_the_tests_the_store_never_saw_first() -> None:
    known = frozenset(SUITE[:-1])
    chosen = choose(_collection(new_first=True), PastRuns(known=known))
    assert chosen.first == frozenset({SUITE[-1]})
    assert chosen.collection.node_ids == SUITE
    assert chosen.lines == ()
