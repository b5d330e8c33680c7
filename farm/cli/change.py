"""``farm change show``: one change's verdict over all its runs, for people and CI gates.

A change is one commit of one repository (see :mod:`farm.run.change`); every run
started for it counts, and :mod:`farm.core.change_verdict` takes the verdict. The
exit code is the verdict's: 0 passed or flaky, 1 failed, 3 error (no run gave an
answer: run it again); an unknown commit is a usage error, 4.

``--json`` prints one object with the keys of :func:`change_json`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from farm.cli.options import common_options, settings_from
from farm.core import defaults
from farm.core.change_verdict import (
    ChangeRun,
    ChangeVerdict,
    change_verdict,
    findings_from_results,
    short_id,
)
from farm.core.domain import ChangeRef, FlakyPolicy, TestResult
from farm.core.errors import UsageError

if TYPE_CHECKING:
    from farm.store import ResultStore, RunRecord

# How a time is shown to people, in their local time.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class ShownRun:
    """One run of the change as shown: its record and its final results."""

    record: RunRecord
    final: Mapping[str, TestResult]

    @property
    def outcomes(self) -> dict[str, int]:
        """Outcome -> how many tests ended with it, by outcome name."""
        counted = Counter(result.outcome.value for result in self.final.values())
        return dict(sorted(counted.items()))


@click.group()
def change() -> None:
    """Show a change (one commit of one repository) and its verdict over all its runs."""


@change.command("show")
@click.argument("sha", required=False)
@click.option("--repository", metavar="NAME", help="The change's repository, if SHA is in several.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--flaky",
    type=click.Choice([policy.value for policy in FlakyPolicy]),
    help=f"What flaky tests make the change [{defaults.FLAKY.value}].",
)
@common_options
def change_show(sha: str | None, repository: str | None, as_json: bool, **flags: Any) -> None:
    """Show change SHA (a prefix will do; default: the latest change, of --project if
    given): its runs, verdict and failing tests. Exits 0 passed or flaky, 1 failed,
    3 error."""
    from farm.run.change import repository_name
    from farm.store import ResultStore

    settings = settings_from(**flags)
    wanted_repository = repository_name(repository) if repository else None
    with ResultStore.open(settings.database_url_or_default) as store:
        commit = sha.strip() if sha else _latest(store, settings.project or None)
        found = store.change_runs(commit, repository=wanted_repository)
        if found is None:
            where = f" of repository {wanted_repository}" if wanted_repository else ""
            raise UsageError(f"no change {commit!r}{where} in results store {store.url}")
        shown = [ShownRun(record, store.final_results(record.run_id)) for record in found.runs]
    verdict = verdict_of(shown, flaky=settings.flaky)
    if as_json:
        click.echo(json.dumps(change_json(found.change, verdict, shown), sort_keys=True))
    else:
        click.echo(format_change(found.change, verdict, shown))
    sys.exit(int(verdict.exit_code))


def _latest(store: ResultStore, project: str | None) -> str:
    latest = store.latest_change(project)
    if latest is None:
        of = f" of project {project!r}" if project else ""
        raise UsageError(f"no change{of} in results store {store.url} yet")
    return latest.commit_sha


def verdict_of(runs: Sequence[ShownRun], *, flaky: FlakyPolicy) -> ChangeVerdict:
    """The verdict of a change over its ``runs`` (oldest first), as shown here."""
    return change_verdict([_change_run(run) for run in runs], flaky=flaky)


def _change_run(shown: ShownRun) -> ChangeRun:
    record, final = shown.record, shown.final
    run = ChangeRun(
        run_id=record.run_id,
        created_at=record.created_at,
        verdict=record.verdict,
        message=record.message,
        tested=frozenset(final),
        findings=record.findings,
    )
    if run.concluded and run.findings is None:
        # Recorded without findings: its failing final results are its failures.
        return dataclasses.replace(run, findings=findings_from_results(final))
    return run


def change_json(
    ref: ChangeRef, verdict: ChangeVerdict, runs: Sequence[ShownRun]
) -> dict[str, object]:
    """The ``--json`` object: ``change`` (repository, commit_sha, branch, pull_request,
    author), ``verdict``, ``reason``, ``exit_code``, ``failed``, ``flaky`` and
    ``quarantined_failures`` (node ids), ``tests`` (with a result), ``runs_counted``
    (runs whose results count) and ``runs``: one object per run, oldest first, with
    ``run_id``, ``project``, ``created_at`` (unix seconds), ``state``, ``verdict``
    (null while it has none), ``message``, ``tests`` and ``outcomes`` (outcome ->
    tests whose final result it is)."""
    return {
        "change": {
            "repository": ref.repository,
            "commit_sha": ref.commit_sha,
            "branch": ref.branch,
            "pull_request": ref.pull_request,
            "author": ref.author,
        },
        "verdict": verdict.verdict.value,
        "reason": verdict.reason,
        "exit_code": int(verdict.exit_code),
        "failed": list(verdict.failed),
        "flaky": list(verdict.flaky),
        "quarantined_failures": list(verdict.quarantined_failures),
        "tests": verdict.tests,
        "runs_counted": verdict.runs_counted,
        "runs": [
            {
                "run_id": run.record.run_id,
                "project": run.record.project,
                "created_at": run.record.created_at,
                "state": run.record.state.value,
                "verdict": run.record.verdict.value if run.record.verdict else None,
                "message": run.record.message,
                "tests": len(run.final),
                "outcomes": run.outcomes,
            }
            for run in runs
        ],
    }


def format_change(ref: ChangeRef, verdict: ChangeVerdict, runs: Sequence[ShownRun]) -> str:
    """The change as text: what it is, its verdict and why, its runs, its tests."""
    lines = [f"change {ref.repository} {ref.commit_sha}"]
    about = [
        f"{label} {value}"
        for label, value in (
            ("branch", ref.branch),
            ("pull request", ref.pull_request),
            ("author", ref.author),
        )
        if value
    ]
    if about:
        lines.append("  " + ", ".join(about))
    lines.append(f"verdict {verdict.reason}")
    lines.append(f"runs ({len(runs)}, {verdict.runs_counted} counted):")
    for run in runs:
        lines.append("  " + _run_line(run))
    for title, node_ids in (
        ("failed", verdict.failed),
        ("flaky", verdict.flaky),
        ("quarantined failures", verdict.quarantined_failures),
    ):
        if node_ids:
            lines.append(f"{title} ({len(node_ids)}):")
            lines.extend(f"  {node_id}" for node_id in node_ids)
    return "\n".join(lines)


def _run_line(run: ShownRun) -> str:
    record = run.record
    created = time.strftime(TIME_FORMAT, time.localtime(record.created_at))
    verdict = record.verdict.value if record.verdict else record.state.value
    counts = ", ".join(f"{n} {outcome}" for outcome, n in run.outcomes.items())
    line = f"{short_id(record.run_id)}  {created}  {verdict:11} {len(run.final)} tests"
    if counts:
        line += f": {counts}"
    if record.message:
        line += f"  ({record.message})"
    return line
