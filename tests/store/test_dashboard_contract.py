"""The dashboard's reads on every backend: what each gives, its filters, its windows,
and pagination that walks every row once (no duplicate, no gap)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

import pytest
from sqlalchemy import Engine, text
from store_fakes import FakeClock, finished_run, result

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.core.errors import UsageError
from farm.store import ResultStore
from farm.store.dashboard_records import Page

T = TypeVar("T")
DAY_S = 24 * 3600.0


def walk(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """Every item of a list, a page at a time."""
    items: list[T] = []
    cursor: str | None = None
    for _ in range(100):
        page = fetch(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


def attempt(
    run_id: str,
    node_id: str,
    outcome: Outcome = Outcome.PASSED,
    duration_s: float = 1.0,
    *,
    attempt: int = 1,
    machine: str = "m1",
    longrepr: str = "",
) -> TestResult:
    made = result(run_id, node_id, outcome, duration_s, attempt=attempt, longrepr=longrepr)
    return dataclasses.replace(made, machine=machine)


VALUE_ERROR = (
    "def test():\n>       check()\nE       ValueError: bad value 7\n\nt.py:2: ValueError\n"
)


def refused(errno: int) -> str:
    """A pytest traceback of a refused connection, its errno differing from test to test."""
    error = f"ConnectionRefusedError: [Errno {errno}] Connection refused"
    return f"def test():\n>       connect()\nE       {error}\n\nt.py:3: ConnectionRefusedError\n"


def on(made: TestResult, shard_id: int) -> TestResult:
    return dataclasses.replace(made, shard_id=shard_id)


def change(
    sha: str, repository: str = "repo", branch: str = "main", author: str = "ann"
) -> ChangeRef:
    return ChangeRef(repository, sha, branch, author=author)


class TestChanges:
    def test_newest_first_filtered_and_paginated(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        specs = [
            ("aaaa01", "repo", "main", "ann", Verdict.PASSED),
            ("aaaa02", "repo", "dev", "bob", Verdict.FAILED),
            ("aaaa03", "other", "main", "ann", Verdict.PASSED),
            ("aaaa04", "repo", "main", "bob", Verdict.FLAKY),
            ("aaaa05", "repo", "main", "ann", Verdict.PASSED),
        ]
        for sha, repo, branch, author, verdict in specs:
            failed = ("t.py::a",) if verdict is Verdict.FAILED else ()
            flaky = ("t.py::a",) if verdict is Verdict.FLAKY else ()
            finished_run(
                store,
                clock,
                lambda r: [attempt(r, "t.py::a")],
                change=change(sha, repo, branch, author),
                verdict=verdict,
                findings=RunFindings(failed=failed, flaky=flaky),
            )
        board = store.dashboard
        everything = walk(lambda c: board.changes(limit=2, cursor=c))
        assert [s.change.commit_sha for s in everything] == [
            "aaaa05",
            "aaaa04",
            "aaaa03",
            "aaaa02",
            "aaaa01",
        ]
        assert [s.verdict for s in everything][:2] == [Verdict.PASSED, Verdict.FLAKY]
        assert all(s.runs == 1 and s.latest_run_id for s in everything)

        def shas(**filters: object) -> list[str]:
            pages = walk(lambda c: board.changes(limit=1, cursor=c, **filters))  # type: ignore[arg-type]
            return [s.change.commit_sha for s in pages]

        assert shas(repository="other") == ["aaaa03"]
        assert shas(repository="repo", branch="main") == ["aaaa05", "aaaa04", "aaaa01"]
        assert shas(author="bob") == ["aaaa04", "aaaa02"]
        assert shas(verdict=Verdict.PASSED) == ["aaaa05", "aaaa03", "aaaa01"]
        assert shas(verdict=Verdict.FAILED, branch="dev") == ["aaaa02"]
        assert shas(branch="nowhere") == []

    def test_a_bad_cursor_or_limit_is_a_usage_error(self, store: ResultStore) -> None:
        with pytest.raises(UsageError, match="not a cursor"):
            store.dashboard.changes(cursor="not-a-cursor")
        with pytest.raises(UsageError, match="not a cursor"):
            store.dashboard.run_failures("x", cursor=store.dashboard.changes().next_cursor or "W10")
        with pytest.raises(UsageError, match="a page holds"):
            store.dashboard.changes(limit=0)

    def test_a_change_takes_each_tests_latest_run(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        ref = change("bbbb01")
        finished_run(
            store,
            clock,
            lambda r: [attempt(r, "t.py::a", Outcome.FAILED), attempt(r, "t.py::b")],
            change=ref,
            verdict=Verdict.FAILED,
            findings=RunFindings(failed=("t.py::a",)),
        )
        listed = store.dashboard.changes().items
        assert [s.verdict for s in listed] == [Verdict.FAILED]
        rerun = finished_run(
            store,
            clock,
            lambda r: [attempt(r, "t.py::a")],
            change=ref,
            verdict=Verdict.PASSED,
            findings=RunFindings(),
        )
        (summary,) = store.dashboard.changes().items
        assert (summary.verdict, summary.runs, summary.latest_run_id) == (Verdict.PASSED, 2, rerun)
        detail = store.dashboard.change("repo", "bbbb01")
        assert detail is not None
        assert detail.verdict.verdict is Verdict.PASSED
        assert detail.verdict.reason == "passed: 2 tests passed in 2 runs"
        assert [run.run_id for run in detail.runs][-1] == rerun
        assert store.dashboard.change("repo", "ffff99") is None

    def test_a_run_without_findings_fails_by_its_final_results(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        finished_run(
            store,
            clock,
            lambda r: [
                attempt(r, "t.py::a", Outcome.FAILED),
                attempt(r, "t.py::a", Outcome.FAILED, attempt=2),
                attempt(r, "t.py::b", Outcome.FAILED),
                attempt(r, "t.py::b", attempt=2),
            ],
            change=change("cccc01"),
            verdict=Verdict.FAILED,
        )
        detail = store.dashboard.change("repo", "cccc01")
        assert detail is not None
        assert (detail.verdict.verdict, detail.verdict.failed) == (Verdict.FAILED, ("t.py::a",))


class TestRunPage:
    def test_progress_shards_failures_and_slowest(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        def results(run_id: str) -> list[TestResult]:
            made = [attempt(run_id, f"t.py::p{i}", duration_s=float(i)) for i in range(6)]
            made += [
                attempt(run_id, f"t.py::f{i}", Outcome.FAILED, 0.5, longrepr=f"tb{i}")
                for i in range(5)
            ]
            made.append(attempt(run_id, "t.py::f0", Outcome.PASSED, 0.5, attempt=2))
            return made

        started = clock.now
        run_id = finished_run(store, clock, results)
        board = store.dashboard
        progress = board.run_progress(run_id)
        assert dict(progress.by_outcome) == {Outcome.PASSED: 7, Outcome.FAILED: 5}
        assert (progress.attempts, progress.tests_reported, progress.retries) == (12, 11, 1)
        assert progress.makespan_s == pytest.approx(clock.now - 3600 - started)
        assert progress.run.estimated_makespan_s == 5.0
        (shard,) = board.run_shards(run_id)
        assert (shard.worker, shard.machine, shard.started_at) == ("w1", "m1", started)

        failures = walk(lambda c: board.run_failures(run_id, limit=2, cursor=c))
        assert [(f.node_id, f.longrepr) for f in failures] == [
            (f"t.py::f{i}", f"tb{i}") for i in range(5)
        ]
        assert {f.machine for f in failures} == {"m1"}
        slow = walk(lambda c: board.run_slowest(run_id, limit=4, cursor=c))
        assert len(slow) == 12
        assert [s.node_id for s in slow[:3]] == ["t.py::p5", "t.py::p4", "t.py::p3"]
        assert [s.duration_s for s in slow] == sorted((s.duration_s for s in slow), reverse=True)

    def test_failure_groups_failing_shards_and_retry_links(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        def results(run_id: str) -> list[TestResult]:
            made = [
                on(attempt(run_id, f"t.py::f{i}", Outcome.FAILED, longrepr=refused(i)), 0)
                for i in range(5)
            ]
            made += [
                on(attempt(run_id, f"t.py::g{i}", Outcome.FAILED, longrepr=VALUE_ERROR), 1)
                for i in range(2)
            ]
            made.append(on(attempt(run_id, "t.py::p"), 3))
            # f0 passes on its retry (it did not fail); g0 fails again, in another shard.
            made.append(on(attempt(run_id, "t.py::f0", attempt=2), 2))
            retry = attempt(run_id, "t.py::g0", Outcome.FAILED, attempt=2, longrepr=VALUE_ERROR)
            made.append(on(retry, 2))
            return made

        run_id = finished_run(store, clock, results)
        board = store.dashboard
        groups = board.run_failure_groups(run_id)
        assert [(g.signature, g.tests, g.example_node_id) for g in groups] == [
            ("ConnectionRefusedError: [Errno <n>] Connection refused", 4, "t.py::f1"),
            ("ValueError: bad value <n>", 2, "t.py::g1"),
        ]
        assert groups[0].example_message == "[Errno 1] Connection refused"
        assert groups[0].headline().startswith("4 tests failed with ConnectionRefusedError")
        failures = {f.attempt_id: f.node_id for f in board.run_failures(run_id).items}
        assert failures[groups[1].example_attempt_id] == "t.py::g1"
        assert [g.tests for g in board.run_failure_groups(run_id, limit=1)] == [4]
        refused_tests, first = board.run_group_failures(run_id, groups[0].signature, limit=3)
        rest = walk(
            lambda c: board.run_group_failures(run_id, groups[0].signature, limit=3, cursor=c)[1]
        )
        assert refused_tests == 4 and len(first.items) == 3 and first.next_cursor
        assert [f.node_id for f in rest] == [f"t.py::f{i}" for i in range(1, 5)]
        value_tests, value_page = board.run_group_failures(run_id, groups[1].signature)
        # g0's group member is its retry, its final attempt, not its first.
        assert value_tests == 2
        assert [(f.node_id, f.attempt) for f in value_page.items] == [
            ("t.py::g1", 1),
            ("t.py::g0", 2),
        ]
        assert board.run_group_failures(run_id, "KeyError: nope") == (0, Page((), None))
        assert board.run_failing_shards(run_id) == (0, 1, 2)
        links = board.run_retry_links(run_id)
        assert [(link.retry_shard_id, link.first_shard_id) for link in links] == [(2, 0), (2, 1)]

        passing = finished_run(store, clock, lambda r: [attempt(r, "t.py::p")])
        assert board.run_failure_groups(passing) == ()
        assert board.run_failing_shards(passing) == ()
        assert board.run_retry_links(passing) == ()

    def test_failures_recorded_without_a_signature_are_grouped_from_their_traceback(
        self, store: ResultStore, clock: FakeClock, engine: Engine
    ) -> None:
        def results(run_id: str) -> list[TestResult]:
            made = [
                attempt(run_id, f"t.py::f{i}", Outcome.FAILED, longrepr=refused(i))
                for i in range(3)
            ]
            return [*made, attempt(run_id, "t.py::v", Outcome.FAILED, longrepr=VALUE_ERROR)]

        run_id = finished_run(store, clock, results)
        with engine.begin() as connection:  # as migration 0009 left the older rows
            connection.execute(
                text(
                    "UPDATE attempts SET signature = NULL WHERE node_id IN ('t.py::f0', 't.py::f1')"
                )
            )
        groups = store.dashboard.run_failure_groups(run_id)
        assert [(g.signature, g.tests, g.example_node_id) for g in groups] == [
            ("ConnectionRefusedError: [Errno <n>] Connection refused", 3, "t.py::f0"),
            ("ValueError: bad value <n>", 1, "t.py::v"),
        ]
        tests, page = store.dashboard.run_group_failures(run_id, groups[0].signature)
        assert tests == 3
        assert [f.node_id for f in page.items] == ["t.py::f0", "t.py::f1", "t.py::f2"]

    def test_an_unknown_run_is_a_usage_error(self, store: ResultStore) -> None:
        for read in (
            store.dashboard.run_progress,
            store.dashboard.run_shards,
            store.dashboard.run_failures,
            store.dashboard.run_slowest,
            store.dashboard.run_failure_groups,
            store.dashboard.run_failing_shards,
            store.dashboard.run_retry_links,
            lambda run_id: store.dashboard.run_group_failures(run_id, "ValueError: x"),
        ):
            with pytest.raises(UsageError, match="no run 'nope'"):
                read("nope")


class TestTestPage:
    def test_runs_machines_branches_and_quarantine(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        node = "t.py::x"
        first = finished_run(
            store,
            clock,
            lambda r: [
                attempt(r, node, Outcome.FAILED, 2.0, machine="bad"),
                attempt(r, node, Outcome.PASSED, 1.5, attempt=2, machine="good"),
            ],
            change=change("dddd01", branch="dev"),
        )
        second = finished_run(
            store, clock, lambda r: [attempt(r, node, duration_s=1.25)], change=change("dddd02")
        )
        finished_run(store, clock, lambda r: [attempt(r, "t.py::other")])
        finished_run(store, clock, lambda r: [attempt(r, node)], project="elsewhere")
        store.quarantine.add("proj", node, reason="flaky", owner="ann", actor="bob")

        points = walk(lambda c: store.dashboard.test_runs("proj", node, limit=1, cursor=c))
        assert [
            (p.run_id, p.branch, p.duration_s, p.outcome, p.attempts, p.machine) for p in points
        ] == [
            (second, "main", 1.25, Outcome.PASSED, 1, "m1"),
            (first, "dev", 1.5, Outcome.PASSED, 2, "good"),
        ]
        only_dev = store.dashboard.test_runs("proj", node, branch="dev").items
        assert [p.run_id for p in only_dev] == [first]

        overview = store.dashboard.test_overview("proj", node)
        assert overview.failures_by_machine == (("bad", 1),)
        assert overview.outcomes_by_branch == (
            ("dev", Outcome.FAILED, 1),
            ("dev", Outcome.PASSED, 1),
            ("main", Outcome.PASSED, 1),
        )
        assert overview.quarantine is not None and overview.quarantine.owner == "ann"
        assert [e.actor for e in overview.quarantine_events] == ["bob"]


def flaky_run(run_id: str, node_ids: dict[str, float]) -> list[TestResult]:
    """Each test failing once (taking its seconds) and then passing."""
    made = [attempt(run_id, "t.py::steady", duration_s=3.0)]
    for node_id, seconds in node_ids.items():
        made.append(attempt(run_id, node_id, Outcome.FAILED, seconds))
        made.append(attempt(run_id, node_id, Outcome.PASSED, 0.1, attempt=2))
    return made


class TestLeaderboards:
    def test_flaky_tests_by_retry_cost_in_the_window(
        self, store: ResultStore, clock: FakeClock
    ) -> None:
        finished_run(store, clock, lambda r: flaky_run(r, {"t.py::old": 100.0}))
        clock.now += 10 * DAY_S
        finished_run(store, clock, lambda r: flaky_run(r, {"t.py::a": 2.0, "t.py::b": 5.0}))
        finished_run(store, clock, lambda r: flaky_run(r, {"t.py::a": 4.0, "t.py::c": 1.0}))
        # A test failing on every attempt is failed, not flaky.
        finished_run(
            store,
            clock,
            lambda r: [
                attempt(r, "t.py::d", Outcome.FAILED),
                attempt(r, "t.py::d", Outcome.FAILED, attempt=2),
            ],
        )
        store.quarantine.add("proj", "t.py::b", reason="flaky", owner="", actor="ann")
        board = store.dashboard
        ranked = walk(lambda c: board.flaky_tests("proj", window_s=7 * DAY_S, limit=2, cursor=c))
        assert [
            (f.node_id, f.retry_cost_s, f.flaky_runs, f.failed_attempts, f.quarantined)
            for f in ranked
        ] == [
            ("t.py::a", 6.0, 2, 2, False),
            ("t.py::b", 5.0, 1, 1, True),
            ("t.py::c", 1.0, 1, 1, False),
        ]
        quarantined = board.flaky_tests("proj", window_s=7 * DAY_S, quarantined=True).items
        assert [f.node_id for f in quarantined] == ["t.py::b"]
        free = board.flaky_tests("proj", window_s=7 * DAY_S, quarantined=False).items
        assert [f.node_id for f in free] == ["t.py::a", "t.py::c"]
        everything = board.flaky_tests("proj", window_s=30 * DAY_S).items
        assert everything[0].node_id == "t.py::old"
        assert board.flaky_tests("elsewhere").items == ()

    def test_slowest_tests_and_duration_changes(self, store: ResultStore, clock: FakeClock) -> None:
        def timed(durations: dict[str, float]) -> Callable[[str], list[TestResult]]:
            return lambda r: [attempt(r, n, duration_s=s) for n, s in durations.items()]

        finished_run(store, clock, timed({"a": 1.0, "b": 2.0, "c": 4.0, "gone": 9.0}))
        finished_run(store, clock, timed({"a": 3.0, "b": 2.0, "c": 4.0}))
        clock.now += 7 * DAY_S
        finished_run(store, clock, timed({"a": 1.0, "b": 4.0, "c": 1.0, "new": 50.0}))
        finished_run(
            store,
            clock,
            lambda r: [attempt(r, "a", duration_s=1.0), attempt(r, "b", Outcome.FAILED, 99.0)],
        )
        board = store.dashboard
        slow = walk(lambda c: board.slowest_tests("proj", window_s=DAY_S, limit=1, cursor=c))
        assert [(t.node_id, t.mean_s, t.max_s, t.samples) for t in slow] == [
            ("new", 50.0, 50.0, 1),
            ("b", 4.0, 4.0, 1),
            ("a", 1.0, 1.0, 2),
            ("c", 1.0, 1.0, 1),
        ]
        sampled = board.slowest_tests("proj", window_s=DAY_S, sample_runs=1).items
        assert [t.node_id for t in sampled] == ["a"]

        moved = walk(
            lambda c: board.duration_changes("proj", window_s=DAY_S * 7, limit=2, cursor=c)
        )
        assert [(m.node_id, m.before_s, m.after_s, m.change_s) for m in moved] == [
            ("c", 4.0, 1.0, -3.0),
            ("b", 2.0, 4.0, 2.0),
            ("a", 2.0, 1.0, -1.0),
        ]
        relative = board.duration_changes("proj", window_s=DAY_S * 7, relative=True).items
        assert [(m.node_id, m.ratio) for m in relative] == [("c", 0.25), ("a", 0.5), ("b", 2.0)]
        with pytest.raises(UsageError, match="window"):
            board.duration_changes("proj", window_s=0)
