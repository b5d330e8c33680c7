"""The last guard against a run that never ends: owed work that stopped shrinking.

Every other guard covers one way of getting stuck (a lapsed lease, a worker that
hands a shard back, Redis gone, no live worker). This one covers what none of them
foresaw: however the run got there, if no test has finished for longer than any
test of the run could legitimately take, plus time for every recovery the session
may still try, the run ends with an error that names what it still owed.

The bound, from the run's settings and estimates:

    max(test_timeout_s, 3 x the longest estimate of a test still owed)
      + (max_reissues + 1) x lease_s + redis_outage_s + worker_start_s

A test is stopped at its time limit from outside, a dead worker's lease lapses and
its shard goes out again at most ``max_reissues`` times, Redis may be away for up to
``redis_outage_s``, and a shard handed out again waits for a worker to start: past
all of that, waiting longer cannot help.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from farm.core import defaults
from farm.core.errors import WorkerLost

# A test's history may be far off (a new machine, a slower change): three times its
# estimate before the watchdog suspects it, where that exceeds the time limit.
_ESTIMATE_MARGIN = 3.0


@dataclass(frozen=True)
class WatchdogLimits:
    """The settings the bound is made of; see the module's docstring."""

    test_timeout_s: float = defaults.TEST_TIMEOUT_S
    lease_s: float = defaults.LEASE_S
    max_reissues: int = defaults.MAX_REISSUES
    redis_outage_s: float = defaults.REDIS_OUTAGE_S
    worker_start_s: float = defaults.WORKER_START_TIMEOUT_S

    def bound_s(self, longest_owed_s: float) -> float:
        """How long a run may go without a finished test, owing a test of that estimate."""
        longest_test_s = max(self.test_timeout_s, _ESTIMATE_MARGIN * longest_owed_s)
        recovery_s = (self.max_reissues + 1) * self.lease_s + self.redis_outage_s
        return longest_test_s + recovery_s + self.worker_start_s


def stalled(
    limits: WatchdogLimits,
    *,
    silent_s: float,
    owed_estimates_s: Callable[[], Iterable[float]],
) -> float | None:
    """The bound ``silent_s`` exceeded, or None while the run may still be working.

    ``owed_estimates_s`` is only asked once the run has been silent longer than the
    smallest bound, so a healthy run never pays for the scan.
    """
    if silent_s <= limits.bound_s(0.0):
        return None
    bound_s = limits.bound_s(max(owed_estimates_s(), default=0.0))
    return bound_s if silent_s > bound_s else None


def check(
    limits: WatchdogLimits,
    *,
    silent_s: float,
    unfinished: Callable[[], Iterable[str]],
    estimates_s: Mapping[str, float],
) -> None:
    """Raise :class:`WorkerLost` naming what is still owed when no test has finished
    for longer than the bound; ``unfinished`` lists the tests still owed."""
    bound_s = stalled(
        limits,
        silent_s=silent_s,
        owed_estimates_s=lambda: (estimates_s.get(node_id, 0.0) for node_id in unfinished()),
    )
    if bound_s is not None:
        owed = sum(1 for _ in unfinished())
        raise WorkerLost(
            f"no test finished for {silent_s:.0f}s, longer than any test "
            f"and recovery of this run may take ({bound_s:.0f}s): {owed} test(s) still owed"
        )
