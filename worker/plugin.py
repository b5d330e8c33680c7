"""The pytest plugin loaded into the test process: runs one shard, reports each test.

It runs inside untrusted test code, so it knows nothing of Redis or the database:
it writes one line per event to a file descriptor that the trusted runner
(:mod:`worker.runner`) reads and forwards. A line is a one-letter kind, then data:

- ``O`` + JSON list: the node ids this process will run, in order, once after
  collection. Tests run and report in this order, so the runner knows which test
  was running when a process dies without a line per test start.
- ``R`` + index in that list + tab + the result, already in the wire format of
  :func:`farm.messages.encode_event`, so the runner forwards it without re-encoding.
- ``C`` + JSON ``{"where", "longrepr"}`` for a module that failed to collect.
- ``M`` + JSON ``{"module", "node_ids"}``, once per module after collection: every
  test pytest kept from that module, whether or not this shard runs it.
- ``F`` + JSON exit status, when the session ends normally: a process that stops
  without it died (a crash, a kill), and the test it was running is to blame.

The process is started before its shard is known (see :mod:`worker.spawn`): it
waits in its collection hook for its shard, one line of JSON on
``--farm-command-fd`` (``modules`` to collect, ``node_ids`` to run in that order,
and ``stamp``, the fields every result carries: run_id, shard_id, lease, worker,
attempt), then collects those modules and runs the shard. With no shard after
``--farm-idle-s`` seconds, or when the command pipe closes, it exits quietly.
"""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path
from typing import Any

import pytest

from farm.domain import module_of

_LIMIT_BYTES = 64 * 1024


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("farm")
    group.addoption("--farm-command-fd", type=int, default=None, help="fd naming the shard")
    group.addoption("--farm-report-fd", type=int, default=None, help="fd for result lines")
    group.addoption("--farm-limit-bytes", type=int, default=_LIMIT_BYTES)
    group.addoption("--farm-idle-s", type=float, default=120.0)


def pytest_configure(config: pytest.Config) -> None:
    command_fd = config.getoption("farm_command_fd")
    report_fd = config.getoption("farm_report_fd")
    if command_fd is not None and report_fd is not None:
        reporter = ShardReporter(
            command_fd,
            report_fd,
            config.getoption("farm_limit_bytes"),
            config.getoption("farm_idle_s"),
        )
        config.pluginmanager.register(reporter, "farm-shard")


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


def truncate(text: str, limit_bytes: int) -> str:
    """Cut ``text`` to about ``limit_bytes`` of UTF-8, saying how much was cut."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit_bytes:
        return text
    kept = data[:limit_bytes].decode("utf-8", "ignore")
    return f"{kept}\n[farm: truncated {len(data) - limit_bytes} of {len(data)} bytes]"


class ShardReporter:
    """Orders the collected items as the shard says and streams their reports."""

    def __init__(self, command_fd: int, fd: int, limit_bytes: int, idle_s: float) -> None:
        self.command_fd = command_fd
        self.idle_s = idle_s
        self.order: list[str] = []
        self.stamp: dict[str, Any] = {}
        self.index: dict[str, int] = {}
        self.fd = fd
        self.limit_bytes = limit_bytes
        self.phases: dict[str, dict[str, Any]] = {}
        self.last_module = ""

    def _emit(self, kind: str, data: object, prefix: str = "") -> None:
        text = kind + prefix + json.dumps(data, separators=(",", ":")) + "\n"
        line = text.encode("utf-8", "surrogateescape")
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
        # A module deleted since the shard was planned (a run started from the last
        # collection) must not stop the shard's other modules from running: pytest
        # refuses the whole collection for one path that does not exist.
        here = Path(session.config.invocation_params.dir)
        session.perform_collect([m for m in shard["modules"] if (here / m).exists()])
        return True

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        by_module: dict[str, list[str]] = {}
        for item in items:
            by_module.setdefault(module_of(item.nodeid), []).append(item.nodeid)
        for module, node_ids in by_module.items():
            self._emit("M", {"module": module, "node_ids": node_ids})
        position = {node_id: index for index, node_id in enumerate(self.order)}
        chosen = [item for item in items if item.nodeid in position]
        chosen.sort(key=lambda item: position[item.nodeid])
        dropped = [item for item in items if item.nodeid not in position]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = chosen
        self.index = {item.nodeid: i for i, item in enumerate(chosen)}
        self._emit("O", [item.nodeid for item in chosen])

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            longrepr = truncate(str(report.longrepr), self.limit_bytes)
            self._emit("C", {"where": report.nodeid, "longrepr": longrepr})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._emit("F", int(exitstatus))

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self.phases[nodeid] = {"started_at": time.time()}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.phases.setdefault(report.nodeid, {"started_at": time.time()})
        state[report.when] = report
        if report.when == "teardown":
            index = self.index.get(report.nodeid, -1)
            self._emit("R", self._result(report.nodeid, state), f"{index}\t")
            del self.phases[report.nodeid]

    def _result(self, node_id: str, state: dict[str, Any]) -> dict[str, Any]:
        setup: pytest.TestReport | None = state.get("setup")
        call: pytest.TestReport | None = state.get("call")
        teardown: pytest.TestReport = state["teardown"]
        outcome, longrepr = _outcome(setup, call, teardown)
        setup_s = setup.duration if setup else 0.0
        own_s = (call.duration if call else 0.0) + teardown.duration
        module = module_of(node_id)
        module_setup_s = 0.0
        if module != self.last_module:
            # The first test of a module in this process pays the module-scoped fixtures
            # in its setup phase; history learns that cost apart from the test's own.
            module_setup_s = setup_s
            self.last_module = module
        else:
            own_s += setup_s
        output = "".join(
            f"--- {name} ---\n{content}\n"
            for report in (setup, call, teardown)
            if report is not None
            for name, content in report.sections
        )
        return {
            "type": "result",
            **self.stamp,
            "node_id": node_id,
            "outcome": outcome,
            "duration_s": own_s,
            "module_setup_s": module_setup_s,
            "longrepr": truncate(longrepr, self.limit_bytes),
            "output": truncate(output, self.limit_bytes),
            "started_at": state["started_at"],
            "finished_at": time.time(),
        }


def _outcome(
    setup: pytest.TestReport | None,
    call: pytest.TestReport | None,
    teardown: pytest.TestReport,
) -> tuple[str, str]:
    """Map pytest's three phase reports onto one farm outcome and its text."""
    if setup is not None and setup.failed:
        return "error", str(setup.longrepr)
    if setup is not None and setup.skipped:
        return _skip(setup)
    if call is not None:
        if call.failed:
            return "failed", str(call.longrepr)
        if call.skipped:
            return _skip(call)
        if hasattr(call, "wasxfail"):
            return "xpassed", str(call.wasxfail)
    if teardown.failed:
        return "error", str(teardown.longrepr)
    return "passed", ""


def _skip(report: pytest.TestReport) -> tuple[str, str]:
    if hasattr(report, "wasxfail"):
        return "xfailed", str(report.wasxfail)
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return "skipped", str(longrepr[2])
    return "skipped", str(longrepr)
