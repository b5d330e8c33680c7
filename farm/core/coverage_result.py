"""What a run's coverage came to, as pytest-cov would have reported it.

Made on the submitter from every shard's coverage data (:mod:`farm.run.coverage_report`),
kept in the run's summary, printed by :mod:`farm.report.coverage_text` and written to
the JSON report. A run without ``--cov`` has none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CoverageResult:
    """The coverage part of a run's summary.

    ``incomplete`` says why some shard's data never arrived: then no figure is
    shown, no report or data file is written, and a ``fail_under`` fails the run
    (a pass that cannot be shown did not happen). ``skipped`` is
    ``--no-cov-on-fail`` after failing tests: the data file is written, nothing is
    reported. ``fail_under`` keeps the number as given (``90`` or ``90.0``), as
    pytest-cov prints it.
    """

    platforms: tuple[str, ...] = ()  # each test process's "platform linux, python 3.11.7-..."
    report: str = ""  # pytest-cov's text under its header: tables, "Coverage XML written ..."
    total: float | None = None  # percent covered, unrounded; None when not computed
    total_text: str = ""  # the total as coverage.py displays it at ``precision``
    precision: int = 0
    fail_under: float | None = None  # --cov-fail-under, else the config's fail_under
    below: bool = False  # coverage.py's rule: the total fails ``fail_under``
    files: tuple[str, ...] = ()  # the reports written, named as in the report text
    data_file: str = ""  # the combined data file, "" when none was written
    incomplete: str = ""
    error: str = ""  # "Failed to generate report: ...", as pytest-cov warns
    skipped: bool = False

    @property
    def requires(self) -> bool:
        """Whether a minimum total was asked for (a zero is no requirement)."""
        return self.fail_under is not None and self.fail_under > 0

    @property
    def failure(self) -> str:
        """The one-line reason the coverage fails the run; "" when it does not."""
        if self.skipped:
            return ""
        if self.incomplete and self.requires:
            return (
                f"coverage incomplete, so --cov-fail-under={self.fail_under} cannot be "
                f"shown met: {self.incomplete}"
            )
        if self.below and self.fail_under is not None:
            return (
                f"Coverage failure: total of {self.total_text} is less than "
                f"fail-under={self.fail_under:.{self.precision}f}"
            )
        return ""
