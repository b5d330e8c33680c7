"""Which limit the runner holds a test to, and from when: pytest-timeout's timers, the
markers, pytest-timeout's options without the plugin, the run's ceiling."""

from __future__ import annotations

from farm.worker.deadline import MARKER, PYTEST_TIMEOUT, RUN, Limit, Stopwatch


def test_without_pytest_timeout_in_the_process_the_marker_then_its_options_apply() -> None:
    watch = Stopwatch(900.0, plugin_s=1.0, marker_s={1: 5.0, 2: 0.0}, since=100.0)
    assert watch.limit(0) == Limit(1.0, PYTEST_TIMEOUT)  # --timeout, enforced from here
    assert watch.limit(1) == Limit(5.0, MARKER)  # the marker overrides it
    assert watch.limit(2) == Limit(900.0, RUN)  # a marker of 0: no limit but the run's
    assert (watch.deadline(0), watch.deadline(1), watch.deadline(2)) == (101.0, 105.0, 1000.0)


def test_pytest_timeout_in_the_process_times_from_its_own_timer_with_a_grace() -> None:
    watch = Stopwatch(900.0, plugin_s=1.0, grace_s=5.0, timed_inside=True, since=100.0)
    # Not armed (yet, or ever: pytest-timeout's "no timeout"): only the run's ceiling.
    assert watch.limit(0) == Limit(900.0, RUN)
    watch.arm(0, 1.0, True, now=100.5)  # signal method: pytest-timeout fails it itself
    assert watch.deadline(0) == 100.5 + 1.0 + 5.0
    watch.arm(1, 2.0, False, now=103.0)  # thread method: farm stops it at the limit
    assert watch.deadline(1) == 105.0
    watch.arm(1, None, False, now=104.0)  # cancelled (func_only: the call is over)
    assert watch.limit(1) == Limit(900.0, RUN)


def test_an_overrun_says_where_its_limit_came_from() -> None:
    watch = Stopwatch(0.0, timed_inside=True, since=10.0)
    assert watch.deadline(0) is None  # no run limit and no timer: never
    watch.arm(0, 2.0, False, now=10.0)
    overrun = watch.stop("t.py::test_a", 0, now=12.0, log_offset=0)
    assert overrun.longrepr().startswith("timed out after 2.0s (limit 2s from pytest-timeout)")
