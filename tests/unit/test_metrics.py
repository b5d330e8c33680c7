"""The /metrics collector over fake readers: what each metric says, in a text
Prometheus parses, and a source that is down leaving only its own metrics out."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from farm.core.domain import Verdict
from farm.core.errors import StoreError
from farm.server.metrics import FinishedRun, MetricsReaders, metrics_registry
from farm.worker.registry import WorkerInfo

NOW = 1_000_000.0


def worker(name: str, capacity: int) -> WorkerInfo:
    return WorkerInfo(name, "m1", 1, capacity, "farm", NOW - 100, NOW - 1)


RUNS = [
    FinishedRun(Verdict.PASSED, 20.0),
    FinishedRun(Verdict.PASSED, 45.0),
    FinishedRun(Verdict.FLAKY, 100.0),
    FinishedRun(Verdict.FAILED, 5000.0),
]


def readers(**changes: object) -> MetricsReaders:
    def finished_runs(window_s: float) -> Sequence[FinishedRun]:
        return RUNS if window_s == 600 else []

    fields: dict[str, object] = {
        "queue": "farm",
        "queue_depth": lambda: 7,
        "live_workers": lambda: [worker("w1", 4), worker("w2", 2)],
        "running_shards": lambda: 3,
        "attempts_stored": lambda: 12345,
        "finished_runs": finished_runs,
    }
    fields.update(changes)
    return MetricsReaders(**fields)  # type: ignore[arg-type]


def scrape(found: MetricsReaders) -> dict[str, list[Sample]]:
    text = generate_latest(metrics_registry(found, window_s=600)).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


def test_each_metric_reads_its_source() -> None:
    families = scrape(readers())
    assert value(families["farm_queue_depth"], "farm_queue_depth", queue="farm") == 7
    assert value(families["farm_workers_alive"], "farm_workers_alive") == 2
    assert value(families["farm_worker_slots"], "farm_worker_slots") == 6
    assert value(families["farm_shards_running"], "farm_shards_running") == 3
    assert value(families["farm_attempts_stored"], "farm_attempts_stored_total") == 12345
    verdicts = families["farm_runs_finished"]
    assert value(verdicts, "farm_runs_finished", verdict="passed") == 2
    assert value(verdicts, "farm_runs_finished", verdict="flaky") == 1
    assert value(verdicts, "farm_runs_finished", verdict="error") == 0
    assert value(families["farm_flaky_run_ratio"], "farm_flaky_run_ratio") == 0.25
    for source in ("broker", "store"):
        assert value(families["farm_metrics_source_up"], "farm_metrics_source_up", source=source)


def test_run_durations_are_a_cumulative_histogram_of_the_window() -> None:
    families = scrape(readers())
    samples = families["farm_run_duration_seconds"]
    bucket = "farm_run_duration_seconds_bucket"
    assert value(samples, bucket, le="10.0") == 0
    assert value(samples, bucket, le="60.0") == 2
    assert value(samples, bucket, le="120.0") == 3
    assert value(samples, bucket, le="7200.0") == 4
    assert value(samples, bucket, le="+Inf") == 4
    # Text format 0.0.4 has no gauge histogram: its sum and count come as gauges.
    assert (
        value(families["farm_run_duration_seconds_gsum"], "farm_run_duration_seconds_gsum") == 5165
    )
    assert (
        value(families["farm_run_duration_seconds_gcount"], "farm_run_duration_seconds_gcount") == 4
    )


def test_no_finished_runs_is_zeros_not_a_division_error() -> None:
    families = scrape(readers(finished_runs=lambda window_s: []))
    assert value(families["farm_flaky_run_ratio"], "farm_flaky_run_ratio") == 0
    samples = families["farm_run_duration_seconds"]
    assert value(samples, "farm_run_duration_seconds_bucket", le="+Inf") == 0


def test_a_source_that_is_down_leaves_out_only_its_metrics() -> None:
    def down() -> int:
        raise StoreError("results store sqlite:///x: cannot count")

    families = scrape(readers(running_shards=down))
    up = families["farm_metrics_source_up"]
    assert value(up, "farm_metrics_source_up", source="store") == 0
    assert value(up, "farm_metrics_source_up", source="broker") == 1
    assert "farm_shards_running" not in families and "farm_flaky_run_ratio" not in families
    assert value(families["farm_queue_depth"], "farm_queue_depth", queue="farm") == 7

    def refused() -> int:
        raise ConnectionError("broker refused")

    families = scrape(readers(queue_depth=refused))
    assert value(families["farm_metrics_source_up"], "farm_metrics_source_up", source="broker") == 0
    assert "farm_workers_alive" not in families and "farm_shards_running" in families
