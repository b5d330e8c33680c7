"""One server-triggered run: fetch the commit, run it on the farm, tell the forge.

A conductor (:mod:`farm.run.conductor`) calls :func:`run_trigger` for each trigger
request. It takes everything that matters from its own configuration, not from the
request: the clone URL and token, the paths and pytest options, the status
settings. The commit is checked out from a cached mirror of the repository
(:mod:`farm.run.mirror`); the run is a ``farm run`` of that checkout on the farm's
broker, packed as a snapshot for the workers, recorded as triggered by the
request's source; the forge sees one status (or check run) for the change: pending
when the run starts, then the verdict with its reason and a link to the run.

The tested project's ``[tool.farm]`` may tune how its tests run (retries, timeouts,
strategy), never where they run or what they reach: the farm's own settings keep
the broker, database, queue, key prefix, caches, test user and dashboard. The
checkout's pytest processes (the collection here; the shards on the workers) get
an environment with none of the conductor's variables but a short allow-list.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from farm.core.domain import RunSummary, TestResult, Verdict
from farm.core.errors import CollectionError, FarmError
from farm.core.links import change_page, run_page
from farm.core.logs import event
from farm.core.server_config import RepositoryConfig, ServerConfig
from farm.core.settings import Settings, load_settings
from farm.core.test_user import TestUser
from farm.core.trigger import TriggerRequest
from farm.forge.reporter import StatusHandle, StatusReporter, reporter_for
from farm.forge.status import Annotation, StatusReport, StatusState, state_for_verdict
from farm.report.failure_location import failure_location
from farm.run.checkout_slots import checkout_slot
from farm.run.ledger import RunLedger
from farm.run.mirror import Mirrors
from farm.run.request import RunRequest
from farm.store import ResultStore

log = logging.getLogger("farm.conductor")

# Settings that belong to the farm, not to the project under test.
FARM_OWNED = (
    "broker_url", "database_url", "state_dir", "queue", "key_prefix", "run_ttl_s",
    "snapshot", "artifacts", "cache_dir", "cache_max_bytes", "test_user", "dashboard_url",
    "broker_timeout_s", "workers",
)  # fmt: skip
# The only variables of the conductor's environment its tests' pytest sees.
TEST_ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def run_trigger(
    trigger: TriggerRequest,
    *,
    settings: Settings,
    config: ServerConfig,
    mirrors: Mirrors,
    test_user: TestUser | None = None,
    env: Mapping[str, str] = os.environ,
    out: TextIO = sys.stderr,
) -> Verdict | None:
    """Run ``trigger``'s commit and report it; the verdict, or None when the request
    names no configured repository (a configuration changed since it was queued).

    ``test_user`` is who the checkout's code runs as here (the collection), resolved
    from the farm's settings by the conductor, never from the checkout's."""
    repository = config.repository(trigger.repository)
    if repository is None:
        event(
            log, "trigger.unknown_repository", level=logging.WARNING, repository=trigger.repository
        )
        return None
    reporter = reporter_for(repository)
    pending_url = change_page(settings.dashboard_url, trigger.commit_sha)
    handle = _started(reporter, trigger.commit_sha, pending_url)
    try:
        summary = _run(trigger, repository, settings, mirrors, test_user, env, out)
    except CollectionError as e:
        summary = _failed_run(trigger, repository, settings, f"collection failed: {e}")
    except FarmError as e:
        summary = _failed_run(trigger, repository, settings, str(e))
    except BaseException as e:
        report = _error_report(settings, "", f"farm failed: {type(e).__name__}")
        _finished(reporter, handle, trigger.commit_sha, report)
        raise
    _finished(reporter, handle, trigger.commit_sha, status_report(summary, settings.dashboard_url))
    event(
        log, "trigger.done", repository=trigger.repository, commit=trigger.commit_sha,
        run_id=summary.run_id, verdict=summary.verdict.value,
    )  # fmt: skip
    return summary.verdict


def _run(
    trigger: TriggerRequest, repository: RepositoryConfig, settings: Settings,
    mirrors: Mirrors, test_user: TestUser | None, env: Mapping[str, str], out: TextIO,
) -> RunSummary:  # fmt: skip
    from farm.run.start import execute

    assert settings.broker_url is not None  # a conductor serves a farm with a broker
    checkouts = settings.state_dir / "checkouts"
    with (
        checkout_slot(checkouts, repository.name) as slot,
        mirrors.checkout(
            repository.url, trigger.commit_sha, token=repository.token, dest_parent=checkouts,
            folder=slot,
        ) as checkout,
    ):  # fmt: skip
        if test_user is not None:
            # Folders are private by default; the checkout's code runs as the test user.
            for folder in (checkouts, slot.parent, slot):
                folder.chmod(0o755)
        run_settings = run_settings_for(checkout.path, settings, repository)
        request = RunRequest(
            paths=repository.paths,
            pytest_args=repository.pytest_args,
            cwd=checkout.path,
            env=tested_env(env),
            change=trigger.change,
            trigger=trigger.source.value,
            test_user=test_user,
        )
        finished = execute(run_settings, request, url=settings.broker_url, local=None, out=out)
        return finished.summary


def run_settings_for(checkout: Path, settings: Settings, repository: RepositoryConfig) -> Settings:
    """The project's ``[tool.farm]`` over the defaults, with the farm's own settings
    kept; the project's name, unless it sets one, is the repository's (a checkout's
    folder is a temporary name)."""
    project_settings = load_settings({}, {}, checkout)
    kept = {name: getattr(settings, name) for name in FARM_OWNED}
    project = project_settings.project or repository.name.rsplit("/", 1)[-1]
    return dataclasses.replace(project_settings, project=project, **kept)


def tested_env(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[name] for name in TEST_ENV_ALLOWED if name in env}


def status_report(summary: RunSummary, dashboard_url: str) -> StatusReport:
    """The forge's view of a finished run: state, one line, the run's page, and an
    annotation per failing test where its traceback points."""
    state = state_for_verdict(summary.verdict)
    quarantined = set(summary.quarantined_failures)
    failing = [r for r in summary.results if r.outcome.is_failure and r.node_id not in quarantined]
    # The client sends what a forge takes and lists the rest in the summary.
    annotations = tuple(_annotation(result) for result in failing)
    return StatusReport(
        state=state,
        description=_description(summary, len(failing)),
        target_url=run_page(dashboard_url, summary.run_id) if summary.run_id else "",
        annotations=annotations if state is StatusState.FAILURE else (),
        summary_markdown=_description(summary, len(failing)),
    )


def _description(summary: RunSummary, failing: int) -> str:
    tests = f"{summary.collected} tests"
    if summary.verdict is Verdict.FAILED:
        return f"failed: {failing} of {tests} failed"
    if summary.verdict is Verdict.FLAKY:
        return f"passed with {len(summary.flaky)} flaky of {tests}"
    if summary.verdict is Verdict.PASSED:
        return f"passed: {tests} in {summary.makespan_s:.0f}s"
    return (
        f"{summary.verdict.value}: {summary.message}" if summary.message else summary.verdict.value
    )


def _annotation(result: TestResult) -> Annotation:
    path, line = failure_location(result.node_id, result.longrepr)
    lines = [ln for ln in result.longrepr.splitlines() if ln.startswith("E ")]
    message = "\n".join(lines[:20]) or (result.longrepr or result.outcome.value)[-2000:]
    title = f"{result.node_id} {result.outcome.value}"
    return Annotation(path=path, line=line, title=title, message=message)


def _failed_run(
    trigger: TriggerRequest, repository: RepositoryConfig, settings: Settings, message: str
) -> RunSummary:
    """Record a run that could not start (no such commit, a collection that failed),
    so the change's verdict is error with the reason, and summarise it."""
    project = settings.project or repository.name.rsplit("/", 1)[-1]
    with ResultStore.open(settings.database_url_or_default) as store:
        ledger = RunLedger.create(
            store, project=project, settings={}, change=trigger.change,
            trigger=trigger.source.value,
        )  # fmt: skip
        ledger.finish(Verdict.ERROR, message)
    now = time.time()
    return RunSummary(
        run_id=ledger.run_id, verdict=Verdict.ERROR, collected=0, results=(), missing=(),
        makespan_s=0.0, estimated_makespan_s=0.0, workers=0, message=message,
        started_at=now, finished_at=now, change=trigger.change,
    )  # fmt: skip


def _error_report(settings: Settings, run_id: str, message: str) -> StatusReport:
    return StatusReport(
        state=StatusState.ERROR,
        description=message,
        target_url=run_page(settings.dashboard_url, run_id) if run_id else "",
    )


def _started(reporter: StatusReporter, commit_sha: str, target_url: str) -> StatusHandle | None:
    try:
        return reporter.started(commit_sha, target_url)
    except FarmError as e:
        # The run matters more than its pending status: it goes on, the verdict is sent.
        event(log, "status.not_sent", level=logging.WARNING, commit=commit_sha, error=str(e))
        return None


def _finished(
    reporter: StatusReporter, handle: StatusHandle | None, commit_sha: str, report: StatusReport
) -> None:
    """Send the verdict (also when the pending status could not be sent)."""
    handle = handle or StatusHandle(commit_sha)
    try:
        reporter.finished(handle, report)
    except FarmError as e:
        event(log, "status.not_sent", level=logging.ERROR, commit=commit_sha, error=str(e))


__all__ = ["run_settings_for", "run_trigger", "status_report", "tested_env"]
