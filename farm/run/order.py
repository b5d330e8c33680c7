"""Which tests of a finished run may depend on the order modules ran in.

The rules are pure (:func:`farm.core.order.order_suspects`); this reads what they
need from the store: the change's previous run, for the tests that failed here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from farm.core.domain import AttemptOrder, ChangeRef, OrderSuspect, TestResult
from farm.core.errors import StoreError
from farm.core.order import order_suspects
from farm.store import ResultStore


def run_order_suspects(
    store: ResultStore,
    project: str,
    change: ChangeRef | None,
    run_id: str,
    results: Sequence[TestResult],
    earlier: Sequence[TestResult],
) -> tuple[OrderSuspect, ...]:
    """The run's tests that may depend on order (see :func:`order_suspects`)."""
    failing = [r.node_id for r in results if r.outcome.is_failure]
    previous: dict[str, AttemptOrder] = {}
    if change is not None and failing:
        # The verdict stands without it; only the report says less.
        with contextlib.suppress(StoreError):
            previous = store.order.previous_run(
                project, change, before_run=run_id, node_ids=failing
            )
    return order_suspects(results, earlier, previous)
