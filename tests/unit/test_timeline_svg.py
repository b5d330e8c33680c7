"""The shard timeline drawn as SVG (farm.report.timeline_svg), read back with ElementTree."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from farm.report.timeline_svg import (
    MAX_DRAWN_BARS,
    BarState,
    Timeline,
    TimelineBar,
    timeline_svg,
)

SVG = "{http://www.w3.org/2000/svg}"


def parsed(timeline: Timeline, **options: int) -> ET.Element:
    return ET.fromstring(timeline_svg(timeline, **options))


def having(root: ET.Element, *classes: str) -> list[ET.Element]:
    """The elements whose class attribute holds every one of ``classes``, in order."""
    return [e for e in root.iter() if set(classes) <= set(e.get("class", "").split())]


def bar(
    shard_id: int,
    slot: str,
    start_s: float,
    end_s: float | None,
    state: BarState = BarState.OK,
    *,
    machine: str = "m1",
    retry_of: int | None = None,
    tests: int = 10,
    label: str = "",
) -> TimelineBar:
    return TimelineBar(shard_id, 1, slot, machine, start_s, end_s, state, retry_of, tests, label)


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    assert found is not None
    return found.text or ""


# Two machines: b has two slots, a one; slot "w:10" sorts after "w:9". Shard 3 fails
# and shard 5 retries it on the other machine; lane a/w:1 ends early and idles.
RUN = Timeline(
    bars=(
        bar(1, "w:9", 0, 30, machine="b"),
        bar(2, "w:10", 0, 40, machine="b"),
        bar(3, "w:9", 30, 50, BarState.FAILED, machine="b", label="tests/test_x.py +9"),
        bar(4, "w:1", 0, 20, machine="a"),
        bar(5, "w:1", 52, 60, machine="a", retry_of=3, tests=2),
        bar(6, "w:10", 40, 61, machine="b"),
    ),
    elapsed_s=61.0,
    estimated_makespan_s=55.0,
)


def test_one_lane_per_slot_grouped_under_its_machine() -> None:
    root = parsed(RUN)
    machines = having(root, "machine")
    assert [m.get("data-machine") for m in machines] == ["a", "b"]
    lanes = [[lane.get("data-slot") for lane in having(m, "lane")] for m in machines]
    assert lanes == [["w:1"], ["w:9", "w:10"]]
    assert [h.text for h in having(root, "machine-header")] == ["a (1 slot)", "b (2 slots)"]
    assert root.get("data-lanes") == "3"
    assert "6 shards on 3 slots of 2 machines" in title(root)


def test_every_shard_is_a_bar_with_a_tooltip() -> None:
    root = parsed(RUN)
    bars = having(root, "bar")
    assert sorted(b.get("id", "") for b in bars) == [f"shard-{n}-1" for n in range(1, 7)]
    (failed,) = having(root, "bar", "failed")
    assert failed.get("id") == "shard-3-1"
    assert title(failed) == "shard 3: failed, 10 tests, 30s to 50s\ntests/test_x.py +9"
    # Later bars lie to the right of earlier ones on their lane.
    (lane,) = [e for e in having(root, "lane") if e.get("data-slot") == "w:9"]
    xs = [float(b.get("x", "")) for b in having(lane, "bar")]
    assert xs == sorted(xs) and xs[0] < xs[1]


def test_a_failure_is_marked_by_more_than_its_colour() -> None:
    root = parsed(RUN)
    (lane,) = [e for e in having(root, "lane") if e.get("data-slot") == "w:9"]
    assert len(having(lane, "marker", "failed")) == 1
    assert having(root, "marker") == having(lane, "marker")  # ok bars carry none


def test_a_retry_points_back_at_its_first_attempt() -> None:
    root = parsed(RUN)
    (link,) = having(root, "retry-link")
    assert (link.get("data-from"), link.get("data-to")) == ("shard-3-1", "shard-5-1")
    assert link.get("marker-end") == "url(#tl-arrow)"
    (retry,) = [b for b in having(root, "bar") if b.get("id") == "shard-5-1"]
    assert retry.get("data-retry-of") == "3"
    assert "retry of shard 3" in title(retry)


def test_the_idle_tail_of_each_lane_that_ended_early() -> None:
    root = parsed(RUN)
    idle = {lane.get("data-slot"): having(lane, "idle") for lane in having(root, "lane")}
    assert idle["w:10"] == []  # busy to the end (61 s)
    assert [e.get("data-idle-s") for e in idle["w:1"]] == ["1"]
    assert [e.get("data-idle-s") for e in idle["w:9"]] == ["11"]
    assert title(idle["w:9"][0]) == "idle for 11s: its last shard ended at 50s"


def test_the_estimate_and_the_end_as_lines_over_a_time_axis() -> None:
    root = parsed(RUN)
    (makespan,) = having(root, "makespan")
    (end,) = having(root, "run-end")
    assert (makespan.get("data-s"), end.get("data-s")) == ("55", "61")
    assert float(makespan.get("x1", "")) < float(end.get("x1", ""))
    labels = [t.text for t in having(root, "tick-label")]
    assert labels == ["0s", "10s", "20s", "30s", "40s", "50s", "1m"]
    assert [t.text for t in having(root, "makespan-label")] == ["estimate 55s"]
    assert not having(parsed(Timeline(RUN.bars, 61.0)), "makespan")


def test_a_live_run_draws_running_shards_to_now() -> None:
    live = Timeline(
        (bar(1, "w:1", 0, 10), bar(2, "w:1", 10, None, BarState.RUNNING), bar(3, "w:2", 0, 4)),
        elapsed_s=20.0,
        live=True,
    )
    root = parsed(live)
    (running,) = having(root, "bar", "running")
    (end,) = having(root, "run-end")
    right = float(running.get("x", "")) + float(running.get("width", ""))
    assert abs(right - float(end.get("x1", ""))) < 0.2
    assert "10s to now" in title(running)
    assert len(having(root, "marker", "running")) == 1
    assert [t.text for t in having(root, "run-end-label")] == ["now 20s"]
    idle = {lane.get("data-slot"): having(lane, "idle") for lane in having(root, "lane")}
    assert (idle["w:1"], len(idle["w:2"])) == ([], 1)


def test_a_reissued_shard_has_its_own_mark() -> None:
    root = parsed(Timeline((bar(1, "w:1", 0, 5, BarState.REISSUED),), elapsed_s=5.0))
    assert len(having(root, "bar", "reissued")) == len(having(root, "marker", "reissued")) == 1


def test_names_from_workers_and_tests_are_text() -> None:
    hostile = "<script>alert(1)</script>"
    timeline = Timeline(
        (
            bar(1, hostile, 0, 5, machine='m"1&<b>', label="]]><x/>\x00\x1b[31m"),
            bar(2, "w\nwith\ttabs", 0, 5, machine='m"1&<b>'),
        ),
        elapsed_s=5.0,
    )
    svg = timeline_svg(timeline)
    root = ET.fromstring(svg)  # well-formed, control characters and all
    assert not [e for e in root.iter() if e.tag in ("script", f"{SVG}script", "x", f"{SVG}x")]
    assert "<script>" not in svg
    (machine,) = having(root, "machine")
    assert machine.get("data-machine") == 'm"1&<b>'
    slots = [lane.get("data-slot") for lane in having(root, "lane")]
    assert slots == [hostile, "w\nwith\ttabs"]
    (label,) = [e for e in having(root, "lane-label") if hostile.startswith(title(e))]
    assert "".join(label.itertext()).startswith(hostile)
    (first,) = [b for b in having(root, "bar") if b.get("id") == "shard-1-1"]
    assert title(first).endswith("]]><x/>\ufffd\ufffd[31m")


def farm_sized_run(seed: int) -> Timeline:
    """100,000 tests in 2,000 shards on 64 slots of 4 machines; 5 % fail and are
    retried on another slot."""
    rng = random.Random(seed)
    slots = [
        (f"machine-{m}.ci.example.com", f"worker-{m}:{4000 + s}")
        for m in range(4)
        for s in range(16)
    ]
    ends = dict.fromkeys(slots, 0.0)
    bars: list[TimelineBar] = []
    for shard_id in range(1, 2001):
        machine, slot = min(slots, key=lambda s: ends[s])  # the slot free first
        start_s = ends[machine, slot] + rng.uniform(0.05, 0.5)
        end_s = start_s + rng.uniform(5, 30)
        ends[machine, slot] = end_s
        state = BarState.FAILED if rng.random() < 0.05 else BarState.OK
        label = f"tests/integration/pkg_{shard_id % 97}/test_module_{shard_id}.py::Test::test_a +49"
        bars.append(
            bar(shard_id, slot, start_s, end_s, state, machine=machine, tests=50, label=label)
        )
    for first in [b for b in bars if b.state is BarState.FAILED]:
        machine, slot = min(slots, key=lambda s: ends[s])
        start_s = max(ends[machine, slot], first.end_s or 0.0)
        ends[machine, slot] = start_s + 3
        bars.append(
            bar(len(bars) + 1, slot, start_s, start_s + 3, machine=machine, retry_of=first.shard_id)
        )
    elapsed_s = max(ends.values()) + 1
    return Timeline(tuple(bars), elapsed_s, estimated_makespan_s=elapsed_s * 0.9)


def test_a_hundred_thousand_test_run_stays_small() -> None:
    timeline = farm_sized_run(7)
    svg = timeline_svg(timeline)
    assert len(svg.encode()) < 500_000
    root = ET.fromstring(svg)
    assert len(having(root, "lane")) == 64
    failed = [b for b in timeline.bars if b.state is BarState.FAILED]
    assert (
        len(having(root, "bar", "failed")) == len(having(root, "marker", "failed")) == len(failed)
    )
    assert len(having(root, "retry-link")) == len(failed)


def test_shards_narrower_than_a_pixel_merge_and_none_is_lost() -> None:
    rng = random.Random(3)
    bars = [
        bar(
            n,
            f"w:{n % 4}",
            n * 0.01,
            n * 0.01 + 0.009,
            BarState.FAILED if rng.random() < 0.01 else BarState.OK,
        )
        for n in range(20_000)
    ]
    root = parsed(Timeline(tuple(bars), elapsed_s=200.0))
    drawn = having(root, "bar")
    assert len(drawn) <= MAX_DRAWN_BARS
    assert sum(int(b.get("data-shards", "1")) for b in drawn) == 20_000
    merged_failed = having(root, "bar", "failed")
    assert sum(int(b.get("data-shards", "1")) for b in merged_failed) == sum(
        1 for b in bars if b.state is BarState.FAILED
    )
    assert len(having(root, "marker", "failed")) == len(merged_failed)


def test_lanes_beyond_the_cap_are_counted_not_drawn() -> None:
    bars = [
        bar(n, f"w:{n}", 0, 10, BarState.FAILED if n == 99 else BarState.OK) for n in range(100)
    ]
    root = parsed(Timeline(tuple(bars), elapsed_s=10.0), max_lanes=10)
    assert [lane.get("data-slot") for lane in having(root, "lane")] == [f"w:{n}" for n in range(10)]
    assert root.get("data-hidden-lanes") == "90"
    (note,) = having(root, "more-lanes")
    assert note.text == "+90 more lanes not shown (90 shards, 1 failed)"


def test_an_empty_run() -> None:
    root = parsed(Timeline((), elapsed_s=0.0))
    assert having(root, "lane") == [] and having(root, "bar") == []
    assert [e.text for e in having(root, "empty")] == ["no shards ran"]
    assert [t.text for t in having(root, "tick-label")] == ["0s"]
