"""What every sharding strategy implements, and the helpers they share.

A *strategy* turns the node ids of a run (in collection order), their estimates and
the number of workers into *shards*: lists of node ids, each run by one pytest
process, returned in *dispatch order* (the order the queue hands them out). Every
node id must land in exactly one shard, exactly once. Within a shard, node ids are
grouped by module and otherwise kept in collection order, so module-scoped fixtures
are set up once per shard and tests run in the order their authors wrote them.

Strategies are pure: plain data in, plain data out, deterministic for the same input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from farm.core.domain import module_of
from farm.scheduler.estimate import Estimates, with_modules


class Strategy(Protocol):
    """A sharding policy; ``name`` is how users pick it (``--strategy NAME``)."""

    @property
    def name(self) -> str: ...

    def shard(self, node_ids: Sequence[str], estimates: Estimates, workers: int) -> list[list[str]]:
        """Split ``node_ids`` into shards, in dispatch order."""
        ...


def group_by_module(node_ids: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``(module, node ids)`` pairs, modules by first appearance, ids in collection order."""
    groups: dict[str, list[str]] = {}
    for node_id, module in with_modules(node_ids):
        groups.setdefault(module, []).append(node_id)
    return list(groups.items())


def in_run_order(shard: list[str], position: dict[str, int]) -> list[str]:
    """``shard`` grouped by module, modules and tests in collection order.

    ``position`` maps a node id to its index in collection order.
    """
    module_rank: dict[str, int] = {}
    for node_id in shard:
        module = module_of(node_id)
        rank = position[node_id]
        if rank < module_rank.get(module, rank + 1):
            module_rank[module] = rank
    return sorted(shard, key=lambda n: (module_rank[module_of(n)], position[n]))


def longest_first(
    shards: list[list[str]], estimates: Estimates, position: dict[str, int]
) -> list[list[str]]:
    """``shards`` sorted by estimate, longest first; ties by their first test's position."""
    keyed = [(-estimates.shard_s(s), position[s[0]], s) for s in shards if s]
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [s for _, _, s in keyed]
