"""The pytest plugin loaded into the test process: runs one shard, reports each test.

It runs inside untrusted test code, so it knows nothing of Redis or the database:
it writes one JSON line per event to a file descriptor that the trusted runner
(:mod:`worker.runner`) reads and forwards. Lines:

- ``{"e": "start", "node_id": ...}`` when a test begins (so a crash can be pinned on it)
- ``{"e": "result", "node_id", "outcome", "duration_s", "module_setup_s", "longrepr",
  "output", "started_at", "finished_at"}`` when its teardown is done
- ``{"e": "collect_error", "where", "longrepr"}`` for a module that failed to import

Options: ``--farm-shard FILE`` (JSON list of node ids, in run order) and
``--farm-report-fd N``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

_LIMIT_BYTES = 64 * 1024


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("farm")
    group.addoption("--farm-shard", default=None, help="JSON file of node ids to run")
    group.addoption("--farm-report-fd", type=int, default=None, help="fd for result lines")
    group.addoption("--farm-limit-bytes", type=int, default=_LIMIT_BYTES)


def pytest_configure(config: pytest.Config) -> None:
    shard_file = config.getoption("farm_shard")
    fd = config.getoption("farm_report_fd")
    if shard_file is not None and fd is not None:
        config.pluginmanager.register(
            ShardReporter(shard_file, fd, config.getoption("farm_limit_bytes")), "farm-shard"
        )


def truncate(text: str, limit_bytes: int) -> str:
    """Cut ``text`` to about ``limit_bytes`` of UTF-8, saying how much was cut."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit_bytes:
        return text
    kept = data[:limit_bytes].decode("utf-8", "ignore")
    return f"{kept}\n[farm: truncated {len(data) - limit_bytes} of {len(data)} bytes]"


class ShardReporter:
    """Orders the collected items as the shard says and streams their reports."""

    def __init__(self, shard_file: str, fd: int, limit_bytes: int) -> None:
        with open(shard_file, encoding="utf-8") as f:
            self.order: list[str] = json.load(f)
        self.fd = fd
        self.limit_bytes = limit_bytes
        self.phases: dict[str, dict[str, Any]] = {}
        self.last_module = ""

    def _emit(self, data: dict[str, Any]) -> None:
        line = (json.dumps(data, separators=(",", ":")) + "\n").encode("utf-8", "surrogateescape")
        while line:
            written = os.write(self.fd, line)
            line = line[written:]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        position = {node_id: index for index, node_id in enumerate(self.order)}
        chosen = [item for item in items if item.nodeid in position]
        chosen.sort(key=lambda item: position[item.nodeid])
        dropped = [item for item in items if item.nodeid not in position]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = chosen

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._emit(
                {
                    "e": "collect_error",
                    "where": report.nodeid,
                    "longrepr": truncate(str(report.longrepr), self.limit_bytes),
                }
            )

    def pytest_runtest_logstart(self, nodeid: str, location: object) -> None:
        self.phases[nodeid] = {"started_at": time.time()}
        self._emit({"e": "start", "node_id": nodeid})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.phases.setdefault(report.nodeid, {"started_at": time.time()})
        state[report.when] = report
        if report.when == "teardown":
            self._emit(self._result(report.nodeid, state))
            del self.phases[report.nodeid]

    def _result(self, node_id: str, state: dict[str, Any]) -> dict[str, Any]:
        setup: pytest.TestReport | None = state.get("setup")
        call: pytest.TestReport | None = state.get("call")
        teardown: pytest.TestReport = state["teardown"]
        outcome, longrepr = _outcome(setup, call, teardown)
        setup_s = setup.duration if setup else 0.0
        own_s = (call.duration if call else 0.0) + teardown.duration
        module = node_id.split("::", 1)[0]
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
            "e": "result",
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
