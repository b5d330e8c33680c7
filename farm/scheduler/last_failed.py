"""``--lf``, ``--ff``, ``--nf`` (with ``--lfnf``) and ``--sw``: which of a collection's
tests a run owes, and which go first, as pytest's cacheprovider and stepwise plugins
decide it, over what farm's store says of earlier runs: pure logic, no I/O.

pytest keeps ``lastfailed`` in its cache; farm keeps results. :class:`PastRuns`
holds what the store says: the tests whose latest result failed (the *known
failures*), the tests it has seen, the last ``--sw`` mark. :func:`choose` then does
what pytest does with its cache, in pytest's order and words:

- ``--lf`` collects only the files holding a known failure, failed paths first
  (``skipped N files`` counts the others); in those files it keeps the failures, the
  tests of classes (pytest filters a file's direct children only) and every test
  of a file named on the command line. It then deselects the tests that did not
  fail; with no known failure it runs everything (``--lfnf=all``) or nothing
  (``--lfnf=none``);
- ``--ff`` runs everything, the known failures first; ``--nf`` tests the store never
  saw first (farm plans them first: pytest's order by file time means nothing to
  shards run in parallel);
- ``--sw`` deselects the tests before the last mark (:mod:`farm.scheduler.stepwise`).

farm's collection arrives with ``-k``/``-m`` already applied, where pytest applies
them after ``--lf`` narrowed the files: with those options the deselected count of
``--lf`` can be larger than pytest's, and ``--sw`` counts its skipped tests among
the selected ones only. Collection errors are not results, so they are never known
failures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field

from farm.core.domain import Collection, is_test, module_of
from farm.core.pytest_options import PytestOptions
from farm.scheduler import stepwise
from farm.scheduler.stepwise import LastStepwise, StepwisePlan

SOURCE = "from farm's results store"  # what the lines say of where they read it


@dataclass(frozen=True)
class PastRuns:
    """What farm's store says of a project's earlier runs, as these options read it.

    ``failures`` maps each known failure to the run of its latest, failing, result;
    ``latest_failure_run`` is the newest of those runs; ``known`` holds every test
    the store has seen.
    """

    failures: Mapping[str, str] = field(default_factory=dict)
    latest_failure_run: str = ""
    known: Container[str] = frozenset()
    stepwise: LastStepwise | None = None


@dataclass(frozen=True)
class Chosen:
    """What a run owes: ``collection`` narrowed (its ``deselected`` counts what these
    options left out), the tests to plan ``first``, pytest's ``lines`` saying so, and
    what a ``--sw`` run needs to leave its mark."""

    collection: Collection
    first: frozenset[str] = frozenset()
    lines: tuple[str, ...] = ()
    stepwise: StepwisePlan | None = None


def wanted(options: PytestOptions) -> bool:
    """Whether any of these options is on."""
    return options.last_failed or options.failed_first or options.new_first or options.stepwise


def choose(collection: Collection, past: PastRuns) -> Chosen:
    """The tests of ``collection`` the run owes, and which go first."""
    options = collection.options
    if not wanted(options):
        return Chosen(collection)
    items = list(collection.node_ids)
    deselected = collection.deselected
    skipped_files = 0
    if options.last_failed and past.failures:
        items, skipped_files = _collect_failed_files(collection, past.failures)
    plan = None
    stepwise_line = ""
    if options.stepwise:
        count = len(items) + collection.deselected  # as pytest counts, before -k and -m
        start = stepwise.start(items, past.stepwise, options, test_count=count)
        items, deselected, plan = list(start.items), deselected + start.deselected, start.plan
        run = past.stepwise.run_id if past.stepwise is not None else ""
        stepwise_line = f"stepwise: {start.line} ({_source(run)})"
    lines: list[str] = []
    first: set[str] = set()
    if options.last_failed or options.failed_first:
        rerun = _rerun_failures(items, past, options, skipped_files)
        items, deselected = rerun.items, deselected + rerun.deselected
        first.update(rerun.first)
        run = past.latest_failure_run if past.failures else ""
        lines.append(f"run-last-failure: {rerun.status} ({_source(run)})")
    if stepwise_line:
        lines.append(stepwise_line)
    if options.new_first:
        first.update(n for n in items if is_test(n) and n not in past.known)
    narrowed = dataclasses.replace(collection, node_ids=tuple(items), deselected=deselected)
    return Chosen(narrowed, frozenset(first), tuple(lines), plan)


def _source(run_id: str) -> str:
    return f"{SOURCE}, run {run_id}" if run_id else SOURCE


@dataclass(frozen=True)
class _Rerun:
    items: list[str]
    deselected: int
    first: tuple[str, ...]
    status: str


def _rerun_failures(
    items: list[str], past: PastRuns, options: PytestOptions, skipped_files: int
) -> _Rerun:
    """What pytest's last-failed plugin does to the collected items."""
    failures = past.failures
    if not failures:
        status = "no previously failed tests, "
        if options.last_failed_no_failures == "none":
            # Modules that skipped themselves are no items: pytest still reports them.
            kept = [n for n in items if not is_test(n)]
            return _Rerun(kept, len(items) - len(kept), (), status + "deselecting all items.")
        return _Rerun(items, 0, (), status + "not deselecting items.")
    failed = tuple(n for n in items if n in failures)
    first: tuple[str, ...] = ()
    if not failed:
        status = f"{len(failures)} known failures not in selected tests"
        deselected = 0
    else:
        if options.last_failed:
            kept = [n for n in items if n in failures or not is_test(n)]
            deselected, items = len(items) - len(kept), kept
        else:
            deselected, first = 0, failed
        noun = "failure" if len(failed) == 1 else "failures"
        suffix = " first" if options.failed_first else ""
        status = f"rerun previous {len(failed)} {noun}{suffix}"
    if skipped_files:
        status += f" (skipped {skipped_files} {'file' if skipped_files == 1 else 'files'})"
    return _Rerun(items, deselected, first, status)


def _collect_failed_files(
    collection: Collection, failures: Mapping[str, str]
) -> tuple[list[str], int]:
    """The items pytest's ``--lf`` collects, in its order, and how many files it skips.

    Paths holding a failure are collected first. Until a file whose direct children
    include a known failure is collected, files are collected whole; from then on a
    file without a failure is skipped, and a failure's file keeps its failures, its
    classes' tests and, if it was named on the command line, everything.
    """
    by_module: dict[str, list[str]] = {}
    for node_id in collection.node_ids:
        by_module.setdefault(module_of(node_id), []).append(node_id)
    failed_files = {module_of(node_id) for node_id in failures}
    named = frozenset(collection.options.initial_files)
    modules = list(dict.fromkeys([*collection.modules, *by_module]))
    kept: list[str] = []
    skipping, skipped = False, 0
    for module in failed_paths_first(modules, _with_parents(failed_files)):
        tests = by_module.get(module, [])
        if module in failed_files:
            if not skipping:
                if not any(n in failures for n in tests if not _in_class(n)):
                    kept.extend(tests)
                    continue
                skipping = True
            kept.extend(
                n
                for n in tests
                if n in failures or module in named or _in_class(n) or not is_test(n)
            )
        elif skipping:
            skipped += 1
        else:
            kept.extend(tests)
    return kept, skipped


def failed_paths_first(modules: Sequence[str], failed_paths: Container[str]) -> list[str]:
    """``modules`` (collection order) as pytest walks them under ``--lf``: in each
    folder, the entries on a failure's path first, each group in its old order."""
    first_seen: dict[str, int] = {}
    keyed = []
    for index, module in enumerate(modules):
        parts = module.split("/")
        key = []
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            key.append((prefix not in failed_paths, first_seen.setdefault(prefix, index)))
        keyed.append((key, index, module))
    return [module for _, _, module in sorted(keyed)]


def _with_parents(files: set[str]) -> frozenset[str]:
    paths = set(files)
    for path in files:
        parts = path.split("/")
        paths.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return frozenset(paths)


def _in_class(node_id: str) -> bool:
    """Whether the test sits below a collector of its file (a class), not directly in it:
    a separator after the file's part that comes before any parameter id."""
    rest = node_id.partition("::")[2]
    separator, bracket = rest.find("::"), rest.find("[")
    return separator != -1 and (bracket == -1 or separator < bracket)
