"""pytest plugin for collection: writes the collected node ids and where they live.

Loaded with ``-p scheduler.collect_plugin --farm-collect-out FILE`` into a
``--collect-only`` run. The file gets one JSON object: ``rootdir``, ``inifile``
(or ""), ``node_ids`` in collection order and ``errors`` (one text per module
that failed to collect).
"""

from __future__ import annotations

import json

import pytest

_errors: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("farm").addoption("--farm-collect-out", default=None)


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
        "errors": list(_errors),
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f)
