"""pytest's cache options in farm's collection: read, then turned off.

``--lf``, ``--ff``, ``--nf``, ``--lfnf`` and ``--sw`` (with ``--sw-skip`` and
``--sw-reset``) are answered from farm's store (:mod:`farm.scheduler.last_failed`),
not from the submitter's ``.pytest_cache``: the collection subprocess reads them as
pytest resolved them (command line and ``addopts``) in its first
``pytest_configure``, then turns them off before pytest's cacheprovider and stepwise
plugins make their own (their ``pytest_configure`` hooks run after it), so the
collection is the whole suite and nothing is deselected or reordered there. The
workers' test processes run without the cacheprovider, and accept the options
without acting on them (:mod:`farm.worker.cache_options`).
"""

from __future__ import annotations

import pytest

# pytest's dests of the options that make the cacheprovider or stepwise plugins act.
_ACTING = ("lf", "failedfirst", "newfirst", "stepwise", "stepwise_skip", "stepwise_reset")


def take_rerun_options(config: pytest.Config) -> dict[str, object]:
    """The cache options' facts (see :class:`farm.core.pytest_options.PytestOptions`),
    each then turned off for pytest's own plugins."""
    option = config.option

    def given(name: str) -> bool:
        return bool(getattr(option, name, False))

    facts: dict[str, object] = {
        "last_failed": given("lf"),
        "failed_first": given("failedfirst"),
        "new_first": given("newfirst"),
        "last_failed_no_failures": str(getattr(option, "last_failed_no_failures", "all")),
        # pytest's stepwise plugin: --sw-skip and --sw-reset imply --sw.
        "stepwise": given("stepwise") or given("stepwise_skip") or given("stepwise_reset"),
        "stepwise_skip": given("stepwise_skip"),
        "stepwise_reset": given("stepwise_reset"),
    }
    for name in _ACTING:
        if hasattr(option, name):
            setattr(option, name, False)
    return facts


def initial_files(session: pytest.Session, modules: list[str]) -> list[str]:
    """The test files of ``modules`` (node ids) named on the command line."""
    root = session.config.rootpath
    return [module for module in dict.fromkeys(modules) if session.isinitpath(root / module)]
