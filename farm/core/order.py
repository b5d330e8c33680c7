"""Order dependence: which modules ran before a test in its process, and which tests
of a run may depend on that order.

Sharding runs a module in a process that has not imported every other module, and
some suites depend, without knowing it, on an earlier module's import side effects
or on state a test left. Such a test passes under plain pytest and fails under farm
(or the other way round): it is the test's, not farm's, but the user must be told.

Tests run in their process's order (the ``O`` line of :mod:`farm.worker.pipe`), and
a process that replaces a crashed one starts a fresh order, so the modules before
a test are the modules of the order's earlier tests, each where its first test
ran (:class:`ModuleOrder`, used by the test process's plugin and by the runner for
the results it makes itself). pytest imports every module it collects before it
runs any test, so the process's modules whose tests ran *after* a test were
imported before it too: a result names those apart. Only results where the order
can matter carry them (:func:`wants_order`): a failing one, and every attempt
after the first.

:func:`order_suspects` is the run's side, pure: a test whose attempts disagree
after different modules, or that fails now and passed in the change's previous run
after other modules. Standard library and farm.core only: the test process imports
it, in an environment that may hold nothing but pytest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from farm.core.defaults import MODULES_BEFORE_LIMIT
from farm.core.domain import AttemptOrder, OrderSign, OrderSuspect, Outcome, TestResult, module_of


def wants_order(outcome: Outcome, attempt: int) -> bool:
    """Whether a result of ``outcome`` in attempt ``attempt`` carries its modules before."""
    return outcome.is_failure or attempt > 1


class ModuleOrder:
    """The modules of one process's run order, each at the index of its first test."""

    def __init__(self, node_ids: Sequence[str]) -> None:
        self.node_ids = node_ids
        self._firsts: list[tuple[int, str]] = []
        seen: set[str] = set()
        for index, node_id in enumerate(node_ids):
            module = module_of(node_id)
            if module not in seen:
                seen.add(module)
                self._firsts.append((index, module))

    def before(self, index: int, limit: int = MODULES_BEFORE_LIMIT) -> tuple[str, ...]:
        """The modules whose tests ran before the test at ``index``, in the order they
        ran, its own module left out: the nearest ``limit`` of them."""
        if not 0 <= index < len(self.node_ids):
            return ()
        own = module_of(self.node_ids[index])
        modules = [module for first, module in self._firsts if first < index and module != own]
        return tuple(modules[-limit:]) if limit > 0 else ()

    def after(self, index: int, limit: int = MODULES_BEFORE_LIMIT) -> tuple[str, ...]:
        """The other modules whose tests ran after the test at ``index``: imported
        before it ran all the same, as pytest collects before it runs (the first
        ``limit``)."""
        if not 0 <= index < len(self.node_ids):
            return ()
        own = module_of(self.node_ids[index])
        return tuple([m for first, m in self._firsts if first > index and m != own][:limit])

    def around(self, index: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """:meth:`before` and :meth:`after` the test at ``index``."""
        return self.before(index), self.after(index)


def planned_order(
    shard: Sequence[str], node_id: str
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The modules before and after ``node_id`` in its shard's planned order (None if
    it is not in it): what its process ran unless it was replaced mid-shard."""
    try:
        index = list(shard).index(node_id)
    except ValueError:
        return None
    return ModuleOrder(shard).around(index)


def order_suspects(
    results: Iterable[TestResult],
    earlier: Iterable[TestResult],
    previous: Mapping[str, AttemptOrder],
) -> tuple[OrderSuspect, ...]:
    """The tests of a run that may depend on order, in the order of ``results``.

    ``results`` are the final results, ``earlier`` every other attempt of the run,
    ``previous`` the final attempts of the change's previous run, by node id.
    A test is a suspect when some failing and some passing attempt of this run ran
    after different modules (:attr:`OrderSign.FLAKY`), or when it failed on every
    attempt here and passed in the previous run, after modules not known to be the
    same as before any of its failures (:attr:`OrderSign.REGRESSED`).
    """
    by_test: dict[str, list[TestResult]] = {}
    for attempt in earlier:
        by_test.setdefault(attempt.node_id, []).append(attempt)
    suspects: list[OrderSuspect] = []
    for final in results:
        runs = sorted(by_test.get(final.node_id, []), key=lambda a: a.attempt)
        attempts = tuple(AttemptOrder.of(r) for r in (*runs, final))
        before = previous.get(final.node_id)
        if _disagree_after_other_modules(attempts):
            suspects.append(OrderSuspect(final.node_id, OrderSign.FLAKY, attempts))
        elif (
            before is not None
            and not before.outcome.is_failure
            and all(a.outcome.is_failure for a in attempts)
            and any(not _same_modules(before, a) for a in attempts)
        ):
            suspects.append(OrderSuspect(final.node_id, OrderSign.REGRESSED, (before, *attempts)))
    return tuple(suspects)


def _disagree_after_other_modules(attempts: Sequence[AttemptOrder]) -> bool:
    failing = [a for a in attempts if a.outcome.is_failure and a.modules_before is not None]
    passing = [a for a in attempts if not a.outcome.is_failure and a.modules_before is not None]
    return any(not _same_modules(f, p) for f in failing for p in passing)


def _same_modules(a: AttemptOrder, b: AttemptOrder) -> bool:
    """Whether both are known to have run after, and imported, the same modules."""
    return (
        a.modules_before is not None
        and a.modules_before == b.modules_before
        and a.modules_after == b.modules_after
    )
