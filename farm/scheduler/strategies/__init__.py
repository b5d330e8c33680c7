"""Sharding strategies, one module each, behind :class:`~farm.scheduler.strategies.base.Strategy`.

``lpt`` is the default; ``modules`` and ``round_robin`` are baselines to compare with.
"""

from __future__ import annotations

from collections.abc import Callable

from farm.core import defaults
from farm.core.errors import PlanError
from farm.scheduler.strategies.base import Strategy
from farm.scheduler.strategies.lpt import LongestFirst
from farm.scheduler.strategies.modules import WholeModules
from farm.scheduler.strategies.round_robin import RoundRobin

# Factories, so that every plan gets its own instance and no strategy is a global.
# Each takes the per-shard start-up cost; strategies that do not size shards ignore it.
_FACTORIES: dict[str, Callable[[float], Strategy]] = {
    LongestFirst.name: lambda overhead_s: LongestFirst(shard_overhead_s=overhead_s),
    WholeModules.name: lambda _: WholeModules(),
    RoundRobin.name: lambda _: RoundRobin(),
}


def strategy_names() -> tuple[str, ...]:
    """The names :func:`get_strategy` knows, sorted."""
    return tuple(sorted(_FACTORIES))


def get_strategy(name: str, *, shard_overhead_s: float = defaults.SHARD_OVERHEAD_S) -> Strategy:
    """The strategy called ``name``, tuned for ``shard_overhead_s``; PlanError if unknown."""
    factory = _FACTORIES.get(name)
    if factory is None:
        known = ", ".join(strategy_names())
        raise PlanError(f"unknown sharding strategy {name!r} (known: {known})")
    return factory(shard_overhead_s)


__all__ = ["Strategy", "get_strategy", "strategy_names"]
