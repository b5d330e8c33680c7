"""pytest plugin for ``farm run --isolate``'s trials: writes one test's outcome.

Loaded with ``-p farm.run.outcome_plugin --farm-outcome-of=NODE_ID
--farm-outcome-out=FILE`` into a plain pytest run of some modules and then the
test. At the session's end the file gets one JSON object, ``{"outcome",
"longrepr"}``, the test's reports folded as a farm worker folds them
(:mod:`farm.worker.reports`: a failed subtest fails the test, an error in setup or
teardown is ``error``); nothing if the test did not run.
"""

from __future__ import annotations

import json
import time

import pytest

from farm.worker.reports import TestReports, category_of


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("farm")
    group.addoption("--farm-outcome-of", default=None, help="node id whose outcome to write")
    group.addoption("--farm-outcome-out", default=None, help="file to write it to")


def pytest_configure(config: pytest.Config) -> None:
    node_id = config.getoption("farm_outcome_of")
    out = config.getoption("farm_outcome_out")
    if node_id and out:
        config.pluginmanager.register(OutcomeWriter(config, node_id, out), "farm-outcome")


class OutcomeWriter:
    """Keeps the reports of one test and writes its outcome when the session ends."""

    def __init__(self, config: pytest.Config, node_id: str, out: str) -> None:
        self.config = config
        self.node_id = node_id
        self.out = out
        self.reports: TestReports | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid != self.node_id:
            return
        if self.reports is None:
            self.reports = TestReports(started_at=time.time())
        self.reports.add(report, category_of(self.config, report))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.reports is None:
            return
        outcome, longrepr = self.reports.outcome()
        with open(self.out, "w", encoding="utf-8") as out:
            json.dump({"outcome": outcome, "longrepr": longrepr}, out)
