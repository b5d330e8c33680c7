"""``GET /metrics``: the farm's state in Prometheus' text format.

Every scrape reads the farm afresh through :class:`MetricsReaders` (small callables,
so the collector is tested with plain fakes and the server wires the real ones):
two from the broker, three from the store. Each read is cheap: a list length, one
hash, a count over the running runs' shards (runs are indexed by state), the
highest attempt id (the primary key's index) and the runs that finished within
the last ``window_s``. Exposed:

``farm_queue_depth{queue}``
    Shard tasks waiting in the farm's Celery queue (the length of kombu's list).
``farm_workers_alive``, ``farm_worker_slots``
    Workers of the registry seen within ``WORKER_SEEN_S``, and their capacity.
``farm_shards_running``
    Shards running, of runs running.
``farm_attempts_stored_total``
    A counter: the highest attempt id of the store. Ids are given in order and
    never reused, so ``rate(farm_attempts_stored_total[5m])`` is the results
    ingested per second, read off an index rather than by counting billions of rows.
``farm_run_duration_seconds``
    A gauge histogram of the makespans (start to finish) of the runs that finished
    within the window: a distribution of now, not an ever-growing count, which is
    what Prometheus' gauge histogram means.
``farm_runs_finished{verdict}``
    Runs that finished within the window, by verdict (every verdict, zeros too).
``farm_flaky_run_ratio``
    Of those runs, the share whose verdict is flaky (0 when none finished).
``farm_metrics_source_up{source}``
    1 when the broker (or the store) answered this scrape; when one does not, its
    metrics are left out rather than the scrape failing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select

from farm.core import defaults
from farm.core.domain import RunState, Verdict
from farm.core.errors import FarmError
from farm.core.keys import Keys
from farm.store.connection import StoreConnection
from farm.store.models import Attempt, Run, Shard
from farm.store.records import ShardState
from farm.worker.registry import WorkerInfo, WorkerRegistry

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS_S = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

# What a reader may raise when its source is down: the scrape goes on without it.
_SOURCE_ERRORS = (FarmError, redis.RedisError, OSError)


@dataclass(frozen=True)
class FinishedRun:
    verdict: Verdict | None
    duration_s: float


@dataclass(frozen=True)
class MetricsReaders:
    """Where each scrape reads from; each callable is one cheap read."""

    queue: str  # the Celery queue of shards, as named in the settings
    queue_depth: Callable[[], int]
    live_workers: Callable[[], Sequence[WorkerInfo]]
    running_shards: Callable[[], int]
    attempts_stored: Callable[[], int]
    finished_runs: Callable[[float], Sequence[FinishedRun]]  # within the last seconds given


class FarmCollector(Collector):
    def __init__(
        self, readers: MetricsReaders, *, window_s: float = defaults.METRICS_WINDOW_S
    ) -> None:
        self.readers = readers
        self.window_s = window_s

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "farm_metrics_source_up", "Whether the source answered this scrape.", labels=["source"]
        )
        broker = self._read("broker", self._broker)
        store = self._read("store", self._store)
        up.add_metric(["broker"], 0.0 if broker is None else 1.0)
        up.add_metric(["store"], 0.0 if store is None else 1.0)
        yield up
        yield from broker or ()
        yield from store or ()

    def _read(self, source: str, read: Callable[[], list[Metric]]) -> list[Metric] | None:
        try:
            return read()
        except _SOURCE_ERRORS as e:
            log.warning("metrics: the %s did not answer: %s", source, e)
            return None

    def _broker(self) -> list[Metric]:
        depth = GaugeMetricFamily(
            "farm_queue_depth", "Shard tasks waiting in the farm's queue.", labels=["queue"]
        )
        depth.add_metric([self.readers.queue], self.readers.queue_depth())
        workers = self.readers.live_workers()
        return [
            depth,
            GaugeMetricFamily(
                "farm_workers_alive",
                f"Workers seen within {defaults.WORKER_SEEN_S:g} s.",
                value=len(workers),
            ),
            GaugeMetricFamily(
                "farm_worker_slots",
                "Shards the live workers run at once.",
                value=sum(w.capacity for w in workers),
            ),
        ]

    def _store(self) -> list[Metric]:
        window = f"{self.window_s:g} s"
        shards = GaugeMetricFamily(
            "farm_shards_running",
            "Shards running, of runs running.",
            value=self.readers.running_shards(),
        )
        attempts = CounterMetricFamily(
            "farm_attempts_stored",
            "Test attempts stored (the highest attempt id): its rate is results per second.",
            value=self.readers.attempts_stored(),
        )
        runs = self.readers.finished_runs(self.window_s)
        durations = GaugeHistogramMetricFamily(
            "farm_run_duration_seconds",
            f"Makespans of the runs finished within the last {window}.",
            buckets=_buckets([r.duration_s for r in runs]),
            gsum_value=sum(r.duration_s for r in runs),
        )
        verdicts = GaugeMetricFamily(
            "farm_runs_finished",
            f"Runs finished within the last {window}, by verdict.",
            labels=["verdict"],
        )
        for verdict in Verdict:
            verdicts.add_metric([verdict.value], sum(1 for r in runs if r.verdict is verdict))
        decided = [r for r in runs if r.verdict is not None]
        flaky = sum(1 for r in decided if r.verdict is Verdict.FLAKY)
        ratio = GaugeMetricFamily(
            "farm_flaky_run_ratio",
            f"Share of the runs finished within the last {window} whose verdict is flaky.",
            value=flaky / len(decided) if decided else 0.0,
        )
        return [shards, attempts, durations, verdicts, ratio]


def _buckets(durations_s: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound, +Inf last, as Prometheus wants them."""
    bounds = [*DURATION_BUCKETS_S, math.inf]
    return [(_bound(b), float(sum(1 for d in durations_s if d <= b))) for b in bounds]


def _bound(seconds: float) -> str:
    """An upper bound as Prometheus' own histograms spell it: 10.0, +Inf."""
    return "+Inf" if seconds == math.inf else repr(float(seconds))


def metrics_registry(
    readers: MetricsReaders, *, window_s: float = defaults.METRICS_WINDOW_S
) -> CollectorRegistry:
    """A registry of its own (never the process-wide one), holding the farm's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FarmCollector(readers, window_s=window_s))
    return registry


def farm_readers(
    client: redis.Redis,
    keys: Keys,
    queue: str,
    db: StoreConnection,
    *,
    clock: Callable[[], float] = time.time,
) -> MetricsReaders:
    """The real readers: the broker through ``client``, the store through ``db``;
    ``clock`` says which workers are live and which runs finished lately."""
    registry = WorkerRegistry(client, keys, clock=clock)

    def queue_depth() -> int:
        return int(client.llen(keys.queue(queue)))

    def running_shards() -> int:
        with db.transaction("count the running shards") as connection:
            count = connection.execute(
                select(func.count())
                .select_from(Shard)
                .join(Run, Run.id == Shard.run_id)
                .where(Run.state == RunState.RUNNING, Shard.state == ShardState.RUNNING)
            ).scalar_one()
        return int(count)

    def attempts_stored() -> int:
        with db.transaction("read the highest attempt id") as connection:
            highest = connection.execute(select(func.max(Attempt.id))).scalar_one()
        return int(highest or 0)

    def finished_runs(window_s: float) -> list[FinishedRun]:
        since = clock() - window_s
        with db.transaction("read the runs finished lately") as connection:
            rows = connection.execute(
                select(Run.verdict, Run.created_at, Run.started_at, Run.finished_at).where(
                    Run.state == RunState.FINISHED, Run.finished_at >= since
                )
            ).all()
        return [
            FinishedRun(verdict, max(0.0, (finished or 0.0) - (started or created)))
            for verdict, created, started, finished in rows
        ]

    return MetricsReaders(
        queue=queue,
        queue_depth=queue_depth,
        live_workers=registry.live,
        running_shards=running_shards,
        attempts_stored=attempts_stored,
        finished_runs=finished_runs,
    )


__all__ = [
    "CONTENT_TYPE",
    "FarmCollector",
    "FinishedRun",
    "MetricsReaders",
    "farm_readers",
    "metrics_registry",
]
