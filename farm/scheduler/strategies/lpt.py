"""``lpt`` (the default): longest first, with guided shard sizes that shrink to the end.

Terms: the *work* of a run is the sum of its test estimates plus one setup per
module; the *share* is work / workers, what each worker would run in a perfect
split. A shard's *target* is the size it is cut to.

Workers pull shards from a queue in dispatch order, so the plan only has to make
three things true: nothing long starts late, nothing uncertain starts late, and the
last shards to start are small, so that whatever error the estimates carry is
absorbed by workers that finish early pulling the small shards that remain. Hence:

1. *Long tests alone.* A test at least as long as the first target gets a shard of
   its own; these go first, as they are the critical path.
2. *Probes next.* Tests with no history of their own (*guessed*) are the largest
   error: one may well be a 15 s test planned as 0.2 s. They go into small *probe*
   shards dispatched right after the long tests, so a surprise starts near time 0
   where the queue can still absorb it. (Tuned on make_suite-like suites, this cut
   the worst makespan over 60 seeds from 1.76x to 1.16x the lower bound.) Probes are
   skipped when guessed tests are most of the work: then nothing stands out.
3. *Guided sizes* (guided self-scheduling) for the rest: each next shard is cut to
   ``max(floor, min(head, remaining work / (guided_factor * workers)))``, so sizes
   start at ``head_fraction`` of the share and shrink geometrically to the floor.
   Every shard pays a start-up and a setup per module it touches (its *fixed cost*),
   so small shards only at the end keep their count low. The floor balances the two
   costs it trades: the imbalance left at the end grows with the floor, the fixed
   costs of the tail shrink with it, which puts the best floor near
   ``sqrt(tail_weight * fixed cost * share)`` (2 s for the standard suite).
4. *Modules whole when they fit.* Modules are taken largest first, so big modules
   are cut into the big early shards and small modules fill the small late ones
   whole. A module is split into contiguous chunks only when it does not fit; a
   shard already near its target is closed at a module boundary rather than
   splitting the next module.
5. *Longest first* within each group, ties broken by collection order: the plan is
   deterministic for the same input.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import ClassVar

from farm.core import defaults
from farm.scheduler.estimate import Estimates
from farm.scheduler.strategies.base import group_by_module

# A *piece*: (rank of its module in collection order, module, some of its node ids in
# collection order). A *chunk*: (estimated seconds, the runs of pieces it holds).
Piece = tuple[int, str, list[str]]
Chunk = tuple[float, list[tuple[int, list[str]]]]


@dataclass(frozen=True)
class LongestFirst:
    """Guided longest-first sharding with probes; the fields are tuning knobs whose
    defaults were tuned with :mod:`farm.scheduler.simulate` on make_suite-like suites.

    ``head_fraction``: the largest target, as a fraction of the share.
    ``guided_factor``: after that, a shard is cut to remaining / (factor x workers).
    ``tail_weight``: sets the smallest target, ``sqrt(tail_weight * fixed * share)``,
    capped at half a share so that a small suite still spreads over every worker.
    ``snap_fraction``: how far (as a fraction of the target) a shard may over- or
    undershoot its target to keep a module whole.
    ``probe_factor``: probe shards are cut to this many times the smallest target.
    ``probe_max_fraction``: probes are made only while guessed tests weigh at most
    this fraction of the work.
    ``shard_overhead_s``: the start-up each shard pays, part of its fixed cost.
    """

    name: ClassVar[str] = "lpt"
    head_fraction: float = 0.6
    guided_factor: float = 1.0
    tail_weight: float = 0.4
    snap_fraction: float = 0.25
    probe_factor: float = 3.0
    probe_max_fraction: float = 0.25
    shard_overhead_s: float = defaults.SHARD_OVERHEAD_S

    def shard(self, node_ids: Sequence[str], estimates: Estimates, workers: int) -> list[list[str]]:
        if not node_ids:
            return []
        test_s, setup_s = estimates.test_s, estimates.setup_s
        modules = group_by_module(node_ids)
        work_s = sum(map(test_s.__getitem__, node_ids)) + sum(setup_s[m] for m, _ in modules)
        share_s = work_s / workers
        setups = sorted(setup_s[m] for m, _ in modules)
        fixed_s = self.shard_overhead_s + setups[len(setups) // 2]
        floor_s = min(math.sqrt(self.tail_weight * fixed_s * share_s), share_s / 2)
        head_s = self.head_fraction * share_s
        spread = self.guided_factor * workers

        def target_s(remaining_s: float) -> float:
            return max(floor_s, min(head_s, remaining_s / spread))

        def probe_target_s(_: float) -> float:
            return min(self.probe_factor * floor_s, share_s / 2)

        guessed = estimates.guessed
        guessed_s = sum(test_s[n] for n in guessed)  # may include ids not in this run
        probing = 0 < guessed_s <= self.probe_max_fraction * work_s
        first_target_s = target_s(work_s)
        solos: list[Chunk] = []
        probes: list[Piece] = []
        rests: list[tuple[float, Piece]] = []
        for rank, (module, ids) in enumerate(modules):
            setup = setup_s[module]
            probe: list[str] = []
            rest: list[str] = []
            for node_id in ids:
                if test_s[node_id] + setup >= first_target_s:
                    solos.append((test_s[node_id] + setup, [(rank, [node_id])]))
                elif probing and node_id in guessed:
                    probe.append(node_id)
                else:
                    rest.append(node_id)
            if probe:
                probes.append((rank, module, probe))
            if rest:
                rests.append((setup + sum(map(test_s.__getitem__, rest)), (rank, module, rest)))
        rests.sort(key=lambda r: (-r[0], r[1][0]))  # largest module first

        # Known-long tests first (the critical path), then the guessed tests (the
        # largest error, absorbed best when started early), then the rest.
        groups = (
            solos,
            _cut(probes, test_s, setup_s, probe_target_s, self.snap_fraction),
            _cut([p for _, p in rests], test_s, setup_s, target_s, self.snap_fraction),
        )
        shards: list[list[str]] = []
        for chunks in groups:
            # Stable sort: equal estimates keep the deterministic cut order.
            for _, runs in sorted(chunks, key=lambda c: -c[0]):
                runs.sort(key=lambda r: r[0])  # modules in collection order
                shards.append([n for _, ids in runs for n in ids])
        return shards


def _cut(
    pieces: list[Piece],
    test_s: Mapping[str, float],
    setup_s: Mapping[str, float],
    target_s: Callable[[float], float],
    snap_fraction: float,
) -> list[Chunk]:
    """Cut ``pieces`` in order into chunks of ``target_s(remaining work)`` seconds.

    A piece is kept whole when it fits the current chunk within ``snap_fraction``
    of the target; otherwise the chunk is closed if it is near its target or if the
    piece fits a chunk of its own, else filled with a contiguous run of the piece.
    """
    remaining_s = sum(setup_s[m] + sum(map(test_s.__getitem__, ids)) for _, m, ids in pieces)
    chunks: list[Chunk] = []
    current: list[tuple[int, list[str]]] = []
    current_s = 0.0
    target = target_s(remaining_s)
    for rank, module, ids in pieces:
        setup = setup_s[module]
        # prefix_s[i]: tests ids[:i] together, so any run's cost is one subtraction
        # and the longest run that fits is one bisection.
        prefix_s = [0.0, *accumulate(map(test_s.__getitem__, ids))]
        end_s = prefix_s[-1]
        remaining_s -= setup  # the one setup the work counts, paid wherever it lands
        i = 0
        while i < len(ids):
            high_s, low_s = target * (1 + snap_fraction), target * (1 - snap_fraction)
            rest_s = end_s - prefix_s[i]
            if current_s + rest_s + setup <= high_s:
                # The rest of the piece fits: keep it whole.
                current.append((rank, ids[i:]))
                current_s += rest_s + setup
                remaining_s -= rest_s
                if current_s >= low_s:
                    chunks.append((current_s, current))
                    current, current_s = [], 0.0
                    target = target_s(remaining_s)
                break
            if current and (current_s >= low_s or rest_s + setup <= high_s):
                chunks.append((current_s, current))
                current, current_s = [], 0.0
                target = target_s(remaining_s)
                continue
            # The longest run ids[i:j] that keeps the chunk within its target; at
            # least one test when the chunk is empty, so every chunk makes progress.
            room_s = target - current_s - setup
            j = bisect_right(prefix_s, prefix_s[i] + room_s, lo=i + 1) - 1
            if j == i and not current:
                j = i + 1
            size_s = current_s + setup + prefix_s[j] - prefix_s[i]
            if j > i:
                current.append((rank, ids[i:j]))
            remaining_s -= prefix_s[j] - prefix_s[i]
            chunks.append((size_s if j > i else current_s, current))
            current, current_s, i = [], 0.0, j
            target = target_s(remaining_s)
    if current:
        chunks.append((current_s, current))
    return chunks
