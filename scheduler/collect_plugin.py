"""pytest plugin for collection: writes the collected node ids and where they live.

Loaded with ``-p scheduler.collect_plugin --farm-collect-out FILE`` into a
``--collect-only`` run. The file gets one JSON object: ``rootdir``, ``inifile``
(or ""), ``node_ids`` in collection order, ``modules`` (the test files, in
collection order) and ``errors`` (one text per module that failed to collect).

With ``--farm-discover`` the test files are found but not imported: ``modules``
is filled and ``node_ids`` stays empty. That costs pytest's start-up and a walk of
the tree, not the import of every test module.
"""

from __future__ import annotations

import json

import pytest

_errors: list[str] = []
_modules: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("farm")
    group.addoption("--farm-collect-out", default=None)
    group.addoption("--farm-discover", action="store_true", default=False)


def _is_test_file(collector: pytest.Collector) -> bool:
    # pytest 7's Package is a File (a Module); pytest 8's is a Directory.
    return isinstance(collector, pytest.File) and not isinstance(collector, pytest.Package)


def pytest_collectstart(collector: pytest.Collector) -> None:
    if _is_test_file(collector):
        _modules.append(collector.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport | None:
    if _is_test_file(collector) and collector.config.getoption("farm_discover"):
        # Found, not imported: the report says "collected nothing" and pytest goes on.
        return pytest.CollectReport(collector.nodeid, "passed", None, [])
    return None


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _errors.append(f"{report.nodeid or '<session>'}:\n{report.longrepr}")


def pytest_collection_finish(session: pytest.Session) -> None:
    out = session.config.getoption("farm_collect_out")
    if out is None:
        return
    config = session.config
    data = {
        "rootdir": str(config.rootpath),
        "inifile": str(config.inipath) if config.inipath else "",
        "node_ids": [item.nodeid for item in session.items],
        "modules": list(_modules),
        "errors": list(_errors),
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f)
