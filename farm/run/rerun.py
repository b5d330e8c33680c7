"""What a run with ``--lf``, ``--ff``, ``--nf`` or ``--sw`` reads of earlier runs.

pytest reads its ``.pytest_cache``; farm reads its store, and only for the options
given: the project's known failures for ``--lf``/``--ff``, the tests its history
knows for ``--nf``, the last ``--sw`` mark. :func:`farm.scheduler.last_failed.choose`
then decides, as pytest would, what the run owes.

A quarantined test is no known failure: its failures fail no verdict, as pytest's
``xfail`` keeps a test out of ``lastfailed``, so ``--lf`` reruns what made the last
runs red and ``--lfnf=none`` stops once only quarantined tests fail.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Container, Mapping

from farm.core.domain import Collection, StepwiseMark, TestResult
from farm.core.pytest_options import PytestOptions
from farm.scheduler.last_failed import Chosen, PastRuns, choose, wanted
from farm.scheduler.stepwise import STOP_REASON, LastStepwise
from farm.store import ResultStore


def read_past(
    store: ResultStore,
    project: str,
    options: PytestOptions,
    *,
    known: Container[str],
    clock: Callable[[], float] = time.time,
) -> PastRuns:
    """What ``options`` need of ``project``'s earlier runs; ``known`` are the tests its
    history has seen (read by the planner already)."""
    if not wanted(options):
        return PastRuns()
    failures, latest = {}, ""
    if options.last_failed or options.failed_first:
        found = store.reruns.failures(project, besides=store.quarantine.current(project))
        failures, latest = found.tests, found.latest_run
    last = None
    if options.stepwise:
        record = store.reruns.stepwise(project)
        if record is not None:
            last = LastStepwise(record.mark, record.run_id, clock() - record.finished_at)
    return PastRuns(failures, latest, known if options.new_first else frozenset(), last)


def narrowing(past: PastRuns, started: Chosen | None) -> Callable[[Collection], Collection] | None:
    """What a settling run owes of its real collection, when these options narrow it."""
    if started is None or not wanted(started.collection.options):
        return None
    return lambda collection: choose(collection, past).collection


def owed(
    collection: Collection, past: PastRuns, started: Chosen | None, *, stopped: bool
) -> Chosen:
    """What the run owes of ``collection`` at its end. ``started`` is what it owed when
    it began: a run that stopped early (``-x``, ``--sw``) keeps its counts, and owes
    what ran of ``collection``."""
    if started is None or not wanted(collection.options):
        return Chosen(collection)
    if stopped:
        ran = dataclasses.replace(started.collection, node_ids=collection.node_ids)
        return dataclasses.replace(started, collection=ran)
    return choose(collection, past)


def stepwise_end(
    started: Chosen | None, ended: Chosen, final: Mapping[str, TestResult], *, stopped: bool
) -> tuple[StepwiseMark | None, str]:
    """A ``--sw`` run's mark, and why it stopped in pytest's words ("" when it did not
    stop for ``--sw``). ``final`` holds its results in the order they arrived."""
    chosen = started if stopped and started is not None else ended
    plan = chosen.stepwise
    if plan is None:
        return None, ""
    mark = plan.mark(chosen.collection.node_ids, final)
    return mark, STOP_REASON if stopped and plan.stops_run else ""
