"""pytest plugin for collection: writes the collected node ids and where they live.

Loaded with ``-p farm.scheduler.collect_plugin --farm-collect-out FILE`` into a
``--collect-only`` run. The file gets one JSON object: ``rootdir``, ``inifile``
(or ""), ``node_ids`` in collection order, ``modules`` (the test files, in
collection order), ``errors`` (``{where, longrepr}`` for each collector that failed),
``deselected`` and ``warnings`` (counts, as pytest's summary line gives them),
``options``, the facts of :class:`farm.core.pytest_options.PytestOptions`, and
``warnings_shown``, ``[location, message]`` of each warning as pytest's warnings
summary shows it, and ``skips``, ``[node id, path, line, reason]`` of each collector
that skipped itself.

A collector that skipped itself (``pytest.importorskip`` or ``pytest.skip(...,
allow_module_level=True)`` at module level) is an entry of ``node_ids`` under its
own node id, after the tests, as pytest counts it as one skipped test.

With ``--farm-discover`` the test files are found but not imported: ``modules``
is filled and ``node_ids`` stays empty. That costs pytest's start-up and a walk of
the tree, not the import of every test module.

With ``--farm-seed N`` the plugins that shuffle tests get the run's seed wherever the
user's options leave theirs to chance (see :mod:`farm.core.seeds`).
"""

from __future__ import annotations

import json
import os.path
import warnings
from typing import Any

import pytest

from farm.core.seeds import SEED_OPTION, apply_seed, given_seeds, shufflers
from farm.scheduler.collect_coverage import (  # the hook is this plugin's too
    coverage_facts,
    pytest_load_initial_conftests,  # noqa: F401
)
from farm.scheduler.collect_rerun import initial_files, take_rerun_options

_errors: list[dict[str, str | None]] = []
_modules: list[str] = []
_skipped: list[str] = []
_skips: list[list[Any]] = []  # [node id, path, line, reason] of each, for pytest's summary
_counts = {"deselected": 0, "warnings": 0}
_warnings: list[Any] = []  # pytest's WarningReport of each, for its summary
_seeds: dict[str, str] = {}  # the shuffling plugins' seed options, as given
_reruns: dict[str, object] = {}  # --lf, --ff, --nf, --sw as given: farm acts on them


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("farm")
    group.addoption("--farm-collect-out", default=None)
    group.addoption("--farm-discover", action="store_true", default=False)
    group.addoption(SEED_OPTION, type=int, default=None, help="the run's seed")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # First: the shuffling plugins replace their seed options in their own
    # pytest_configure, so the options as given are read, and the run's seed put
    # in, before they run.
    _seeds.update(given_seeds(config.option, shufflers(config.pluginmanager)))
    seed = config.getoption("farm_seed")
    if seed is not None:
        apply_seed(config.option, seed)
    # Also before pytest's cacheprovider and stepwise plugins, which would act on these.
    _reruns.update(take_rerun_options(config))


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
    longrepr = report.longrepr
    if report.failed:
        # The message pytest's short summary gives the error: the crash's, if any.
        message = getattr(getattr(longrepr, "reprcrash", None), "message", None)
        if isinstance(longrepr, str):
            message = longrepr
        _errors.append({"where": report.nodeid, "longrepr": str(longrepr), "message": message})
    elif report.skipped:
        _skipped.append(report.nodeid)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            path, lineno, reason = longrepr
            # Where pytest's short summary says the skip was: from the invocation folder.
            shown = os.path.relpath(str(path))  # this process runs in that folder
            _skips.append([report.nodeid, shown, lineno, str(reason)])


def pytest_deselected(items: list[pytest.Item]) -> None:
    _counts["deselected"] += len(items)


def pytest_warning_recorded(
    warning_message: warnings.WarningMessage, when: str, nodeid: str, location: object
) -> None:
    _counts["warnings"] += 1
    try:
        from _pytest.terminal import WarningReport
        from _pytest.warnings import warning_record_to_str
    except ImportError:  # a pytest that moved them: counted, not shown
        return
    message = warning_record_to_str(warning_message)
    fslocation = (warning_message.filename, warning_message.lineno)
    _warnings.append(WarningReport(message=message, nodeid=nodeid, fslocation=fslocation))


def _reportchars(config: pytest.Config) -> str:
    """The ``-r`` characters pytest's terminal reporter will act on."""
    try:
        from _pytest.terminal import getreportopt
    except ImportError:  # a pytest that moved it: the option as given
        return str(config.getoption("reportchars", "fE"))
    return str(getreportopt(config))


def _options(config: pytest.Config) -> dict[str, object]:
    """The facts of :class:`farm.core.pytest_options.PytestOptions`, as pytest resolved them."""
    option = config.option
    durations = getattr(option, "durations", None)
    durations_min = getattr(option, "durations_min", None)
    return {
        "maxfail": int(config.getoption("maxfail", 0) or 0),
        "reportchars": _reportchars(config),
        "verbose": _verbosity(config),
        "tbstyle": str(getattr(option, "tbstyle", "auto")),
        "durations": None if durations is None else int(durations),
        "durations_min": None if durations_min is None else float(durations_min),
        "foldskipped": bool(getattr(option, "fold_skipped", True)),
        "xfail_tb": bool(getattr(option, "xfail_tb", False)),
        "no_summary": bool(getattr(option, "no_summary", False)),
        "force_short_summary": bool(getattr(option, "force_short_summary", False)),
        **_timeout_facts(config),
        **_seeds,
        "seed": config.getoption("farm_seed") if any(_seeds.values()) else None,
        **coverage_facts(config),
        **_reruns,
    }


def _timeout_facts(config: pytest.Config) -> dict[str, object]:
    """pytest-timeout's settings for tests without a marker, as it resolves them
    itself (``--timeout``, then ``PYTEST_TIMEOUT``, then the ini file); none
    without the plugin."""
    resolve = getattr(config.pluginmanager.getplugin("timeout"), "get_env_settings", None)
    if resolve is None:
        return {}
    settings = resolve(config)
    timeout = settings.timeout
    return {
        "timeout_s": None if timeout is None else float(timeout),
        "timeout_method": str(settings.method),
        "timeout_func_only": bool(settings.func_only),
    }


def _verbosity(config: pytest.Config) -> int:
    """``-v`` minus ``-q`` as the user gave them: farm collects under ``-qq``, which
    counts unless a ``--verbosity`` given after it (on the command line) set it."""
    verbose = int(getattr(config.option, "verbose", 0) or 0)
    given = config.invocation_params.args
    if any(str(arg).startswith("--verbosity") for arg in given):
        return verbose
    return verbose + 2


def _warnings_shown(config: pytest.Config) -> list[list[str]]:
    """``[location, message]`` of each warning raised so far, as pytest's summary
    shows it (a location of None, which pytest leaves out, is "")."""
    return [[w.get_location(config) or "", w.message] for w in _warnings]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Written at the session's end, not when collection finishes: pytest records the
    # warnings raised while collecting only after its collection hooks returned.
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
        "options": {**_options(config), "initial_files": initial_files(session, _modules)},
        "warnings_shown": _warnings_shown(config),
        "skips": _skips,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f)
