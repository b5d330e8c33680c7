"""pytest plugin for the test process: pytest's cache options, accepted and inert.

The test process runs with ``-p no:cacheprovider`` (which blocks the stepwise
plugin too), so a shard never reads or writes a ``.pytest_cache`` in the tree it
runs in. Its command line still carries the suite's options and its ini file's
``addopts``, where ``--lf``, ``--ff``, ``--nf``, ``--lfnf`` and ``--sw`` may stand:
farm chose the shard's tests with them already (:mod:`farm.scheduler.last_failed`).
This plugin declares them, with pytest's names, destinations and choices, only
while those plugins are blocked, so pytest accepts them and nothing acts on them.
"""

from __future__ import annotations

import pytest

# (flags, dest): pytest's switches of the cacheprovider and stepwise plugins.
_SWITCHES = (
    (("--lf", "--last-failed"), "lf"),
    (("--ff", "--failed-first"), "failedfirst"),
    (("--nf", "--new-first"), "newfirst"),
    (("--cache-clear",), "cacheclear"),
    (("--sw", "--stepwise"), "stepwise"),
    (("--sw-skip", "--stepwise-skip"), "stepwise_skip"),
    (("--sw-reset", "--stepwise-reset"), "stepwise_reset"),
)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.is_blocked("cacheprovider"):
        return  # pytest's own plugins declare them
    group = parser.getgroup("farm-cache", "pytest's cache options (farm answers them)")
    for flags, dest in _SWITCHES:
        group.addoption(*flags, action="store_true", default=False, dest=dest)
    group.addoption(
        "--lfnf",
        "--last-failed-no-failures",
        dest="last_failed_no_failures",
        choices=("all", "none"),
        default="all",
    )
    parser.addini("cache_dir", default=".pytest_cache", help="Cache directory path (unused)")
