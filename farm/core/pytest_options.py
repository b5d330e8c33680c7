"""What the suite's pytest options change in how farm runs and reports a suite.

The options are resolved by pytest itself on the submitter (the command line after
``--`` plus the ini file's ``addopts``), in the collection subprocess, and travel as
*facts*: a flat JSON object written by the collection plugin and kept in the
collection cache for warm runs. A fact missing from an older cache entry takes the
field's default, so adding an option never invalidates a cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# pytest-timeout's environment variable: what pytest resolves depends on it, so a
# run's collection is cached under it, and each test process gets the run's.
PYTEST_TIMEOUT_ENV = "PYTEST_TIMEOUT"


@dataclass(frozen=True)
class PytestOptions:
    """The options, as pytest resolved them, that farm acts on itself.

    ``maxfail`` is ``-x``/``--maxfail`` (0: never stop); ``reportchars`` the
    short-summary characters of ``-r`` after pytest expands ``a``, ``A`` and ``N``
    (with ``w`` when the warnings summary is on).

    How the end-of-run text looks: ``verbose`` is ``-v`` minus ``-q`` (-1 under
    ``-q``); ``tbstyle`` is ``--tb``; ``durations`` is ``--durations`` (None: not
    asked; 0: every duration), ``durations_min`` its ``--durations-min`` (None: not
    given); ``foldskipped`` is off under ``--no-fold-skipped``; ``xfail_tb`` is
    ``--xfail-tb``; ``no_summary`` is ``--no-summary``; ``force_short_summary``
    is ``--force-short-summary``.

    pytest-timeout's settings, when the plugin is active (see
    :mod:`farm.worker.deadline`): ``timeout_s`` is its per-test limit from
    ``--timeout``, ``PYTEST_TIMEOUT`` or the ``timeout`` ini setting, in that order
    (None: none set, or no plugin; 0: no limit); ``timeout_method`` is
    ``--timeout-method``/``timeout_method`` (``signal`` or ``thread``; "": no
    plugin); ``timeout_func_only`` is ``timeout_func_only``.

    The shuffling plugins (see :mod:`farm.core.seeds`): ``randomly_seed`` is
    pytest-randomly's ``--randomly-seed`` as given (``default``, ``last`` or a
    number; "": the plugin is not active); ``random_order_seed`` is
    pytest-random-order's ``--random-order-seed`` when it reorders (``default``
    when not given; "": it does not); ``seed`` is the run's seed for whichever of
    them was left to chance (None: none was).

    pytest-cov's options, when the plugin is active and ``--no-cov`` is not given
    (see :mod:`farm.run.coverage_report`): ``cov_sources`` the ``--cov=SOURCE``
    values and ``cov_all`` a bare ``--cov`` (no source filter); ``cov_reports``
    each ``--cov-report`` as ``type`` or ``type:dest`` (``""`` for
    ``--cov-report=``; none given: pytest-cov's default, ``term``);
    ``cov_fail_under``, ``cov_branch`` and ``cov_precision`` as given (None: the
    coverage config decides); ``cov_config`` is ``--cov-config``.

    pytest's cache options, which farm answers from its store (see
    :mod:`farm.scheduler.last_failed`): ``last_failed`` is ``--lf``,
    ``failed_first`` ``--ff``, ``new_first`` ``--nf``, ``last_failed_no_failures``
    ``--lfnf`` (``all`` or ``none``); ``stepwise`` is ``--sw`` (or implied by
    ``--sw-skip``/``--sw-reset``), ``stepwise_skip`` ``--sw-skip``,
    ``stepwise_reset`` ``--sw-reset``; ``initial_files`` are the collected test
    files named on the command line (pytest's ``--lf`` keeps all their tests).
    """

    maxfail: int = 0
    reportchars: str = "fE"
    verbose: int = 0
    tbstyle: str = "auto"
    durations: int | None = None
    durations_min: float | None = None
    foldskipped: bool = True
    xfail_tb: bool = False
    no_summary: bool = False
    force_short_summary: bool = False
    timeout_s: float | None = None
    timeout_method: str = ""
    timeout_func_only: bool = False
    randomly_seed: str = ""
    random_order_seed: str = ""
    seed: int | None = None
    cov_sources: tuple[str, ...] = ()
    cov_all: bool = False
    cov_reports: tuple[str, ...] = ()
    cov_fail_under: float | None = None
    cov_branch: bool | None = None
    cov_config: str = ".coveragerc"
    cov_append: bool = False
    no_cov_on_fail: bool = False
    cov_precision: int | None = None
    last_failed: bool = False
    failed_first: bool = False
    new_first: bool = False
    last_failed_no_failures: str = "all"
    stepwise: bool = False
    stepwise_skip: bool = False
    stepwise_reset: bool = False
    initial_files: tuple[str, ...] = ()

    @property
    def coverage(self) -> bool:
        """Whether the run measures coverage with pytest-cov."""
        return self.cov_all or bool(self.cov_sources)

    def to_facts(self) -> dict[str, Any]:
        """The options as one flat JSON object."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> PytestOptions:
        """The options of ``facts``; a missing fact takes its default.

        Raises ValueError (or TypeError) on a fact of the wrong type, so a damaged
        cache entry is read as no entry.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in facts:
                values[f.name] = _typed(f.name, facts[f.name], getattr(cls(), f.name))
        return cls(**values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _typed(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the field's ``default`` (None allows None, a number or
    a bool)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if default is None and (value is None or number or isinstance(value, bool)):
        return value
    if isinstance(default, bool) and isinstance(value, bool):
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool) and number:
        return type(default)(value)
    if isinstance(default, str) and isinstance(value, str):
        return value
    strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(default, tuple) and strings:
        return tuple(value)
    raise ValueError(f"pytest option fact {name!r} has the wrong type: {value!r}")
