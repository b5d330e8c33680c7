"""``farm ci``: one step in any CI job.

It reads the change from the CI system's variables (GitHub Actions, GitLab CI,
Jenkins, Buildkite, CircleCI: :mod:`farm.core.ci_context`), else from git, flags
overriding both (:mod:`farm.run.ci_change`); then runs the suite as ``farm run``
does, on the farm the settings name or on an embedded one, with plain progress
lines and no colour, as CI logs are no terminal. It writes JUnit XML
(``farm-junit.xml`` unless ``--junit-xml`` says where) and prints the summary.

It exits with the verdict of the change over all its runs, as ``farm change show``
takes it: 0 passed or flaky, 1 failed, 3 error; pytest's own codes where the run
itself says so: 2 interrupted or collection failed, 4 usage, 5 no tests.

In GitHub Actions it also appends a job summary to ``$GITHUB_STEP_SUMMARY``
(:mod:`farm.report.step_summary`) and prints an ``::error`` workflow command per
failure (:mod:`farm.report.workflow_commands`). GitHub reads no workflow command
from what the run prints before those: test output cannot issue one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from farm.cli.interrupts import SignalInterrupt, interrupt_on_signals, interrupted
from farm.cli.options import common_options, pytest_args, settings_from, warn
from farm.cli.run_command import REPORT_PATH, in_writable_folder, run_and_report, submit_options
from farm.cli.run_options import run_options
from farm.core import defaults
from farm.core.ci_context import CiSystem
from farm.core.domain import ExitCode, RunSummary, Verdict
from farm.core.errors import FarmError, NoTestsCollected
from farm.core.settings import Settings
from farm.report.workflow_commands import failure_commands, resume_commands, stop_commands

if TYPE_CHECKING:
    from farm.core.change_verdict import ChangeVerdict
    from farm.report.step_summary import Links
    from farm.run.ci_change import CiChange
    from farm.run.request import Finished

# The run's own exit codes the change's verdict replaces: the others (interrupted,
# usage, no tests) say something about this run that the change's runs cannot.
_VERDICT_DECIDES = frozenset({ExitCode.OK, ExitCode.TESTS_FAILED, ExitCode.INFRA_ERROR})


@click.command()
@click.argument("paths", nargs=-1)
@submit_options
@click.option(
    "--junit-xml",
    type=REPORT_PATH,
    callback=in_writable_folder,
    default=defaults.CI_JUNIT_XML,
    show_default=True,
    help="Write JUnit XML here.",
)
@click.option(
    "--json",
    "json_path",
    type=REPORT_PATH,
    callback=in_writable_folder,
    help="Write a JSON report.",
)
@click.option(
    "--pull-request",
    type=click.IntRange(min=1),
    metavar="N",
    help="The change's pull (merge) request [from the CI].",
)
@click.option("--build-url", metavar="URL", help="This build's page [from the CI].")
@run_options
@common_options
def ci(
    paths: tuple[str, ...],
    junit_xml: str,
    json_path: str | None,
    pull_request: int | None,
    build_url: str | None,
    change_sha: str | None,
    branch: str | None,
    repository: str | None,
    **flags: Any,
) -> None:
    """Run the tests under PATHS for the change this CI job builds; options after
    -- go to pytest. Exits with the change's verdict: 0 passed or flaky, 1 failed,
    3 error."""
    from farm.core.ci_context import detect_ci, read_github_event
    from farm.run.ci_change import ci_change
    from farm.run.coverage_report import require_coverage

    settings = settings_from(**flags)
    require_coverage(any(arg.startswith("--cov") for arg in pytest_args()))  # before any work
    env = os.environ
    context = detect_ci(env, read_github_event(env))
    found = ci_change(
        Path.cwd(),
        env,
        context,
        change_sha=change_sha,
        branch=branch,
        repository=repository,
        pull_request=None if pull_request is None else str(pull_request),
        build_url=build_url,
    )
    click.echo(change_line(found), err=True)
    step = CiStep(settings, found, env)
    received: list[int] = []
    try:
        with interrupt_on_signals() as received:
            try:
                with step.commands_stopped():
                    summary = run_and_report(
                        settings, paths, None, found.change, None, junit_xml, json_path,
                        plain=True, on_report=step.reported,
                    )  # fmt: skip
            except FarmError as e:
                step.failed(e)
                raise
            finally:
                step.annotate()
    except SignalInterrupt:
        raise interrupted(received) from None
    if received or summary.verdict is Verdict.INTERRUPTED:
        raise interrupted(received)
    if step.verdict is not None:
        from farm.report.text import terminal_safe

        click.echo(f"farm ci: change verdict {terminal_safe(step.verdict.reason)}")
    sys.exit(int(step.exit_code(summary)))


class CiStep:
    """What ``farm ci`` adds to a run for the CI system: the change's verdict, the
    job summary and the annotations."""

    def __init__(self, settings: Settings, found: CiChange, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.found = found
        self.github = found.system is CiSystem.GITHUB_ACTIONS
        self.summary_path = env.get("GITHUB_STEP_SUMMARY", "").strip()
        self.finished: Finished | None = None
        self.verdict: ChangeVerdict | None = None

    @contextlib.contextmanager
    def commands_stopped(self) -> Iterator[None]:
        """Within, GitHub Actions reads no workflow command from the output."""
        if not self.github:
            yield
            return
        token = secrets.token_hex(16)
        click.echo(stop_commands(token))
        try:
            yield
        finally:
            click.echo(resume_commands(token))

    def reported(self, finished: Finished) -> None:
        """The run's summary is printed: take the change's verdict, write the job summary."""
        self.finished = finished
        self.verdict = self._change_verdict()
        if self.summary_path:
            from farm.report.step_summary import step_summary
            from farm.run.ci_change import folder_in_repository

            summary = finished.summary
            self._write_summary(
                step_summary(
                    summary,
                    verdict=self.verdict,
                    change=self.found.change,
                    links=self._links(),
                    estimates_s=finished.estimates_s,
                    path_prefix=folder_in_repository(summary.rootdir),
                )
            )

    def failed(self, error: FarmError) -> None:
        """The run ended in ``error`` before it had a summary to report."""
        if self.finished is not None or not self.summary_path:
            return
        from farm.report.step_summary import error_summary

        verdict = Verdict.NO_TESTS if isinstance(error, NoTestsCollected) else Verdict.ERROR
        message = f"{verdict.value}: {error}"
        self._write_summary(
            error_summary(message, change=self.found.change, links=self._links(), verdict=verdict)
        )

    def annotate(self) -> None:
        """In GitHub Actions, an ``::error`` line per failure of the reported run."""
        if not self.github or self.finished is None:
            return
        from farm.run.ci_change import folder_in_repository

        summary = self.finished.summary
        prefix = folder_in_repository(summary.rootdir)
        for line in failure_commands(summary, path_prefix=prefix):
            click.echo(line)

    def exit_code(self, summary: RunSummary) -> ExitCode:
        """The change's verdict's code, unless the run's own says more (see the module)."""
        from farm.core.verdict import summary_exit_code

        code = summary_exit_code(summary)
        if self.verdict is None or code not in _VERDICT_DECIDES:
            return code
        return self.verdict.exit_code

    def _change_verdict(self) -> ChangeVerdict | None:
        from farm.cli.change import ShownRun, verdict_of
        from farm.store import ResultStore

        change = self.found.change
        with ResultStore.open(self.settings.database_url_or_default) as store:
            runs = store.change_runs(change.commit_sha, repository=change.repository)
            if runs is None:
                return None
            shown = [ShownRun(record, store.final_results(record.run_id)) for record in runs.runs]
        return verdict_of(shown, flaky=self.settings.flaky)

    def _links(self) -> Links:
        from farm.report.step_summary import Links

        return Links(
            commit_url=self.found.commit_url,
            build_url=self.found.build_url,
            dashboard_url=self.settings.dashboard_url,
        )

    def _write_summary(self, markdown: str) -> None:
        try:
            with open(self.summary_path, "a", encoding="utf-8") as file:
                file.write(markdown)
        except OSError as e:
            warn(f"cannot write the job summary to {self.summary_path}: {e.strerror or e}")


def change_line(found: CiChange) -> str:
    """``farm ci: GitHub Actions, change REPO SHA on branch B, pull request N``."""
    from farm.report.text import terminal_safe

    change = found.change
    facts = [f"change {change.repository} {change.commit_sha}"]
    if change.branch:
        facts.append(f"branch {change.branch}")
    if change.pull_request:
        facts.append(f"pull request {change.pull_request}")
    if found.build_url:
        facts.append(f"build {found.build_url}")
    return terminal_safe(f"farm ci: {found.system.label}: {', '.join(facts)}")
