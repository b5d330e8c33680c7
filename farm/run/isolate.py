"""``farm run --isolate NODE_ID``: is this test order-dependent, and on which module?

The test runs alone, then after the modules that ran before it in its last failing
(or differing) attempt, read from the store, or given with ``--after``; then
:func:`farm.run.bisect.bisect` halves them down to the module whose earlier run
changes the test's outcome, and a paragraph says what that means.

Every trial is a plain pytest process on this machine, not a shard on farm's
workers: ``pytest [ARGS] MODULE... NODE_ID`` runs the modules' tests in that order
and then the test (pytest imports every module it is given before running any
test, as a shard's process does), which is what farm's shard did, with the user's
own pytest and environment, and a command anyone can run again by hand. The trials
keep pytest's written order: pytest-randomly, when its options are given, is told
not to reorder (else it is left out with ``-p no:randomly``), pytest-random-order
gets the bucket ``none``; ``--maxfail=0`` lets the test run after earlier failures;
pytest's cache goes to a temporary folder, so ``--lf`` later is not misled.

Everything is checked before a trial runs (:func:`prepare`): the node id names a
test pytest collects, the modules exist, the store knows the test. Bad input is a
:class:`~farm.core.errors.UsageError` of one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from farm.core.domain import AttemptOrder, Outcome, is_test, module_of
from farm.core.errors import InfrastructureError, NoTestsCollected, UsageError
from farm.core.lifeline import die_with_parent
from farm.core.project import project_name, pytest_rootdir
from farm.core.pytest_command import pytest_command
from farm.run.bisect import Bisection, Finding, Trial, bisect, diagnosis
from farm.scheduler.collect import collect

SHOWN_MODULES = 10  # named in the header; the trials name the rest as they go
EXIT_CODES = {Finding.CULPRIT: 0, Finding.NOT_ORDER: 0, Finding.TOGETHER: 1}
"""0: a diagnosis (the module, or no order dependence); 1: the outcome changes after
all the modules but after none alone (several together, or flaky)."""


@dataclass(frozen=True)
class IsolateRequest:
    """What ``farm run --isolate`` was given. ``store_url`` is None when no store is
    at hand; ``project`` is the configured name ("" for pytest's rootdir's)."""

    node_id: str
    paths: tuple[str, ...]
    after: tuple[str, ...]
    pytest_args: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    project: str = ""
    store_url: str | None = None


@dataclass(frozen=True)
class Isolation:
    """A checked request: the modules to bisect over and where they ran with the test:
    ``before`` ran before it, ``after`` were imported with it and ran later."""

    node_id: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    where: str  # e.g. "on w:12 (host-a), run 3f2a attempt 1, which failed"
    rootdir: Path
    request: IsolateRequest

    @property
    def modules(self) -> tuple[str, ...]:
        return (*self.before, *self.after)

    def arguments(self, modules: Sequence[str]) -> list[str]:
        """pytest's arguments for a trial of ``modules``: those that ran before the
        test, the test, then those that ran after it, each in its order."""
        chosen = set(modules)
        return [
            *(_arg(self, m) for m in self.before if m in chosen),
            _arg(self, self.node_id),
            *(_arg(self, m) for m in self.after if m in chosen),
        ]

    def label(self, modules: Sequence[str]) -> str:
        """``alone``, ``after a.py``, ``with b.py imported``, or how many of each."""
        chosen = set(modules)
        parts = []
        for names, one, many in (
            ([m for m in self.before if m in chosen], "after {}", "after {}"),
            ([m for m in self.after if m in chosen], "with {} imported", "with {} imported"),
        ):
            if len(names) == 1:
                parts.append(one.format(names[0]))
            elif names:
                parts.append(many.format(f"{len(names)} modules ({names[0]} ... {names[-1]})"))
        return ", ".join(parts) or "alone"


def prepare(request: IsolateRequest) -> Isolation:
    """Check the request and find the modules; nothing of the suite runs yet."""
    node_id, cwd = request.node_id, request.cwd
    if not is_test(node_id):
        raise UsageError(f"--isolate takes a test's node id (file::test), not {node_id!r}")
    rootdir = pytest_rootdir(request.paths, cwd)
    module = module_of(node_id)
    if not (rootdir / module).is_file():
        raise UsageError(f"unknown node id {node_id}: no file {module} under {rootdir}")
    after: tuple[str, ...] = ()
    if request.after:
        before = _given_modules(request.after, rootdir, cwd, own=module)
        where = "as given with --after"
    else:
        before, after, where = _recorded_modules(request, rootdir)
    missing = [m for m in (*before, *after) if not (rootdir / m).is_file()]
    if missing:
        raise UsageError(f"module {missing[0]}, which ran with {node_id}, does not exist now")
    isolation = Isolation(node_id, before, after, where, rootdir, request)
    try:
        found = collect(
            isolation.arguments(isolation.modules),
            _fixed_args(isolation, ""),
            cwd=cwd,
            env=request.env,
        )
    except (UsageError, NoTestsCollected) as e:
        raise UsageError(f"unknown node id {node_id}: {e}") from None
    if node_id not in found.node_ids:
        raise UsageError(f"unknown node id {node_id}: pytest collects no such test")
    return isolation


def choose_attempt(attempts: Sequence[AttemptOrder]) -> AttemptOrder | None:
    """The attempt (of ``attempts``, newest first) whose modules to bisect over: the
    newest failing one whose process ran other modules, else the newest that did."""
    after_some = [a for a in attempts if a.process_modules]
    failing = [a for a in after_some if a.outcome.is_failure]
    chosen = failing or after_some
    return chosen[0] if chosen else None


def isolate(isolation: Isolation, echo: Callable[[str], None]) -> tuple[Bisection, int]:
    """Run the trials, saying each as it ends; what they showed and the exit code."""
    echo(
        f"isolating {isolation.node_id}: each trial is a plain pytest process on this "
        f"machine (not farm's workers): pytest [OPTIONS] [MODULE...] {isolation.node_id}"
    )
    echo(f"where it ran: {isolation.where}")
    if isolation.before:
        echo(_shown(isolation.before, "ran before it"))
    if isolation.after:
        echo(_shown(isolation.after, "were imported with it, their tests run after it"))
    with tempfile.TemporaryDirectory(prefix="farm-isolate-") as cache_dir:

        def probe(modules: Sequence[str]) -> Outcome:
            return _trial(isolation, modules, cache_dir)

        def heard(trial: Trial) -> None:
            echo(f"  {trial.outcome.value:8} {isolation.label(trial.modules)}")

        result = bisect(isolation.modules, probe, heard)
    imported_only = frozenset(isolation.after)
    echo(diagnosis(result, isolation.node_id, isolation.where, imported_only))
    if result.finding is Finding.CULPRIT:
        command = ["pytest", *_user_args(isolation), *isolation.arguments([result.culprit])]
        echo(f"to see it: {' '.join(command)}")
    return result, EXIT_CODES[result.finding]


def _shown(modules: Sequence[str], what: str) -> str:
    """``3 modules ran before it: a.py, b.py, c.py``, the first few named."""
    named = ", ".join(modules[:SHOWN_MODULES])
    if len(modules) > SHOWN_MODULES:
        named += f" and {len(modules) - SHOWN_MODULES} more"
    noun = "module" if len(modules) == 1 else "modules"
    what = what.replace("were", "was", 1) if len(modules) == 1 else what
    return f"{len(modules)} {noun} {what}: {named}"


def _given_modules(after: Sequence[str], rootdir: Path, cwd: Path, *, own: str) -> tuple[str, ...]:
    """``--after``'s modules, relative to the rootdir, in the order given."""
    modules: list[str] = []
    for name in after:
        if "::" in name:
            raise UsageError(f"--after takes modules (files), not tests: {name}")
        path = rootdir / name if (rootdir / name).is_file() else (cwd / name).resolve()
        if not path.is_file():
            raise UsageError(f"--after {name}: no such module")
        try:
            module = path.relative_to(rootdir).as_posix()
        except ValueError:
            raise UsageError(f"--after {name}: not under the rootdir {rootdir}") from None
        if module == own:
            raise UsageError(f"--after {name}: that is the test's own module")
        if module not in modules:
            modules.append(module)
    return tuple(modules)


def _recorded_modules(
    request: IsolateRequest, rootdir: Path
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """The modules before and after the test in its process, in its last failing (or
    differing) attempt in the store, and where it ran."""
    project = project_name(request.project, rootdir)
    if request.store_url is None:
        raise UsageError(
            f"no results store here to read {request.node_id}'s runs from: "
            "give the modules with --after MODULE"
        )
    from farm.store import ResultStore

    with ResultStore.open(request.store_url) as store:
        attempts = store.order.recent(project, request.node_id)
    if not attempts:
        raise UsageError(
            f"project {project} has no run of {request.node_id} in its store: "
            "run it under farm first, or give --after MODULE"
        )
    chosen = choose_attempt(attempts)
    if chosen is None:
        raise UsageError(
            f"{request.node_id} ran alone in its process in every recorded run of project "
            f"{project}: give the modules to try with --after MODULE"
        )
    place = chosen.worker or chosen.machine or "an unknown worker"
    if chosen.worker and chosen.machine:
        place = f"{chosen.worker} ({chosen.machine})"
    planned = ", as its shard was planned" if chosen.planned else ""
    where = (
        f"on {place}, run {chosen.run_id[:12]} attempt {chosen.attempt}, "
        f"which {chosen.outcome.value}{planned}"
    )
    return chosen.modules_before or (), chosen.modules_after, where


def _arg(isolation: Isolation, node_id: str) -> str:
    """A node id (relative to the rootdir) as an argument from the working folder."""
    module = module_of(node_id)
    path = os.path.relpath(isolation.rootdir / module, isolation.request.cwd)
    return Path(path).as_posix() + node_id[len(module) :]


def _user_args(isolation: Isolation) -> list[str]:
    return [*isolation.request.pytest_args, *_order_args(isolation.request)]


def _order_args(request: IsolateRequest) -> list[str]:
    """Options that keep pytest's written order where a reordering plugin is at hand."""
    given = " ".join([*request.pytest_args, request.env.get("PYTEST_ADDOPTS", "")])
    extra: list[str] = []
    if "randomly" in given:
        if "no:randomly" not in given:
            extra.append("--randomly-dont-reorganize")
    else:
        extra += ["-p", "no:randomly"]
    if ("random-order" in given or "random_order" in given) and "no:random_order" not in given:
        extra.append("--random-order-bucket=none")
    return extra


def _fixed_args(isolation: Isolation, cache_dir: str) -> list[str]:
    """The user's options, then farm's: the rootdir, the order, the cache folder."""
    args = [*_user_args(isolation), f"--rootdir={isolation.rootdir}", "--maxfail=0"]
    if cache_dir and "no:cacheprovider" not in " ".join(isolation.request.pytest_args):
        args += ["-o", f"cache_dir={cache_dir}"]
    return args


def _trial(isolation: Isolation, modules: Sequence[str], cache_dir: str) -> Outcome:
    """Run ``modules``, then the test, in one pytest process: the test's outcome."""
    request = isolation.request
    with tempfile.TemporaryFile() as out:
        command = [
            *pytest_command(sys.executable),
            "-p", "farm.run.outcome_plugin",
            f"--farm-outcome-of={isolation.node_id}",
            f"--farm-outcome-out=/dev/fd/{out.fileno()}",
            *_fixed_args(isolation, cache_dir),
            *isolation.arguments(modules),
        ]  # fmt: skip
        done = subprocess.run(
            command,
            preexec_fn=die_with_parent(waits=True),
            pass_fds=(out.fileno(),),
            cwd=request.cwd,
            env=dict(request.env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        out.seek(0)
        written = out.read()
    if not written:
        text = (done.stdout + done.stderr).decode("utf-8", "replace").strip().splitlines()
        last = text[-1] if text else "no output"
        raise InfrastructureError(
            f"pytest did not run {isolation.node_id} {isolation.label(modules)} "
            f"(exit code {done.returncode}): {last}"
        )
    return Outcome(json.loads(written)["outcome"])


__all__ = [
    "EXIT_CODES",
    "IsolateRequest",
    "Isolation",
    "choose_attempt",
    "isolate",
    "prepare",
]
