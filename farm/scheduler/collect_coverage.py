"""pytest-cov in the collection subprocess: read its options, measure nothing.

Part of :mod:`farm.scheduler.collect_plugin` (which imports the hook below, so
pytest finds it there). The collection imports every test module; were pytest-cov
to measure it, it would erase and write the suite's ``.coverage`` and print a report
of a run that ran no test. Its options are what the run reports by
(:class:`farm.core.pytest_options.PytestOptions`), read as pytest-cov resolved them.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    options = early_config.known_args_namespace
    if hasattr(options, "no_cov"):
        # pytest-cov makes its plugin in this hook, from these early options: told
        # --no-cov, it starts nothing, saves nothing and reports nothing. The
        # options the run reports by are the full parse's, which this leaves alone.
        options.no_cov = True
    return (yield)


def coverage_facts(config: pytest.Config) -> dict[str, object]:
    """pytest-cov's options as facts of ``PytestOptions``; none without the plugin
    or under ``--no-cov``."""
    option = config.option
    if not hasattr(option, "cov_source") or getattr(option, "no_cov", False):
        return {}
    sources = list(getattr(option, "cov_source", None) or [])
    reports = [
        kind if dest is None else f"{kind}:{dest}"
        for kind, dest in dict(getattr(option, "cov_report", None) or {}).items()
    ]
    fail_under = getattr(option, "cov_fail_under", None)
    branch = getattr(option, "cov_branch", None)
    precision = getattr(option, "cov_precision", None)
    return {
        "cov_sources": [str(s) for s in sources if s is not True],
        "cov_all": any(s is True for s in sources),
        "cov_reports": reports,
        "cov_fail_under": fail_under,
        "cov_branch": None if branch is None else bool(branch),
        "cov_config": str(getattr(option, "cov_config", ".coveragerc")),
        "cov_append": bool(getattr(option, "cov_append", False)),
        "no_cov_on_fail": bool(getattr(option, "no_cov_on_fail", False)),
        "cov_precision": None if precision is None else int(precision),
    }
