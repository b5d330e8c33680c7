"""The ``farm`` command line: run, plan, worker, workers, history, change, quarantine.

Every error ends as one line ``farm: error: ...`` on stderr and the exit code of
:class:`farm.core.domain.ExitCode`; a traceback is shown only with ``FARM_DEBUG=1``.
Options for pytest go after ``--``: ``farm run tests/ -n 8 -- -k slow -x``.
SIGTERM and SIGHUP stop ``farm run`` as Ctrl-C does: the run is recorded as
interrupted, what it started is stopped, and it exits with code 2.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from farm.cli.change import change
from farm.cli.ci import ci
from farm.cli.history import history
from farm.cli.interrupts import SignalInterrupt, interrupt_on_signals, interrupted
from farm.cli.isolate import isolate_options, run_isolate
from farm.cli.options import WORKERS, common_options, pytest_args, settings_from
from farm.cli.quarantine import quarantine
from farm.cli.run_command import REPORT_PATH, in_writable_folder, run_and_report, submit_options
from farm.cli.run_options import run_change, run_options
from farm.cli.serve import conductor, serve
from farm.cli.workers import workers
from farm.core import defaults
from farm.core.domain import ExitCode, History, Verdict
from farm.core.errors import CollectionError, FarmError, SettingsError


@click.group()
@click.version_option(package_name="farm")
def cli() -> None:
    """Distributed pytest: shard by history, run on many workers, one verdict."""


@cli.command()
@click.argument("paths", nargs=-1)
@submit_options
@click.option("--rev", help="Test this git commit (packed from the repository), not the disk.")
@click.option("--resume", "resume_id", help="Continue run RUN_ID, whose scheduler died.")
@click.option(
    "--junit-xml", type=REPORT_PATH, callback=in_writable_folder, help="Write JUnit XML here."
)
@click.option(
    "--json", "json_path", type=REPORT_PATH, callback=in_writable_folder,
    help="Write a JSON report.",
)  # fmt: skip
@run_options
@isolate_options
@common_options
def run(
    paths: tuple[str, ...],
    rev: str | None,
    resume_id: str | None,
    junit_xml: str | None,
    json_path: str | None,
    change_sha: str | None,
    branch: str | None,
    repository: str | None,
    isolate: str | None,
    after: tuple[str, ...],
    **flags: Any,
) -> None:
    """Run the tests under PATHS on the farm; options after -- go to pytest."""
    if isolate is not None or after:
        given = {"--rev": rev, "--resume": resume_id, "--junit-xml": junit_xml,
                 "--json": json_path, "--change": change_sha, "--branch": branch,
                 "--repository": repository}  # fmt: skip
        run_isolate(isolate, after, paths, given, flags)
    settings = settings_from(**flags)
    if resume_id and (paths or rev or pytest_args() or change_sha or branch or repository):
        raise SettingsError(
            "--resume continues a run as it was: give no paths, --rev, --change, --branch, "
            "--repository or -- options"
        )
    from farm.run.coverage_report import require_coverage

    require_coverage(any(arg.startswith("--cov") for arg in pytest_args()))  # before any work
    change = None
    if not resume_id:
        change = run_change(
            Path.cwd(),
            os.environ,
            rev=rev,
            change_sha=change_sha,
            branch=branch,
            repository=repository,
        )
    received: list[int] = []
    try:
        with interrupt_on_signals() as received:
            summary = run_and_report(settings, paths, rev, change, resume_id, junit_xml, json_path)
    except SignalInterrupt:
        raise interrupted(received) from None
    if received or summary.verdict is Verdict.INTERRUPTED:
        # Raised after the summary, so that the error line is the last one printed.
        raise interrupted(received)
    from farm.core.verdict import summary_exit_code

    sys.exit(int(summary_exit_code(summary)))


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("-n", "--workers", type=WORKERS, help="Workers to plan for [CPU count].")
@click.option("--strategy", help=f"Sharding strategy [{defaults.STRATEGY}].")
@click.option(
    "--tests", "tests_file", type=click.Path(dir_okay=False), help="Node ids, one a line."
)
@click.option(
    "--durations",
    "durations_file",
    type=click.Path(dir_okay=False),
    help="Durations: .test_durations JSON or JUnit XML.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@common_options
def plan(
    paths: tuple[str, ...],
    tests_file: str | None,
    durations_file: str | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Print the shard plan for PATHS (or --tests/--durations) without running it."""
    from farm.report.history_io import read_history_file
    from farm.run.planner import Planner
    from farm.scheduler.test_ids import load_test_ids

    settings = settings_from(**flags)
    if tests_file or durations_file:
        if not (tests_file and durations_file) or paths:
            raise SettingsError("--tests and --durations go together, without PATHS")
        node_ids: Sequence[str] = load_test_ids(Path(tests_file))
        history = History(read_history_file(Path(durations_file)), {})
    else:
        from farm.core.project import project_line, project_name
        from farm.scheduler.collect import collect
        from farm.store import ResultStore

        collection = collect(paths, pytest_args(), cwd=Path.cwd())
        node_ids = collection.node_ids
        project = project_name(settings.project, Path(collection.rootdir))
        click.echo(project_line(project), err=True)
        with ResultStore.open(settings.database_url_or_default) as store:
            history = store.history(project)
    the_plan = Planner.for_settings(settings, history).plan(node_ids)
    if as_json:
        click.echo(json.dumps(the_plan.to_json()))
        return
    click.echo(
        f"{len(node_ids)} tests in {len(the_plan.shards)} shards for {the_plan.workers} workers "
        f"({the_plan.strategy}): estimated makespan {the_plan.estimated_makespan_s:.1f}s, "
        f"lower bound {the_plan.lower_bound_s:.1f}s, total {the_plan.total_s:.1f}s"
    )
    for shard in the_plan.shards:
        click.echo(
            f"  shard {shard.shard_id:4d}  {shard.estimate_s:8.2f}s  {len(shard.node_ids)} tests"
        )


@cli.command()
@click.option("--broker", "broker_url", help="Redis URL of the farm [FARM_BROKER_URL].")
@click.option("-c", "--concurrency", type=WORKERS, help="Shards run at once [CPU count].")
@click.option("--queue", help=f"Queue to consume [{defaults.QUEUE}].")
@click.option("--key-prefix", help=f"Prefix of every Redis key [{defaults.KEY_PREFIX}].")
@click.option("--name", help="Worker name in results and `farm workers` [machine's name].")
@click.option("--machine", help="The machine it runs on, e.g. a Kubernetes node [its hostname].")
@click.option("--cache", "cache_dir", help="Folder for snapshots and environments [~/.cache/farm].")
@click.option(
    "--test-user",
    help="User that tests run as, or self for the worker's own [nobody when run as root].",
)
@click.option("--local", is_flag=True, hidden=True)
def worker(
    concurrency: int | None, name: str | None, machine: str | None, local: bool, **flags: Any
) -> None:
    """Run a worker that takes shards from the farm's Redis."""
    import logging

    if local:
        from farm.core.lifeline import watch_lifeline

        # First of all: the run may die while the worker is still booting.
        watch_lifeline(os.environ)

    from farm.core.broker import connect
    from farm.core.logs import configure

    settings = settings_from(workers=concurrency, **flags)
    if not settings.broker_url:
        raise SettingsError("farm worker needs --broker URL or FARM_BROKER_URL")
    worker_name = name or socket.gethostname()
    if not worker_name.strip() or any(c in worker_name for c in ":\n\r"):
        raise SettingsError(f"worker name must be non-empty without ':' or newlines: {name!r}")
    machine_name = machine or socket.gethostname()
    if not machine_name.strip() or any(c in machine_name for c in "\n\r"):
        raise SettingsError(f"machine name must be non-empty without newlines: {machine!r}")
    from farm.worker.test_user import prepare_worker_dirs, worker_test_user

    test_user = worker_test_user(
        settings.test_user, broker_flag=flags.get("broker_url"), euid=os.geteuid()
    )
    configure(level=logging.WARNING if local else logging.INFO)
    connect(settings.broker_url, timeout_s=settings.broker_timeout_s).close()
    from farm.core.lifeline import own_tmpdir
    from farm.worker.app import WorkerConfig, make_app

    tmp_dir = own_tmpdir(settings.cache_dir.resolve() / "tmp", os.environ)
    if test_user is not None:
        prepare_worker_dirs(settings.cache_dir.resolve(), tmp_dir, test_user)
    from farm.worker.workspace import WorkspaceConfig

    config = WorkerConfig(
        broker_url=settings.broker_url,
        workspace=WorkspaceConfig(
            cache_dir=settings.cache_dir.resolve(),
            cache_max_bytes=settings.cache_max_bytes,
            key_prefix=settings.key_prefix,
            artifact_ttl_s=settings.run_ttl_s,
            setup_timeout_s=settings.setup_timeout_s,
        ),
        name=worker_name,
        machine=machine_name,
        concurrency=settings.workers,
        queue=settings.queue,
        key_prefix=settings.key_prefix,
        run_ttl_s=settings.run_ttl_s,
        max_failures=settings.worker_max_failures,
        test_user=test_user,
    )
    app = make_app(config)
    argv = [
        "worker",
        "--concurrency", str(settings.workers),
        "--queues", settings.queue,
        "--hostname", worker_name if "@" in worker_name else f"farm@{worker_name}",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--loglevel", "WARNING" if local else "INFO",
    ]  # fmt: skip
    app.worker_main(argv)


cli.add_command(history)
cli.add_command(workers)
cli.add_command(change)
cli.add_command(quarantine)
cli.add_command(ci)
cli.add_command(serve)
cli.add_command(conductor)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, pytest_args = args[:cut], args[cut + 1 :]
    try:
        cli.main(
            args=args, prog_name="farm", obj={"pytest_args": pytest_args}, standalone_mode=False
        )
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message(), ExitCode.USAGE_ERROR)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted", ExitCode.INTERRUPTED)
    except CollectionError as e:
        if e.details:
            click.echo(e.details, err=True)
        _fail(f"collection failed: {e}", e.exit_code)
    except FarmError as e:
        _fail(str(e), e.exit_code)
    except Exception as e:
        if os.environ.get("FARM_DEBUG"):
            traceback.print_exc()
        _fail(
            f"internal error: {type(e).__name__}: {e} (FARM_DEBUG=1 shows the traceback)",
            ExitCode.INFRA_ERROR,
        )


def _fail(message: str, code: int) -> None:
    click.echo(f"farm: error: {message}", err=True)
    sys.exit(int(code))
