"""The parts a run is composed of, each with recording fakes and a moved clock:
the planner, the ledger, the supervision and the settler."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import redis
from test_session import Clock, FakeReader, Progress, RecordingSender, RecordingStore

from farm.core.defaults import RUN_HEARTBEAT_S
from farm.core.domain import (
    ChangeRef,
    Collection,
    History,
    Outcome,
    Retries,
    RunFindings,
    RunState,
    TestResult,
    Verdict,
)
from farm.core.errors import CollectionError, WorkerLost
from farm.core.messages import CollectFailed, ModuleCollected, ShardStart
from farm.core.quarantine import QuarantineRules
from farm.core.settings import Settings
from farm.core.shard_task import ShardTask
from farm.run.ledger import RunLedger
from farm.run.planner import Planner
from farm.run.request import RunRequest
from farm.run.settler import Settler
from farm.run.supervise import Supervision
from farm.scheduler.session import RunSession
from farm.store import ShardRecord, ShardView
from farm.store.records import QuarantineEvent

TEMPLATE = ShardTask("run", 0, 1, "/suite", ())


def planner(history: History | None = None, first_shard_id: int = 0) -> Planner:
    return Planner(
        history or History({}, {}),
        workers=2,
        strategy="lpt",
        shard_overhead_s=0.3,
        first_shard_id=first_shard_id,
    )


# -- the planner ---------------------------------------------------------------


def test_planner_numbers_shards_on_from_its_first_id_across_plans() -> None:
    p = planner(first_shard_id=5)
    first = p.shards([f"t.py::a{i}" for i in range(6)], TEMPLATE)
    more = p.shards(["u.py::b"], TEMPLATE)
    ids = [t.shard_id for t in (*first.tasks, *more.tasks)]
    assert ids == list(range(5, 5 + len(ids)))
    assert len(first.tasks) == len(first.plan.shards)
    held = sorted(n for t in (*first.tasks, *more.tasks) for n in t.node_ids)
    assert held == sorted([f"t.py::a{i}" for i in range(6)] + ["u.py::b"])


def test_planner_keeps_every_estimate_it_made_and_the_template() -> None:
    p = planner(History({"t.py::slow": 7.0}, {}))
    p.shards(["t.py::slow"], TEMPLATE)
    shards = p.shards(["t.py::new"], TEMPLATE)
    assert p.estimates_s["t.py::slow"] == 7.0
    assert p.estimates_s["t.py::new"] == pytest.approx(7.0)  # the module's mean
    assert all(t.rootdir == "/suite" and t.run_id == "run" for t in shards.tasks)


def test_a_plan_alone_uses_no_shard_ids() -> None:
    p = planner()
    p.plan(["t.py::a", "t.py::b"])
    assert [t.shard_id for t in p.shards(["t.py::c"], TEMPLATE).tasks] == [0]


def test_a_plan_in_order_cuts_the_collection_into_runs_dispatched_in_order() -> None:
    # --sw: the run meets its tests as pytest does, however long history says they are.
    node_ids = [f"t.py::a{i}" for i in range(12)]
    history = History({"t.py::a9": 30.0, "t.py::a3": 20.0}, {})
    lpt = planner(history).plan(node_ids)
    ordered = planner(history).plan_in_order(node_ids)
    assert [n for s in ordered.shards for n in s.node_ids] == node_ids
    assert [len(s.node_ids) for s in ordered.shards] == [len(s.node_ids) for s in lpt.shards]
    assert [s.shard_id for s in ordered.shards] == list(range(len(ordered.shards)))
    assert ordered.total_s == pytest.approx(sum(s.estimate_s for s in ordered.shards))


# -- the ledger ----------------------------------------------------------------


class RecordingRows:
    """Every write a ledger makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def create_run(
        self,
        *,
        project: str,
        trigger: str,
        settings: Mapping[str, object],
        change: ChangeRef | None = None,
        snapshot_digest: str | None = None,
    ) -> str:
        self.calls.append(("create", (project, trigger, snapshot_digest, change)))
        return "run-1"

    def start_run(
        self,
        run_id: str,
        *,
        total_tests: int,
        estimated_makespan_s: float,
        shards: Sequence[ShardRecord],
    ) -> None:
        self.calls.append(("start", (run_id, total_tests, [s.shard_id for s in shards])))

    def add_shards(self, run_id: str, shards: Sequence[ShardRecord], *, total_tests: int) -> None:
        self.calls.append(("add", (run_id, total_tests, [s.shard_id for s in shards])))

    def save_shard_tests(self, run_id: str, shard_tests: Mapping[int, Sequence[str]]) -> None:
        self.calls.append(("tests", dict(shard_tests)))

    def reopen_run(self, run_id: str) -> None:
        self.calls.append(("reopen", run_id))

    def heartbeat(self, run_id: str) -> None:
        self.calls.append(("heartbeat", run_id))

    def finish_run(
        self,
        run_id: str,
        *,
        verdict: Verdict,
        message: str = "",
        state: RunState = RunState.FINISHED,
        findings: RunFindings | None = None,
    ) -> None:
        self.calls.append(("finish", (verdict, message, state)))
        if findings is not None:
            self.calls.append(("findings", findings))

    def update_history(
        self, project: str, results: Sequence[TestResult], *, rules: QuarantineRules | None = None
    ) -> tuple[QuarantineEvent, ...]:
        self.calls.append(("history", (project, [r.node_id for r in results], rules)))
        return ()

    def get_shards(self, run_id: str) -> tuple[ShardView, ...]:
        return ()


def test_the_ledger_writes_a_runs_life_in_order_with_each_shards_tests() -> None:
    rows = RecordingRows()
    change = ChangeRef("github.com/o/r", "ab" * 20, branch="main")
    ledger = RunLedger.create(
        rows, project="proj", settings={}, change=change, snapshot_digest="abc"
    )
    p = planner()
    first = p.shards(["t.py::a", "t.py::b"], TEMPLATE)
    ledger.start(first, total_tests=2)
    more = p.shards(["u.py::c"], TEMPLATE)
    ledger.add(more, total_tests=3)
    retry = dataclasses.replace(TEMPLATE, shard_id=p.shard_ids(1)[0], node_ids=("t.py::a",))
    ledger.add_follow_ups([retry], {"t.py::a": 0.5}, total_tests=3)
    ledger.heartbeat()
    found = RunFindings(flaky=("t.py::a",), retries=Retries(allowed=1, budget=1, spent=1))
    ledger.finish(Verdict.FLAKY, "1 flaky", findings=found)
    rules = QuarantineRules(flaky_runs=1, window_runs=2, clean_runs=2)
    ledger.learn([TestResult("run-1", 0, 1, "t.py::a", Outcome.PASSED, 0.1)], rules)
    kinds = [kind for kind, _ in rows.calls]
    assert kinds == [
        "create", "start", "tests", "add", "tests", "add", "tests", "heartbeat", "finish",
        "findings", "history",
    ]  # fmt: skip
    assert rows.calls[0][1] == ("proj", "cli", "abc", change)
    assert rows.calls[2][1] == {t.shard_id: t.node_ids for t in first.tasks}
    assert rows.calls[3][1][1] == 3
    assert rows.calls[5][1] == ("run-1", 3, [retry.shard_id])
    assert retry.shard_id not in {t.shard_id for t in (*first.tasks, *more.tasks)}
    assert rows.calls[6][1] == {retry.shard_id: ("t.py::a",)}
    assert rows.calls[8][1] == (Verdict.FLAKY, "1 flaky", RunState.FINISHED)
    assert rows.calls[9][1] == found
    assert rows.calls[10][1] == ("proj", ["t.py::a"], rules)


def test_reopening_a_run_keeps_its_id_and_project() -> None:
    rows = RecordingRows()
    ledger = RunLedger.reopen(rows, "old-run", "proj")
    ledger.finish(Verdict.ERROR, "gone", RunState.ABANDONED)
    assert rows.calls == [
        ("reopen", "old-run"),
        ("finish", (Verdict.ERROR, "gone", RunState.ABANDONED)),
    ]
    assert ledger.run_id == "old-run"


# -- the supervision -----------------------------------------------------------


class FakeRedis:
    """The few Redis calls supervision makes; ``down`` makes each one fail."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[object, int | None]] = {}
        self.down = False

    def set(self, key: str, value: object, ex: int | None = None) -> bool:
        if self.down:
            raise redis.ConnectionError("down")
        self.values[key] = (value, ex)
        return True

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        if self.down:
            raise redis.ConnectionError("down")
        return {}

    def info(self, section: str) -> dict[str, object]:
        return {"run_id": "server-1"}


def supervision(clock: Clock, beats: list[float], client: FakeRedis) -> Supervision:
    settings = Settings(worker_start_timeout_s=60.0, stall_timeout_s=120.0, run_deadline_s=60.0)
    return Supervision(
        settings,
        run_id="run",
        code=None,
        client=client,  # type: ignore[arg-type]
        heartbeat=lambda: beats.append(clock.now),
        local=None,
        clock=clock,
    )


def watched_session(clock: Clock, reader: FakeReader) -> RunSession:
    tasks = [ShardTask("run", 0, 1, "/", ("a",))]
    return RunSession(
        tasks=tasks, reader=reader, store=RecordingStore(), sender=RecordingSender(),
        progress=Progress(), estimates_s={}, clock=clock, sleep=lambda s: None,
    )  # fmt: skip


def test_the_scheduler_heartbeat_is_written_once_per_interval() -> None:
    clock, beats = Clock(), []  # type: ignore[var-annotated]
    watch = supervision(clock, beats, FakeRedis())
    for _ in range(3):
        watch.liveness()
        clock.now += 1.0
    clock.now += RUN_HEARTBEAT_S
    watch.liveness()
    assert beats == [100.0, 103.0 + RUN_HEARTBEAT_S]


def test_a_run_no_worker_takes_ends_after_the_start_timeout() -> None:
    clock, client = Clock(), FakeRedis()
    watch = supervision(clock, [], client)
    watch.watch(watched_session(clock, FakeReader([])))
    clock.now += 59.0
    watch.liveness()
    clock.now += 2.0
    with pytest.raises(WorkerLost, match="no shard was taken by workers on the broker"):
        watch.liveness()


def test_a_stalled_run_with_no_live_worker_ends_and_says_what_it_owed() -> None:
    clock = Clock()
    watch = supervision(clock, [], FakeRedis())
    session = watched_session(clock, FakeReader([[ShardStart("run", 0, 1, "w", 100.0)]]))
    watch.watch(session)
    session.start()
    session.step()
    clock.now += 121.0
    with pytest.raises(WorkerLost, match="1 test"):
        watch.liveness()


def test_ending_cancels_the_run_once_and_survives_redis_being_away() -> None:
    client = FakeRedis()
    watch = supervision(Clock(), [], client)
    watch.end()
    assert client.values == {"farm:run:run:cancel": ("1", Settings().run_ttl_s)}
    client.down = True
    watch.end()  # no error: the keys' TTL and fencing keep late results out


# -- the settler ---------------------------------------------------------------


class FakePool:
    """Answers discover and collect at once, from what the test says they find."""

    def __init__(self, found: Mapping[str, Callable[..., Collection]]) -> None:
        self.found = found
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Collection], *args: Any, **kwargs: Any) -> Future[Any]:
        self.asked.append((fn.__name__, args))
        future: Future[Collection] = Future()
        try:
            future.set_result(self.found[fn.__name__](*args, **kwargs))
        except Exception as e:
            future.set_exception(e)
        return future


class RecordingHost:
    """Records what a settler asks of its run; dispatched tests go to ``session``."""

    def __init__(self) -> None:
        self.dispatched: list[list[str]] = []
        self.ended: list[tuple[Verdict, str]] = []
        self.session: RunSession | None = None

    def collected(self, collecting: Future[Collection]) -> Collection:
        return collecting.result()

    def dispatch_more(self, node_ids: Sequence[str], where: Collection) -> None:
        self.dispatched.append(list(node_ids))
        assert self.session is not None
        shard_id = len(self.session.tracker.shards) + 100
        self.session.add_tasks([ShardTask("run", shard_id, 1, where.rootdir, tuple(node_ids))])

    def end(self, verdict: Verdict, message: str) -> None:
        self.ended.append((verdict, message))


REQUEST = RunRequest(("tests",), (), Path("/suite"), {})
GUESS = Collection("/suite", "", ("a.py::one", "a.py::two"), modules=("a.py",))


def settle_session(clock: Clock, batches: list[list[Any]]) -> RunSession:
    tasks = [ShardTask("run", 0, 1, "/suite", GUESS.node_ids)]
    session = RunSession(
        tasks=tasks, reader=FakeReader(batches), store=RecordingStore(),
        sender=RecordingSender(), progress=Progress(), estimates_s={}, settled=False,
        clock=clock, sleep=lambda s: None,
    )  # fmt: skip
    session.start()
    return session


def test_settling_adds_tests_workers_and_new_files_bring_and_nothing_else() -> None:
    reported = ModuleCollected("run", 0, 1, "a.py", ("a.py::one", "a.py::two", "a.py::three"))
    pool = FakePool(
        {
            "discover": lambda *a, **k: Collection("/suite", "", (), modules=("a.py", "b.py")),
            "collect": lambda *a, **k: Collection("/suite", "", ("b.py::new",), deselected=2),
        }
    )
    host = RecordingHost()
    session = host.session = settle_session(Clock(), [[reported]])
    settled = Settler(host, REQUEST, session, GUESS, pool).settle()
    assert host.dispatched == [["b.py::new"], ["a.py::three"]] or host.dispatched == [
        ["a.py::three"],
        ["b.py::new"],
    ]
    assert sorted(settled.node_ids) == ["a.py::one", "a.py::three", "a.py::two", "b.py::new"]
    assert settled.deselected == 2
    collected = [args for name, args in pool.asked if name == "collect"]
    assert collected == [(["b.py"], ["--rootdir", "/suite"])]  # only the file no worker has


def test_a_module_a_worker_cannot_collect_ends_the_run_with_an_error() -> None:
    failed = CollectFailed("run", 0, 1, "a.py", "E   SyntaxError: invalid syntax")
    pool = FakePool({"discover": lambda *a, **k: Collection("/suite", "", (), modules=("a.py",))})
    host = RecordingHost()
    session = settle_session(Clock(), [[failed]])
    with pytest.raises(CollectionError, match=r"a\.py: E   SyntaxError"):
        Settler(host, REQUEST, session, GUESS, pool).settle()
    assert [v for v, _ in host.ended] == [Verdict.ERROR]


def test_a_moved_rootdir_drops_the_guess_and_plans_everything_again() -> None:
    moved = Collection("/elsewhere", "", (), modules=("a.py",))
    everything = Collection("/elsewhere", "", ("a.py::one", "a.py::x"))
    pool = FakePool({"discover": lambda *a, **k: moved, "collect": lambda *a, **k: everything})
    host = RecordingHost()
    session = host.session = settle_session(Clock(), [])
    settled = Settler(host, REQUEST, session, GUESS, pool).settle()
    assert settled is everything
    assert host.dispatched == [["a.py::one", "a.py::x"]]
    assert list(session.tracker.shards) == [100]  # the guess's shard 0 is dropped


def test_a_narrowed_run_holds_new_tests_back_and_owes_what_the_narrowing_keeps() -> None:
    # --lf and the like: what the settled collection keeps is owed, and only the tests
    # of it no shard holds go out, once; the collection returned is the whole suite.
    reported = ModuleCollected("run", 0, 1, "a.py", ("a.py::one", "a.py::two", "a.py::three"))
    pool = FakePool(
        {
            "discover": lambda *a, **k: Collection("/suite", "", (), modules=("a.py", "b.py")),
            "collect": lambda *a, **k: Collection("/suite", "", ("b.py::new", "b.py::old")),
        }
    )
    host = RecordingHost()
    session = host.session = settle_session(Clock(), [[reported]])

    def narrow(collection: Collection) -> Collection:
        kept = tuple(n for n in collection.node_ids if n in {"a.py::one", "b.py::new"})
        return dataclasses.replace(collection, node_ids=kept)

    settled = Settler(host, REQUEST, session, GUESS, pool, narrow=narrow).settle()
    assert host.dispatched == [["b.py::new"]]
    assert session.tracker.owed == frozenset({"a.py::one", "b.py::new"})
    assert settled.node_ids == ("a.py::one", "a.py::two", "a.py::three", "b.py::new", "b.py::old")
    assert settled.modules == ("a.py", "b.py")
