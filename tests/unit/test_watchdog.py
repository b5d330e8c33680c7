"""The watchdog: a run whose owed work stops shrinking ends, on a moved clock."""

import pytest
from test_session import Clock, FakeReader, make_session, passed

from farm.core.errors import WorkerLost
from farm.core.messages import Event, Heartbeat, ShardStart
from farm.scheduler.session import Recovery
from farm.scheduler.watchdog import WatchdogLimits, stalled

LIMITS = WatchdogLimits(
    test_timeout_s=10.0, lease_s=2.0, max_reissues=1, redis_outage_s=3.0, worker_start_s=1.0
)


def test_the_bound_covers_the_longest_test_and_every_recovery() -> None:
    # 10 s limit + 2 leases of 2 s + 3 s of outage + 1 s to start a worker.
    assert LIMITS.bound_s(0.0) == 18.0
    # A test whose history says 5 s is given three times that where it is more.
    assert LIMITS.bound_s(5.0) == 23.0


def test_a_run_is_stalled_only_past_the_bound_of_what_it_owes() -> None:
    asked: list[bool] = []

    def owed() -> list[float]:
        asked.append(True)
        return [1.0, 5.0]

    assert stalled(LIMITS, silent_s=17.0, owed_estimates_s=owed) is None
    assert asked == []  # a run within the smallest bound is not scanned
    assert stalled(LIMITS, silent_s=22.0, owed_estimates_s=owed) is None
    assert stalled(LIMITS, silent_s=23.5, owed_estimates_s=owed) == 23.0


def test_a_session_whose_workers_stay_alive_but_finish_nothing_ends() -> None:
    clock = Clock()
    beats: list[list[Event]] = [[Heartbeat("r", 0, 1, "w", 0.0)] for _ in range(100)]
    reader = FakeReader([[ShardStart("r", 0, 1, "w", 0.0), passed("a", 0)], *beats])
    session, _, _, _ = make_session(reader, clock)
    session.recovery = Recovery(
        lease_s=2.0, max_reissues=1, redis_outage_s=3.0, test_timeout_s=10.0, worker_start_s=1.0
    )
    session.start()
    session.step()  # a result: the watchdog's clock starts here
    # Owed: b (2 s estimated) and c (3 s), under the 10 s limit: the bound is 18 s.
    for _ in range(18):
        clock.now += 1.0
        session.step()  # heartbeats renew the lease, yet no test finishes
    clock.now += 1.0
    with pytest.raises(WorkerLost, match=r"no test finished for 19s, .*2 test\(s\) still owed"):
        session.step()


def test_results_keep_the_watchdog_away() -> None:
    clock = Clock()
    reader = FakeReader([[ShardStart("r", 0, 1, "w", 0.0)], [], [passed("a", 0)], [passed("b", 0)]])
    session, _, _, _ = make_session(reader, clock)
    session.recovery = Recovery(
        lease_s=100.0, max_reissues=0, redis_outage_s=0.0, test_timeout_s=10.0, worker_start_s=0.0
    )
    session.start()
    for _ in range(4):
        clock.now += 9.0  # each step within 10 s of the last result
        session.step()
    assert sorted(session.tracker.final) == ["a", "b"]
