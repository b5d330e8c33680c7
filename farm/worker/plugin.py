"""The pytest plugin loaded into the test process: runs one shard, reports each test.

It runs inside untrusted test code, so it knows nothing of Redis or the database:
it writes one line per event to a file descriptor that the trusted runner
(:mod:`farm.worker.runner`) reads and forwards. :mod:`farm.worker.pipe` defines the
lines; this plugin writes them in this order:

- ``K`` once the shard has arrived, under fd capture: pytest's capture files, which
  the runner opens so that what a test printed survives a crash.
- ``C`` for each module that fails to collect, then one ``M`` per module collected:
  every test pytest kept from it, whether or not this shard runs it (a module that
  skipped itself: its one entry), and how many ``-k``, ``-m`` or ``--deselect`` left out.
- ``T`` if any test of the shard has a ``timeout`` marker, or pytest-timeout is
  active (it then times the tests: an ``A`` line each time it starts or cancels a
  test's timer), then ``O``, the order the tests run and report in: the shard's,
  or, when pytest-randomly or pytest-random-order shuffles the tests (with the
  run's seed: see :mod:`farm.core.seeds`), theirs, restricted to the shard.
- ``R`` per test, written when the next test starts (or the run loop ends), because
  pytest records a test's warnings only after its teardown report (see
  :mod:`farm.worker.reports` for how its reports become one result). A collector that
  skipped itself (a module-level ``pytest.importorskip``) is a result of its own,
  named by the collector's node id: it heads the order and is reported at once.
  A failing result, and any result of an attempt after the first, names the modules
  that ran before it in this process, and those it collected that ran after it (see
  :mod:`farm.core.order`).
- ``F`` when the session ends normally, after every other plugin's session-finish work.
- ``P`` only when the runner asks by :data:`~farm.worker.deadline.OUTPUT_SIGNAL` (the
  test is over its time limit); the process then waits to be killed.

The handlers of the runner's signals to stop a test over its time limit (its stack
to the log, the ``P`` line) are in :mod:`farm.worker.stop_signals`.

The process is started before its shard is known (see :mod:`farm.worker.spawn`): it
waits in its collection hook for its shard, one line of JSON on
``--farm-command-fd`` (``modules`` to collect, ``node_ids`` to run in that order,
and ``stamp``, the fields every result carries: run_id, shard_id, lease, worker,
attempt, machine; ``coverage_out``, where a run under ``--cov`` leaves its coverage
data: see :mod:`farm.worker.coverage_capture`), then collects those modules and runs
the shard. With no shard after ``--farm-idle-s`` seconds, or when the command pipe
closes, it exits quietly.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from farm.core.defaults import RESULT_LIMIT_BYTES, SPARE_IDLE_S
from farm.core.domain import Outcome, TestResult, module_of
from farm.core.order import ModuleOrder, wants_order
from farm.core.pytest_report import ResultDetail
from farm.core.seeds import SEED_OPTION, apply_seed, reorders, shufflers
from farm.worker import coverage_capture, pipe
from farm.worker.deadline import marker_timeout_s, truncate
from farm.worker.reports import WARNINGS_CATEGORY, TestReports, skip_outcome
from farm.worker.shown import Shown, status_of
from farm.worker.stop_signals import InFlightTest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("farm")
    group.addoption("--farm-command-fd", type=int, default=None, help="fd naming the shard")
    group.addoption("--farm-report-fd", type=int, default=None, help="fd for result lines")
    group.addoption("--farm-limit-bytes", type=int, default=RESULT_LIMIT_BYTES)
    group.addoption("--farm-idle-s", type=float, default=SPARE_IDLE_S)
    group.addoption(SEED_OPTION, type=int, default=None, help="the run's seed")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # First: the shuffling plugins read their seed options in their own
    # pytest_configure, so the run's seed goes in before they run.
    if (seed := config.getoption("farm_seed")) is not None:
        apply_seed(config.option, seed)
    # Known with or without pytest-timeout (which registers it too, and then
    # enforces it itself: see farm.worker.deadline).
    config.addinivalue_line(
        "markers", "timeout(seconds): this test's time limit, instead of the run's"
    )
    command_fd = config.getoption("farm_command_fd")
    report_fd = config.getoption("farm_report_fd")
    if command_fd is not None and report_fd is not None:
        reporter = ShardReporter(
            command_fd,
            report_fd,
            config.getoption("farm_limit_bytes"),
            config.getoption("farm_idle_s"),
            config,
        )
        config.pluginmanager.register(reporter, "farm-shard")
        config.pluginmanager.register(reporter.in_flight, "farm-in-flight")
        reporter.in_flight.install()


def _wait_for_line(fd: int, idle_s: float) -> str | None:
    """One line from ``fd``, or None if it closes or stays silent for ``idle_s``."""
    data = b""
    deadline = time.monotonic() + idle_s
    while not data.endswith(b"\n"):
        left_s = deadline - time.monotonic()
        if not data and (left_s <= 0 or not select.select([fd], [], [], left_s)[0]):
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        data += chunk
    return data.decode("utf-8").strip()


def _capture_fds(config: pytest.Config) -> dict[str, int]:
    """The descriptors of pytest's fd-capture files (none under ``-s`` or sys capture).

    Reaches into pytest's capture manager, best effort: without them a crashed
    test's output is only what reached the log.
    """
    capman = config.pluginmanager.getplugin("capturemanager")
    multi = getattr(capman, "_global_capturing", None)
    fds = {}
    for name, attr in (("stdout", "out"), ("stderr", "err")):
        tmpfile = getattr(getattr(multi, attr, None), "tmpfile", None)
        try:
            fds[name] = int(tmpfile.fileno())  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            continue  # in-memory capture: no file to share
    return fds


class ShardReporter:
    """Orders the collected items as the shard says and streams their reports."""

    def __init__(
        self, command_fd: int, fd: int, limit_bytes: int, idle_s: float, config: pytest.Config
    ) -> None:
        self.config = config
        self.command_fd = command_fd
        self.idle_s = idle_s
        self.order: list[str] = []
        self.stamp: dict[str, Any] = {}
        self.coverage_out = ""
        self.index: dict[str, int] = {}
        self.fd = fd
        self.limit_bytes = limit_bytes
        self.shown = Shown(config, limit_bytes)  # what pytest's end-of-run sections show
        self.tests: dict[str, TestReports] = {}  # tests under way
        self.finished: TestResult | None = None  # the last result, unsent
        self.skipped_entries: dict[str, TestResult] = {}  # skipped collectors' results
        self.deselected: dict[str, int] = {}  # by module, before this shard's own choice
        self.last_module = ""
        self.modules = ModuleOrder(())  # which modules ran before each test of the order
        # The test in flight, for the runner's signals to stop it (a plugin of its own).
        self.in_flight = InFlightTest(
            config, limit_bytes, self._write, lambda node_id: self.index.get(node_id, -1)
        )

    def _write(self, line: bytes) -> None:
        """Write one line of :mod:`farm.worker.pipe` whole."""
        with self.in_flight.holding_signal():
            while line:
                written = os.write(self.fd, line)
                line = line[written:]

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool:
        line = _wait_for_line(self.command_fd, self.idle_s)
        if line is None:
            os._exit(0)  # a spare nobody took: nothing ran, nothing to report
        shard = json.loads(line)
        self.order = shard["node_ids"]
        self.stamp = shard["stamp"]
        self.coverage_out = str(shard.get("coverage_out", ""))  # see coverage_capture
        # A module deleted since the shard was planned (a run started from the last
        # collection) must not stop the shard's other modules from running: pytest
        # refuses the whole collection for one path that does not exist.
        here = Path(session.config.invocation_params.dir)
        fds = _capture_fds(session.config)
        if fds:
            self._write(pipe.encode_captures(fds))
            # No test may run before the runner holds the capture files (see pipe).
            _wait_for_line(self.command_fd, pipe.CAPTURES_KEPT_WAIT_S)
        session.perform_collect([m for m in shard["modules"] if (here / m).exists()])
        return True

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if self.index:
            return  # this shard's own choice, made after the modules were reported
        for item in items:
            module = module_of(item.nodeid)
            self.deselected[module] = self.deselected.get(module, 0) + 1

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        self._report_modules(items)
        position = {node_id: index for index, node_id in enumerate(self.order)}
        chosen = [item for item in items if item.nodeid in position]
        if not reorders(config.option, shufflers(config.pluginmanager)):
            # A plugin that shuffles tests ordered them from the run's seed: that order
            # stands, restricted to the shard. Else they run in the plan's order.
            chosen.sort(key=lambda item: position[item.nodeid])
        dropped = [item for item in items if item.nodeid not in position]
        items[:] = chosen
        # Skipped modules are results already: they go first, reported at once.
        entries = [node_id for node_id in self.skipped_entries if node_id in position]
        self.index = {node_id: i for i, node_id in enumerate(entries)}
        self.index.update((item.nodeid, len(entries) + i) for i, item in enumerate(chosen))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        # With pytest-timeout here, its hooks say each test's limit as it starts.
        timed_inside = config.pluginmanager.hasplugin("timeout")
        limits_s = {
            self.index[item.nodeid]: seconds
            for item in ([] if timed_inside else chosen)
            if (seconds := marker_timeout_s(item)) is not None
        }
        if limits_s or timed_inside:
            self._write(pipe.encode_timeouts(limits_s, armed=timed_inside))
        run_order = [*entries, *(item.nodeid for item in chosen)]
        self.modules = ModuleOrder(run_order)
        self._write(pipe.encode_order(run_order))
        for node_id in entries:
            self._write(pipe.encode_result(self.index[node_id], self.skipped_entries[node_id]))

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """pytest-timeout starts the test's timer: the runner times it from now too.

        With the signal method pytest-timeout fails the test here, as under pytest,
        and the runner waits a grace longer. The thread method would end the whole
        process (``os._exit``): the runner stops the test itself instead, at the limit.
        """
        index = self.index.get(item.nodeid)
        if index is None:
            return None
        main = threading.current_thread() is threading.main_thread()
        in_process = settings.method == "signal" and main
        self._write(pipe.encode_armed(index, float(settings.timeout), in_process))
        return None if in_process else True  # True: pytest-timeout starts no timer

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> None:
        index = self.index.get(getattr(item, "nodeid", ""))
        if index is not None:
            self._write(pipe.encode_armed(index, None, False))

    def _report_modules(self, items: list[pytest.Item]) -> None:
        """One ``M`` line per module collected: what pytest kept of it, what ``-k``,
        ``-m`` or ``--deselect`` left out, or its one entry if it skipped itself."""
        by_module: dict[str, list[str]] = {module: [] for module in self.deselected}
        for node_id in self.skipped_entries:
            by_module[module_of(node_id)] = [node_id]
        for item in items:
            by_module.setdefault(module_of(item.nodeid), []).append(item.nodeid)
        for module, node_ids in by_module.items():
            self._write(pipe.encode_module(module, node_ids, self.deselected.get(module, 0)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            longrepr = truncate(str(report.longrepr), self.limit_bytes)
            self._write(pipe.encode_collect_error(report.nodeid, longrepr))
        elif report.skipped:
            # pytest counts a module that skips itself as one skipped entry.
            outcome, reason = skip_outcome(report)
            entry = self._make(
                report.nodeid, outcome, reason, "", time.time(), {"skipped": 1},
                detail=self.shown.collect_skip(report),
            )  # fmt: skip
            self.skipped_entries[report.nodeid] = entry

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.coverage_out:  # pytest-cov saved its data as the run loop ended
            coverage_capture.save(self.coverage_out, session.config)
        self._write(pipe.encode_finished(int(exitstatus)))

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self._send_finished()
        self.tests[nodeid] = TestReports(started_at=time.time())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reports = self.tests.get(report.nodeid)
        if reports is None:  # no logstart first: some plugin reported this test itself
            reports = self.tests[report.nodeid] = TestReports(started_at=time.time())
        reports.add(report, *status_of(self.config, report))
        if report.when == "teardown":
            self.in_flight.item = None  # a stop signal from now on finds no test running
            self._send_finished()
            # Sent when the next test starts or the session ends, not now: pytest
            # records a test's warnings only after its teardown report.
            self.finished = self._result(report.nodeid, reports)
            del self.tests[report.nodeid]

    def pytest_warning_recorded(self, warning_message: object, when: str, nodeid: str) -> None:
        finished = self.finished
        if when == "runtest" and finished is not None and finished.node_id == nodeid:
            tally = dict(finished.tally)
            tally[WARNINGS_CATEGORY] = tally.get(WARNINGS_CATEGORY, 0) + 1
            detail = self.shown.with_warning(finished.detail, warning_message)
            self.finished = replace(finished, tally=tuple(sorted(tally.items())), detail=detail)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Iterator[None]:
        yield
        self._send_finished()  # the last test's warnings are recorded by now

    def _send_finished(self) -> None:
        result = self.finished
        if result is not None:
            self.finished = None
            self._write(pipe.encode_result(self.index.get(result.node_id, -1), result))

    def _result(self, node_id: str, reports: TestReports) -> TestResult:
        outcome, longrepr = reports.outcome()
        setup_s = reports.setup.duration if reports.setup else 0.0
        own_s = sum(r.duration for r in (*reports.calls[-1:], reports.teardown) if r)
        module = module_of(node_id)
        module_setup_s = 0.0
        if module != self.last_module:
            # The first test of a module in this process pays the module-scoped fixtures
            # in its setup phase; history learns that cost apart from the test's own.
            module_setup_s = setup_s
            self.last_module = module
        else:
            own_s += setup_s
        result = self._make(
            node_id,
            outcome,
            longrepr,
            reports.sections(),
            reports.started_at,
            reports.tally,
            duration_s=own_s,
            module_setup_s=module_setup_s,
            detail=self.shown.detail(reports.statuses),
        )
        if wants_order(result.outcome, result.attempt):
            before, after = self.modules.around(self.index.get(node_id, -1))
            result = replace(result, modules_before=before, modules_after=after)
        return result

    def _make(
        self,
        node_id: str,
        outcome: str,
        longrepr: str,
        output: str,
        started_at: float,
        tally: Mapping[str, int],
        *,
        duration_s: float = 0.0,
        module_setup_s: float = 0.0,
        detail: ResultDetail | None = None,
    ) -> TestResult:
        """A result of this shard's, its texts truncated."""
        stamp = self.stamp
        return TestResult(
            run_id=stamp["run_id"],
            shard_id=stamp["shard_id"],
            lease=stamp["lease"],
            node_id=node_id,
            outcome=Outcome(outcome),
            duration_s=duration_s,
            module_setup_s=module_setup_s,
            worker=stamp["worker"],
            attempt=stamp["attempt"],
            machine=stamp.get("machine", ""),
            longrepr=truncate(longrepr, self.limit_bytes),
            output=truncate(output, self.limit_bytes),
            started_at=started_at,
            finished_at=time.time(),
            tally=tuple(sorted(tally.items())),
            detail=detail,
        )
