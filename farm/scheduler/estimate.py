"""Expected durations for every test and module of a run, from history.

An *estimate* is the number of seconds a test is expected to take (setup + call +
teardown, without module-scoped setup); a *setup estimate* is the expected cost of a
module's module-scoped fixtures, paid once by every shard that runs any test of that
module. Planning needs both for every test and module, including tests that have
never run, so each one falls back in order:

* a test: its own history; else the mean of its module's known tests; else the mean
  of every known test; else ``default_test_s``. Never below :data:`MIN_TEST_S`.
* a module's setup: its own history; else the median of every known setup; else
  ``default_setup_s``.

Why the *mean* for unknown tests: durations are heavy-tailed (log-normal with a
large shape), and a shard's cost is a *sum* of tests. The expected value of a sum is
the sum of the means, while the median of a log-normal sits far below its mean
(``exp(sigma**2 / 2)``, 3.6x at sigma 1.6), so median fallbacks would make every
shard holding new tests systematically lighter than it is. Setup costs are not
heavy-tailed sums, so the median (robust to one odd module) serves them better.

"Known" statistics are taken over the whole history, not only the selected tests, so
a new test in a module that is only partly selected still learns from its siblings.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from farm.core.domain import History, module_of

#: No test is planned as free: a zero-cost test would let a strategy pile unbounded
#: numbers of unknown tests into one shard.
MIN_TEST_S = 0.001


@dataclass(frozen=True)
class Estimates:
    """Expected seconds for every test of a run and the setup of every module it touches.

    ``test_s`` maps every node id given to :func:`estimate` to its estimate;
    ``setup_s`` maps every module of those node ids (``module_of``) to its setup
    estimate. The ``from_*`` counts say where the test estimates came from, for
    reports: own history, module mean, suite mean, or the default. ``guessed`` holds
    the node ids without history of their own: their estimates are the least
    trustworthy, so strategies may want to start them early.
    """

    test_s: Mapping[str, float]
    setup_s: Mapping[str, float]
    from_history: int = 0
    from_module: int = 0
    from_suite: int = 0
    from_default: int = 0
    guessed: frozenset[str] = frozenset()

    def shard_s(self, node_ids: Sequence[str]) -> float:
        """Expected seconds of one shard: its tests plus one setup per module it touches."""
        modules = {module for _, module in with_modules(node_ids)}
        tests_s = sum(map(self.test_s.__getitem__, node_ids))
        return tests_s + sum(self.setup_s[m] for m in modules)


def with_modules(node_ids: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(node id, module_of(node id))`` pairs, cheaply when a module's ids come together.

    Collection order lists each module's tests together, so the module is parsed
    again only when the prefix changes: planning a million tests calls this a lot.
    """
    prefix, module = "\0", ""
    for node_id in node_ids:
        if not node_id.startswith(prefix):
            module = module_of(node_id)
            prefix = module + "::"
        yield node_id, module


def _usable(seconds: float) -> bool:
    # History comes from files and a database; a NaN or negative value must not
    # poison the means it would feed.
    return math.isfinite(seconds) and seconds >= 0.0


def estimate(
    node_ids: Sequence[str],
    history: History,
    *,
    default_test_s: float = 0.1,
    default_setup_s: float = 0.0,
) -> Estimates:
    """Estimate every test of ``node_ids`` and the setup of every module they touch.

    Runs in one pass over the history and one over the node ids, so it stays linear
    for suites of millions of tests.
    """
    known: dict[str, float] = {n: s for n, s in history.test_duration_s.items() if _usable(s)}
    module_sum_s: dict[str, float] = {}
    module_count: dict[str, int] = {}
    for node_id, module in with_modules(known):
        seconds = known[node_id]
        module_sum_s[module] = module_sum_s.get(module, 0.0) + seconds
        module_count[module] = module_count.get(module, 0) + 1
    suite_mean_s = max(MIN_TEST_S, math.fsum(known.values()) / len(known)) if known else None
    default_s = max(MIN_TEST_S, default_test_s)

    test_s: dict[str, float] = {}
    guessed: list[str] = []
    modules: dict[str, None] = {}  # insertion-ordered set
    counts = [0, 0, 0, 0]  # history, module, suite, default
    for node_id, module in with_modules(node_ids):
        modules[module] = None
        own = known.get(node_id)
        if own is not None:
            test_s[node_id] = max(MIN_TEST_S, own)
            counts[0] += 1
            continue
        guessed.append(node_id)
        if module in module_count:
            test_s[node_id] = max(MIN_TEST_S, module_sum_s[module] / module_count[module])
            counts[1] += 1
        elif suite_mean_s is not None:
            test_s[node_id] = suite_mean_s
            counts[2] += 1
        else:
            test_s[node_id] = default_s
            counts[3] += 1

    known_setups = [s for s in history.module_setup_s.values() if _usable(s)]
    fallback_setup_s = (
        statistics.median(known_setups) if known_setups else max(0.0, default_setup_s)
    )
    setup_s: dict[str, float] = {}
    for module in modules:
        own_setup = history.module_setup_s.get(module)
        setup_s[module] = (
            own_setup if own_setup is not None and _usable(own_setup) else fallback_setup_s
        )

    return Estimates(
        test_s=test_s,
        setup_s=setup_s,
        from_history=counts[0],
        from_module=counts[1],
        from_suite=counts[2],
        from_default=counts[3],
        guessed=frozenset(guessed),
    )
