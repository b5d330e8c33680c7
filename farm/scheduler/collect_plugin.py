"""pytest plugin for collection: writes the collected node ids and where they live.

Loaded with ``-p farm.scheduler.collect_plugin --farm-collect-out FILE`` into a
``--collect-only`` run. The file gets one JSON object: ``rootdir``, ``inifile``
(or ""), ``node_ids`` in collection order, ``modules`` (the test files, in
collection order), ``errors`` (``{where, longrepr}`` for each collector that failed),
``deselected`` and ``warnings`` (counts, as pytest's summary line gives them),
and ``options``, the facts of :class:`farm.core.pytest_options.PytestOptions`.

A collector that skipped itself (``pytest.importorskip`` or ``pytest.skip(...,
allow_module_level=True)`` at module level) is an entry of ``node_ids`` under its
own node id, after the tests, as pytest counts it as one skipped test.

With ``--farm-discover`` the test files are found but not imported: ``modules``
is filled and ``node_ids`` stays empty. That costs pytest's start-up and a walk of
the tree, not the import of every test module.
"""

from __future__ import annotations

import json

import pytest

_errors: list[dict[str, str]] = []
_modules: list[str] = []
_skipped: list[str] = []
_counts = {"deselected": 0, "warnings": 0}


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
        _errors.append({"where": report.nodeid, "longrepr": str(report.longrepr)})
    elif report.skipped:
        _skipped.append(report.nodeid)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _counts["deselected"] += len(items)


def pytest_warning_recorded(warning_message: object, when: str) -> None:
    _counts["warnings"] += 1


def _reportchars(config: pytest.Config) -> str:
    """The ``-r`` characters pytest's terminal reporter will act on."""
    try:
        from _pytest.terminal import getreportopt
    except ImportError:  # a pytest that moved it: the option as given
        return str(config.getoption("reportchars", "fE"))
    return str(getreportopt(config))


def _options(config: pytest.Config) -> dict[str, object]:
    """The facts of :class:`farm.core.pytest_options.PytestOptions`, as pytest resolved them."""
    return {
        "maxfail": int(config.getoption("maxfail", 0) or 0),
        "reportchars": _reportchars(config),
    }


def pytest_collection_finish(session: pytest.Session) -> None:
    out = session.config.getoption("farm_collect_out")
    if out is None:
        return
    config = session.config
    data = {
        "rootdir": str(config.rootpath),
        "inifile": str(config.inipath) if config.inipath else "",
        "node_ids": [item.nodeid for item in session.items] + _skipped,
        "modules": list(dict.fromkeys(_modules)),  # a doctest module and a test module
        "errors": list(_errors),
        **_counts,
        "options": _options(config),
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f)
