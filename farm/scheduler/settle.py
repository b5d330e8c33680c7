"""Settling a run started from a cached collection on what pytest really collects.

A warm run dispatches shards planned on the *guess* (the node ids the same request
collected last time) before anything is collected. Three sources then tell the
truth, module by module, without collecting the whole suite a second time:

- *discovery*: the test files pytest would collect now, in order, found without
  importing them;
- the workers: each shard's pytest collects its modules anyway and reports every
  test it kept from each (first report of a module wins);
- a direct collection of the modules no worker will report: new files, and files
  whose shards all ended without a report.

The run is settled when every discovered module has its truth; it then owes the
concatenation of those truths, in discovery order. Tests of the truth that the
plan lacks get shards of their own; tests of the guess that are gone are owed by
nobody; a module that is no longer discovered is owed nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from farm.core.domain import module_of


class Settlement:
    """What is known of the real collection of a run started from a guess."""

    def __init__(self, guess: Sequence[str]) -> None:
        self.guessed: dict[str, set[str]] = {}
        for node_id in guess:
            self.guessed.setdefault(module_of(node_id), set()).add(node_id)
        self.modules: tuple[str, ...] | None = None  # discovery order, once known
        self.truth: dict[str, tuple[str, ...]] = {}
        self.deselected_in: dict[str, int] = {}  # by module, from the same first report

    def discovered(self, modules: Sequence[str]) -> list[str]:
        """Record the files discovery found; returns those the guess did not know."""
        # One file may be collected twice (as a doctest module and a test module).
        self.modules = tuple(dict.fromkeys(modules))
        return [module for module in self.modules if module not in self.guessed]

    def learn(self, module: str, node_ids: Sequence[str], deselected: int = 0) -> tuple[str, ...]:
        """Record one module's collected tests (and how many ``-k``/``-m`` left out);
        returns those no shard has yet.

        Only the first report of a module counts: a suite whose test ids change from
        one collection to the next (random parameters) must not plan forever.
        """
        if module in self.truth:
            return ()
        self.truth[module] = tuple(node_ids)
        self.deselected_in[module] = deselected
        planned = self.guessed.get(module, set())
        return tuple(node_id for node_id in node_ids if node_id not in planned)

    def waiting(self) -> list[str]:
        """Discovered modules whose truth is not known yet."""
        return [module for module in self.modules or () if module not in self.truth]

    @property
    def ready(self) -> bool:
        return self.modules is not None and not self.waiting()

    def collected(self) -> tuple[str, ...]:
        """The run's collection: every discovered module's tests, in discovery order."""
        if not self.ready:
            raise ValueError("the collection is not settled yet")
        return tuple(node_id for module in self.modules or () for node_id in self.truth[module])

    def deselected(self) -> int:
        """Tests of the discovered modules that ``-k``, ``-m`` or ``--deselect`` left out."""
        return sum(self.deselected_in.get(module, 0) for module in self.modules or ())
