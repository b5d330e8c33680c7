"""``farm change show``, ``farm quarantine`` and the suspects of ``farm workers``, as a user
runs them (a ``farm`` subprocess), against a real SQLite store written through its API."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from helpers import farm_env, git, run_farm
from store_fakes import FakeClock

from farm.core.domain import ChangeRef, Outcome, RunFindings, TestResult, Verdict
from farm.store import ResultStore, ShardRecord

pytestmark = pytest.mark.integration

PROJECT = "shop"
SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
CHANGE = ChangeRef(
    "github.com/org/shop", SHA, branch="fix-cart", pull_request="12", author="dev@example.com"
)
A, B, C, D = (f"tests/test_cart.py::test_{name}" for name in "abcd")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'farm.db'}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db: str, clock: FakeClock) -> Iterator[ResultStore]:
    with ResultStore.open(db, clock=clock) as opened:
        yield opened


def attempt(
    run_id: str, node_id: str, outcome: Outcome, *, attempt: int = 1, machine: str = "m1"
) -> TestResult:
    return TestResult(
        run_id=run_id,
        shard_id=0,
        lease=1,
        node_id=node_id,
        outcome=outcome,
        duration_s=0.5,
        worker=f"{machine}:1",
        attempt=attempt,
        started_at=10.0,
        finished_at=10.5,
        machine=machine,
    )


def record_run(
    store: ResultStore,
    clock: FakeClock,
    verdict: Verdict,
    results: Sequence[tuple[str, Outcome]] = (),
    *,
    change: ChangeRef | None = CHANGE,
    findings: RunFindings | None = None,
    message: str = "",
    machine: str = "m1",
) -> str:
    """A finished run of ``change`` whose tests ended as ``results``, through the store."""
    clock.now += 60
    run_id = store.create_run(project=PROJECT, trigger="cli", settings={}, change=change)
    store.start_run(
        run_id,
        total_tests=len(results),
        estimated_makespan_s=1.0,
        shards=[ShardRecord(0, len(results), 1.0)],
    )
    attempts = [attempt(run_id, node_id, outcome, machine=machine) for node_id, outcome in results]
    store.record_results(attempts)
    store.update_history(PROJECT, attempts)
    clock.now += 5
    store.finish_run(run_id, verdict=verdict, message=message, findings=findings or RunFindings())
    return run_id


def farm(tmp_path: Path, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    return run_farm(*args, cwd=tmp_path, env=farm_env(USER=user), timeout_s=60)


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("farm: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# -- farm change show ------------------------------------------------------------------


def test_show_a_failed_change_with_its_runs_and_tests(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    errored = record_run(store, clock, Verdict.ERROR, message="worker lost")
    failed = record_run(
        store,
        clock,
        Verdict.FAILED,
        [(A, Outcome.FAILED), (B, Outcome.PASSED), (C, Outcome.FAILED), (D, Outcome.PASSED)],
        findings=RunFindings(failed=(A,), flaky=(B,), quarantined_failures=(C,)),
        message="1 test failed: " + A,
    )
    done = farm(tmp_path, "change", "show", SHA[:8], "--db", db)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert f"change github.com/org/shop {SHA}" in out
    assert "branch fix-cart, pull request 12, author dev@example.com" in out
    assert f"verdict failed: 1 test failed on every attempt: {A}; 1 test needed a retry: {B}" in out
    assert f"1 test failed but is quarantined: {C}" in out
    assert "runs (2, 1 counted):" in out
    assert f"{errored[:8]}" in out and "(worker lost)" in out
    assert f"{failed[:8]}" in out and "4 tests: 2 failed, 2 passed" in out
    assert out.index("failed (1):") < out.index("flaky (1):") < out.index("quarantined failures")


def test_json_keys_and_exit_codes(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    first = record_run(store, clock, Verdict.INTERRUPTED, message="the run was interrupted")
    done = farm(tmp_path, "change", "show", SHA, "--db", db, "--json")
    assert done.returncode == 3, done.stderr  # no run gave an answer: error
    shown = json.loads(done.stdout)
    assert shown["verdict"] == "error" and shown["exit_code"] == 3
    assert shown["reason"].endswith("was interrupted: the run was interrupted; run it again")

    second = record_run(
        store,
        clock,
        Verdict.FLAKY,
        [(A, Outcome.PASSED), (B, Outcome.PASSED)],
        findings=RunFindings(flaky=(B,)),
    )
    done = farm(tmp_path, "change", "show", SHA, "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert set(shown) == {
        "change",
        "verdict",
        "reason",
        "exit_code",
        "failed",
        "flaky",
        "quarantined_failures",
        "tests",
        "runs_counted",
        "runs",
    }
    assert shown["change"] == {
        "repository": "github.com/org/shop",
        "commit_sha": SHA,
        "branch": "fix-cart",
        "pull_request": "12",
        "author": "dev@example.com",
    }
    assert (shown["verdict"], shown["flaky"], shown["failed"]) == ("flaky", [B], [])
    assert (shown["tests"], shown["runs_counted"]) == (2, 1)
    assert [run["run_id"] for run in shown["runs"]] == [first, second]
    assert shown["runs"][0]["verdict"] == "interrupted" and shown["runs"][0]["tests"] == 0
    assert shown["runs"][1]["outcomes"] == {"passed": 2}
    assert isinstance(shown["runs"][1]["created_at"], float)

    # The flaky policy of the settings is the change's too.
    done = run_farm(
        "change", "show", SHA, "--db", db, "--json", cwd=tmp_path, env=farm_env(FARM_FLAKY="fail")
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["verdict"] == "failed"


def test_an_error_then_a_pass_is_passed(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    record_run(store, clock, Verdict.ERROR, message="redis went away")
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)])
    done = farm(tmp_path, "change", "show", SHA, "--db", db)
    assert done.returncode == 0, done.stderr
    assert "verdict passed: 1 test passed in 1 run" in done.stdout


def test_without_a_sha_the_latest_change_is_shown(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)])
    later = ChangeRef("github.com/org/shop", "f" * 40, branch="main")
    record_run(
        store,
        clock,
        Verdict.FAILED,
        [(A, Outcome.FAILED)],
        change=later,
        findings=RunFindings(failed=(A,)),
    )
    done = farm(tmp_path, "change", "show", "--db", db, "--json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["change"]["commit_sha"] == "f" * 40
    done = farm(tmp_path, "change", "show", "--db", db, "--project", "other")
    assert done.returncode == 4
    assert "no change of project 'other'" in one_line_error(done.stderr)


def test_an_unknown_sha_is_one_line_and_exit_4(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)])
    done = farm(tmp_path, "change", "show", "abcdef12", "--db", db)
    assert done.returncode == 4
    assert "no change 'abcdef12'" in one_line_error(done.stderr)
    done = farm(tmp_path, "change", "show", SHA, "--db", db, "--repository", "https://h.io/x.git")
    assert done.returncode == 4
    assert "of repository h.io/x" in one_line_error(done.stderr)


def test_the_repository_is_matched_as_run_names_it(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)])
    done = farm(
        tmp_path, "change", "show", SHA, "--db", db, "--repository", "git@github.com:org/shop.git"
    )
    assert done.returncode == 0, done.stderr


# -- farm quarantine -------------------------------------------------------------------


def test_quarantine_add_list_remove_with_events(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)], change=None)
    until = (datetime.date.today() + datetime.timedelta(days=7)).isoformat()
    where = ("--db", db, "--project", PROJECT)
    done = farm(
        tmp_path,
        "quarantine",
        "add",
        A,
        "--reason",
        "times out on CI",
        "--owner",
        "bob",
        "--until",
        until,
        *where,
    )
    assert done.returncode == 0, done.stderr
    assert f"quarantined {A} in project 'shop' until the end of {until}" in done.stdout
    assert "farm: warning" not in done.stderr  # A has history: the id is right

    done = farm(tmp_path, "quarantine", "list", *where)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith(A))
    assert f", by alice, owner bob, until {until}: times out on CI" in line
    assert "1 quarantined test(s) in project 'shop'" in done.stdout

    done = farm(tmp_path, "quarantine", "add", B, "--reason", "unknown id", *where, user="carol")
    assert done.returncode == 0, done.stderr
    assert "has no result of" in done.stderr  # a warning: B never ran

    done = farm(tmp_path, "quarantine", "remove", A, "--reason", "fixed in #14", *where)
    assert done.returncode == 0, done.stderr
    done = farm(tmp_path, "quarantine", "list", *where)
    assert A not in done.stdout and B in done.stdout

    done = farm(tmp_path, "quarantine", "list", "--events", *where)
    assert done.returncode == 0, done.stderr
    events = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(events) == 3
    assert events[0].endswith(f"{A}  entered by alice: times out on CI")
    assert events[1].endswith(f"{B}  entered by carol: unknown id")
    assert events[2].endswith(f"{A}  left by alice: fixed in #14")
    done = farm(tmp_path, "quarantine", "list", A, "--events", *where)
    assert sum("::" in line for line in done.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("add", A, "--reason", "x", "--until", "2001-02-03"), "--until 2001-02-03 is in the past"),
        (("add", A, "--reason", "x", "--until", "next week"), "is not a date written YYYY-MM-DD"),
        (("add", A, "--reason", "x", "--until", "2030-02-30"), "is not a date written YYYY-MM-DD"),
        (("add", A, "--reason", "  "), "--reason must not be empty"),
        (("remove", A, "--reason", "x"), f"{A} is not quarantined in project 'shop'"),
    ],
)
def test_quarantine_bad_input_is_one_line_and_exit_4(
    tmp_path: Path, db: str, args: tuple[str, ...], problem: str
) -> None:
    done = farm(tmp_path, "quarantine", *args, "--db", db, "--project", PROJECT)
    assert done.returncode == 4
    assert problem in one_line_error(done.stderr)


def test_the_name_farm_is_kept_for_automatic_changes(tmp_path: Path, db: str) -> None:
    done = farm(tmp_path, "quarantine", "add", A, "--reason", "x", "--db", db, user="farm")
    assert done.returncode == 4
    assert "kept for farm's own quarantine changes" in one_line_error(done.stderr)


def test_quarantine_names_the_project_by_the_rootdir_rule(tmp_path: Path, db: str) -> None:
    suite = tmp_path / "inventory"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    done = run_farm("quarantine", "list", "--db", db, cwd=suite, env=farm_env(USER="alice"))
    assert done.returncode == 0, done.stderr
    assert "farm: project inventory" in done.stderr
    assert "0 quarantined test(s) in project 'inventory'" in done.stdout


# -- farm workers: suspect machines ------------------------------------------------------


def test_workers_lists_suspect_machines_from_the_store(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock, redis_url: str, key_prefix: str
) -> None:
    record_run(
        store,
        clock,
        Verdict.FAILED,
        [(A, Outcome.FAILED), (B, Outcome.PASSED)],
        machine="bad-box",
        findings=RunFindings(failed=(A,)),
    )
    for _ in range(2):
        record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)], machine="good-box")
    broker = ("--broker", redis_url, "--key-prefix", key_prefix)
    done = farm(tmp_path, "workers", *broker, "--db", db, "--project", PROJECT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "0 worker(s), 0 slot(s)"
    assert lines[1:] == [
        "suspect machines:",
        f"  1 of 1 failures of {A} on bad-box, 2 passes elsewhere",
    ]

    # Another project has no suspects: nothing more is printed.
    done = farm(tmp_path, "workers", *broker, "--db", db, "--project", "other")
    assert done.stdout.splitlines() == ["0 worker(s), 0 slot(s)"]


def test_workers_without_a_store_print_nothing_more_and_make_none(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    state = tmp_path / "state"
    done = farm(
        tmp_path,
        "workers",
        "--broker",
        redis_url,
        "--key-prefix",
        key_prefix,
        "--state-dir",
        str(state),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 worker(s), 0 slot(s)"]
    assert not state.exists()


def test_workers_with_a_broken_store_still_list(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    done = farm(
        tmp_path,
        "workers",
        "--broker",
        redis_url,
        "--key-prefix",
        key_prefix,
        "--db",
        f"sqlite:///{broken}",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0 worker(s), 0 slot(s)"]


# -- farm run --change: the change a real run records ------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "test_one.py").write_text("def test_one():\n    assert True\n")
    (folder / ".gitignore").write_text("state/\n")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "first")
    git(folder, "remote", "add", "origin", "https://ci:TOKEN@example.com/org/shop.git")
    return folder


def test_a_run_records_its_change_from_git_and_change_show_reads_it(repo: Path) -> None:
    state = ("--state-dir", str(repo / "state"))
    done = run_farm("run", "-n", "1", *state, cwd=repo, timeout_s=180)
    assert done.returncode == 0, done.stderr
    done = run_farm("change", "show", "--json", *state, cwd=repo)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["change"] == {
        "repository": "example.com/org/shop",
        "commit_sha": git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "pull_request": "",
        "author": "dev@example.com",
    }
    assert (shown["verdict"], shown["tests"]) == ("passed", 1)
    assert "TOKEN" not in done.stdout


def test_run_refuses_a_change_that_is_not_a_commit_before_starting(repo: Path) -> None:
    state = repo / "state"
    done = run_farm("run", "-n", "1", "--state-dir", str(state), "--change", "nope", cwd=repo)
    assert done.returncode == 4
    assert "'nope' is not a commit of the git repository" in one_line_error(done.stderr)
    assert not state.exists()


# -- farm history show -------------------------------------------------------------------


def test_history_show_gives_a_tests_statistics_and_quarantine(
    tmp_path: Path, db: str, store: ResultStore, clock: FakeClock
) -> None:
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)])
    failing = record_run(store, clock, Verdict.FAILED, [(A, Outcome.FAILED)])
    record_run(store, clock, Verdict.PASSED, [(A, Outcome.PASSED)])
    store.quarantine.add(PROJECT, A, reason="races the cart", owner="bob", actor="alice")
    args = ("history", "show", A, "--db", db, "--project", PROJECT)
    shown = farm(tmp_path, *args)
    assert shown.returncode == 0, shown.stderr
    assert "estimate 0.500s, p50 0.500s, p90 0.500s (3 samples)" in shown.stdout
    assert "2 passed, 1 failed" in shown.stdout and "last runs pfp" in shown.stdout
    assert f"(run {failing[:12]})" in shown.stdout
    assert "quarantined since" in shown.stdout and "races the cart" in shown.stdout
    data = json.loads(farm(tmp_path, *args, "--json").stdout)
    assert [d["node_id"] for d in data] == [A]
    assert (data[0]["passes"], data[0]["failures"], data[0]["last_failure_run"]) == (
        2, 1, failing,
    )  # fmt: skip
    assert data[0]["quarantine"]["owner"] == "bob"
    unknown = farm(tmp_path, "history", "show", A, B, "--db", db, "--project", PROJECT)
    assert unknown.returncode == 4 and A in unknown.stdout
    assert B in one_line_error(unknown.stderr)
