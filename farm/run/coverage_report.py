"""A run's coverage: gathered from its shards, then reported as pytest-cov reports it.

A run whose pytest options ask for coverage (``--cov``, on the command line or in
the ini file's ``addopts``: :class:`farm.core.pytest_options.PytestOptions`) has a
:class:`RunCoverage`. Each shard's data is merged as it arrives
(:mod:`farm.run.coverage_combine`); at the end :meth:`RunCoverage.finish` does on
the submitter what pytest-cov's ``Central`` controller does at the end of
``pytest --cov``, with coverage.py's API and the same options, from the folder pytest
was invoked in: the combined data file where pytest-cov leaves it (coverage.py's
``data_file``, ``.coverage`` by default; kept and added to under ``--cov-append``),
the reports asked for, the total, and ``--cov-fail-under`` against the configured
precision. The config file is read as coverage.py reads it (``--cov-config``, by
default ``.coveragerc``, else ``setup.cfg``, ``tox.ini``, ``pyproject.toml``).

If any shard's data is missing, no figure is made, no report or data file is
written, and the reason is the result; with a fail-under the run fails.

coverage.py is imported only here and only for a run that measures coverage;
:func:`require_coverage` turns its absence into a usage error before any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.core.coverage_result import CoverageResult
from farm.core.domain import Verdict
from farm.core.errors import UsageError
from farm.core.messages import ShardCoverage
from farm.core.pytest_options import PytestOptions
from farm.core.verdict import Decision
from farm.run.coverage_combine import CoverageCombiner

if TYPE_CHECKING:
    from coverage import Coverage

_PASSING = (Verdict.PASSED, Verdict.FLAKY)


def require_coverage(wanted: bool) -> None:
    """Raise :class:`UsageError` if the run measures coverage and farm cannot report it."""
    if wanted and importlib.util.find_spec("coverage") is None:
        raise UsageError(
            "--cov needs coverage.py where farm runs: pip install 'pytest-farm[coverage]'"
        )


def judged(decision: Decision, coverage: CoverageResult | None) -> Decision:
    """``decision`` with the coverage's say: a total under ``--cov-fail-under``, or one
    that cannot be shown, fails a run that passed (pytest-cov makes pytest exit 1)."""
    failure = coverage.failure if coverage is not None else ""
    if not failure or decision.verdict not in _PASSING:
        return decision
    return dataclasses.replace(decision, verdict=Verdict.FAILED, message=failure)


class RunCoverage:
    """One run's coverage, from the first shard's data to the report.

    ``cwd`` is the folder pytest would have been invoked in (a ``--rev`` run's
    checkout), ``out_dir`` where relative report and data file names land (the
    invocation folder), ``local_root`` the submitter's tree the workers' paths map
    to, ``work_dir`` a folder of farm's for the data while it is merged.
    """

    def __init__(
        self,
        options: PytestOptions,
        *,
        cwd: Path,
        out_dir: Path,
        local_root: str,
        work_dir: Path,
    ) -> None:
        self.options = options
        self.cwd = cwd
        self.out_dir = out_dir
        self.combiner = CoverageCombiner(work_dir, local_root=local_root)

    def add(self, event: ShardCoverage) -> None:
        self.combiner.add(event)

    def close(self) -> None:
        self.combiner.close()

    def finish(self, *, lost: str, tests_failed: bool) -> CoverageResult:
        """The run's coverage, reported; ``lost`` says why some shard's data never
        came ("" when it all did), ``tests_failed`` whether any test failed."""
        from coverage.exceptions import CoverageException

        options = self.options
        incomplete = "; ".join(why for why in (lost, self.combiner.lost) if why)
        platforms = tuple(self.combiner.platforms)
        facts = CoverageResult(
            platforms=platforms,
            fail_under=options.cov_fail_under,
            precision=options.cov_precision or 0,
        )
        with _working_in(self.cwd):
            try:
                config = self._coverage(data_file=None).config
                if options.cov_fail_under is None:
                    facts = dataclasses.replace(facts, fail_under=config.fail_under)
                if options.cov_precision is None:
                    facts = dataclasses.replace(facts, precision=config.precision)
                if incomplete:
                    return dataclasses.replace(facts, incomplete=incomplete)
                data_file = self._dest(config.data_file)
                cov = self._save(data_file)
            except CoverageException as e:
                # pytest-cov would stop pytest with an internal error: no figure.
                return dataclasses.replace(facts, incomplete=f"coverage.py failed: {e}")
            facts = dataclasses.replace(facts, data_file=data_file)
            fail_under = facts.fail_under
            if tests_failed and options.no_cov_on_fail:
                return dataclasses.replace(facts, skipped=True)
            reports = _reports(options.cov_reports)
            if not (reports or fail_under):
                return facts  # pytest-cov reports nothing, and checks nothing
            return self._summary(cov, reports, facts)

    def _coverage(self, *, data_file: str | None, suffix: str | bool = True) -> Coverage:
        """A ``Coverage`` as pytest-cov makes it, from the same options."""
        import coverage

        options = self.options
        return coverage.Coverage(
            source=None if options.cov_all else list(options.cov_sources),
            branch=options.cov_branch,
            data_suffix=suffix,
            data_file=data_file,
            config_file=options.cov_config,
        )

    def _save(self, data_file: str) -> Coverage:
        """Write the run's data to ``data_file`` as pytest-cov's ``Central`` does: erased
        first unless ``--cov-append``, with any parallel data files there combined in;
        the ``Coverage`` to report from."""
        from coverage.sqldata import filename_suffix

        if not self.options.cov_append:
            self._coverage(data_file=data_file).erase()
        cov = self._coverage(data_file=data_file, suffix=f"{filename_suffix(True)}.combine")
        cov.load()
        cov.combine()
        cov.get_data().update(self.combiner.data)
        cov.save()
        return cov

    def _summary(
        self, cov: Coverage, reports: dict[str, str | None], facts: CoverageResult
    ) -> CoverageResult:
        """pytest-cov's summary: the total, then each report asked for, in its order."""
        from coverage.exceptions import CoverageException
        from coverage.results import display_covered, should_fail_under

        precision = facts.precision
        stream = io.StringIO()
        files: list[str] = []
        error = ""
        try:
            total = cov.report(
                ignore_errors=True, output_format="total", precision=precision, file=_NULL
            )
            self._write_reports(cov, reports, precision, stream, files)
        except CoverageException as e:
            error = f"Failed to generate report: {e}\n"
            total = 0.0
        fail_under = facts.fail_under
        below = fail_under is not None and should_fail_under(total, fail_under, precision)
        return dataclasses.replace(
            facts,
            report=stream.getvalue(),
            total=total,
            total_text=display_covered(total, precision),
            below=below,
            files=tuple(files),
            error=error,
        )

    def _write_reports(
        self,
        cov: Coverage,
        reports: dict[str, str | None],
        precision: int,
        stream: io.StringIO,
        files: list[str],
    ) -> None:
        """Each report pytest-cov's ``summary`` writes, with its words; relative
        destinations land in ``out_dir``."""
        config = cov.config
        if "term" in reports or "term-missing" in reports:
            cov.report(
                show_missing=("term-missing" in reports) or None,
                ignore_errors=True,
                file=stream,
                precision=precision,
                skip_covered=("skip-covered" in reports.values()) or None,
            )
        if "annotate" in reports:
            folder = reports["annotate"]
            cov.annotate(ignore_errors=True, directory=self._dest(folder) if folder else None)
            cov.report(ignore_errors=True, file=_NULL)
            if folder:
                stream.write(f"Coverage annotated source written to dir {folder}\n")
                files.append(folder)
            else:
                stream.write("Coverage annotated source written next to source\n")
        if "html" in reports:
            name = reports["html"] or str(config.html_dir)
            cov.html_report(ignore_errors=True, directory=self._dest(name))
            stream.write(f"Coverage HTML written to dir {name}\n")
            files.append(name)
        if "xml" in reports:
            name = reports["xml"] or str(config.xml_output)
            cov.xml_report(ignore_errors=True, outfile=self._dest(name))
            stream.write(f"Coverage XML written to file {name}\n")
            files.append(name)
        if "json" in reports:
            name = reports["json"] or str(config.json_output)
            cov.json_report(ignore_errors=True, outfile=self._dest(name))
            stream.write(f"Coverage JSON written to file {name}\n")
            files.append(name)
        markdown = (("markdown", "w", "written to"), ("markdown-append", "a", "appended to"))
        for kind, mode, words in markdown:
            if kind in reports:
                name = reports[kind] or "coverage.md"
                with open(self._dest(name), mode, encoding="utf-8") as out:
                    cov.report(ignore_errors=True, file=out, output_format="markdown")
                stream.write(f"Coverage Markdown information {words} file {name}\n")
                files.append(name)
        if "lcov" in reports:
            name = reports["lcov"] or str(config.lcov_output)
            cov.lcov_report(ignore_errors=True, outfile=self._dest(name))
            cov.report(ignore_errors=True, file=_NULL)
            stream.write(f"Coverage LCOV written to file {name}\n")
            files.append(name)

    def _dest(self, name: str) -> str:
        """Where a report or data file named ``name`` (as pytest-cov would be given it)
        is written: relative names in ``out_dir``."""
        return os.path.join(self.out_dir, os.path.expanduser(name))


def _reports(given: tuple[str, ...]) -> dict[str, str | None]:
    """``--cov-report`` values as pytest-cov's plugin keeps them: none given is
    ``term``, only ``--cov-report=`` is none at all."""
    if not given:
        return {"term": None}
    reports: dict[str, str | None] = {}
    for value in given:
        kind, _, dest = value.partition(":")
        reports[kind] = dest if dest else None
    if list(reports) == [""]:
        return {}
    return reports


class _Null:
    """Where pytest-cov sends a report it only wants the total of."""

    @staticmethod
    def write(text: str) -> int:
        return len(text)


_NULL: Any = _Null()


@contextlib.contextmanager
def _working_in(folder: Path) -> Iterator[None]:
    """Work from ``folder``, as pytest-cov works from its ``topdir``: coverage.py
    names files relative to it and reads its config file there."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
