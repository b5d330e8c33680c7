"""A run's shards on a time line, drawn as an SVG on the server for the run page.

One *lane* per worker slot (``name:pid``), lanes grouped under their machine; each
shard a *bar* from its start to its end. Times are seconds since the run started;
the run's end is its last second, or now for a live run. What the drawing shows
at a glance, and never by colour alone:

* failed shards: red with a hatch, and an ``x`` marker; reissued ones (their worker
  was lost) with a dashed outline and a ring; running ones with an arrow at the end;
* retries: a dashed arrow from the retried shard's first attempt to the retry;
* the *idle tail*: from each lane's last bar to the run's end, shaded, so a run
  held up by one straggler shows as a wall of grey;
* the plan's estimated makespan, as a dashed line over the time axis.

The drawing stays small: shards narrower than a pixel that follow each other on one
lane in one state become one bar (its tooltip counts them), the pixel doubled until
at most MAX_DRAWN_BARS are drawn, and at most ``max_lanes`` lanes are shown, with
a "+N more lanes" note. Elements carry stable classes and data attributes for
tests and scripts: ``g.machine[data-machine]``, ``g.lane[data-slot]``, ``rect.bar.<state>``
(``id="shard-<id>-<attempt>"``), ``rect.idle``, ``path.retry-link``, ``line.makespan``.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_LANES = 96
MAX_DRAWN_BARS = 2500  # bars, merged ones included, before narrow ones merge harder
MAX_RETRY_LINKS = 400
LABEL_MAX_CHARS = 48  # of a bar's label in its tooltip
SLOT_MAX_CHARS = 22  # of a lane's name beside it (its tooltip has it all)

WIDTH_PX = 960
GUTTER_PX = 170  # lane names
RIGHT_PX = 16
TOP_PX = 32  # two rows for the names of the vertical lines
LANE_PX = 14
BAR_PX = 11
HEADER_PX = 18
AXIS_PX = 30
_PLOT_PX = WIDTH_PX - GUTTER_PX - RIGHT_PX

_STYLE = (
    ".timeline{font:11px sans-serif}.machine-header{font-weight:bold}"
    ".lane-label{text-anchor:end}.bar{stroke:#222;stroke-width:.5}"
    ".bar.ok{fill:#5a9e6f}.bar.failed{fill:url(#tl-failed)}"
    ".bar.reissued{fill:#e0b04a;stroke-dasharray:2 1.5;stroke-width:1}"
    ".bar.running{fill:#7d9fe0}.idle{fill:url(#tl-idle)}"
    ".marker{stroke:#000;stroke-width:1.5;fill:none}.marker.running{fill:#000;stroke:none}"
    ".retry-link{stroke:#b03030;stroke-dasharray:3 2;fill:none;opacity:.7}"
    ".makespan{stroke:#444;stroke-dasharray:6 3}.run-end{stroke:#000}"
    ".axis line{stroke:#888}.tick-label,.note{fill:#333}"
)
_DEFS = (
    '<defs><pattern id="tl-failed" width="4" height="4" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><rect width="4" height="4" fill="#d9534f"/>'
    '<rect width="1.5" height="4" fill="#7a1c1a"/></pattern>'
    '<pattern id="tl-idle" width="6" height="6" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/>'
    '<rect width="2" height="6" fill="#c8c8c8"/></pattern>'
    '<marker id="tl-arrow" markerWidth="6" markerHeight="6" refX="5" refY="3"'
    ' orient="auto"><path d="M0,0L6,3L0,6z" fill="#b03030"/></marker></defs>'
)
_NICE_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
# XML 1.0 has no place for most control characters, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class BarState(str, enum.Enum):
    """How one attempt of a shard ended, or that it has not yet."""

    OK = "ok"
    FAILED = "failed"  # some test of it failed
    REISSUED = "reissued"  # its worker was lost; the shard went out again
    RUNNING = "running"


@dataclass(frozen=True)
class TimelineBar:
    """One attempt of one shard on one slot: ``start_s``/``end_s`` in seconds since the
    run started (``end_s`` None while it runs); ``retry_of`` the shard whose failed
    tests this one runs again; ``label`` what the tooltip says it held."""

    shard_id: int
    attempt: int
    worker_slot: str
    machine: str
    start_s: float
    end_s: float | None
    state: BarState
    retry_of: int | None = None
    tests: int = 0
    label: str = ""


@dataclass(frozen=True)
class Timeline:
    """What is drawn: ``elapsed_s`` from the run's start to its end (or to now, when
    ``live``); ``estimated_makespan_s`` the plan's estimate, None when there is none."""

    bars: tuple[TimelineBar, ...]
    elapsed_s: float
    estimated_makespan_s: float | None = None
    live: bool = False


@dataclass
class _Drawn:
    """A bar as drawn: one shard, or narrow ones in a row merged."""

    state: BarState
    x0: float
    x1: float
    bars: list[TimelineBar]
    narrow: bool


def timeline_svg(timeline: Timeline, *, max_lanes: int = MAX_LANES) -> str:
    """The timeline as a standalone SVG document (no XML declaration: it is inlined)."""
    bars = timeline.bars
    ends = [_end(bar, timeline) for bar in bars]
    estimate = timeline.estimated_makespan_s or 0.0
    span_s = max([timeline.elapsed_s, estimate, *ends, 1e-3])
    scale = _PLOT_PX / span_s
    lanes = _lanes(bars)
    shown, hidden = lanes[:max_lanes], lanes[max_lanes:]
    merge_px = 1.0
    drawn = {slot: _merge(slot_bars, timeline, scale, merge_px) for slot, slot_bars in shown}
    while sum(map(len, drawn.values())) > MAX_DRAWN_BARS and merge_px < _PLOT_PX:
        merge_px *= 2  # fewer, wider bars until the drawing fits its budget
        drawn = {slot: _merge(slot_bars, timeline, scale, merge_px) for slot, slot_bars in shown}

    body: list[str] = []
    places: dict[tuple[int, int], tuple[float, float, float]] = {}  # bar: x0, x1, y middle
    y = TOP_PX
    machine: str | None = None
    for (machine_name, slot), _ in shown:
        if machine_name != machine:
            if machine is not None:
                body.append("</g>")
            machine = machine_name
            count = sum(1 for (m, _s), _b in lanes if m == machine_name)
            body.append(f'<g class="machine" data-machine="{_attr(machine_name)}">')
            header = f"{machine_name or 'machine not known'} ({_plural(count, 'slot')})"
            y += HEADER_PX
            body.append(f'<text class="machine-header" x="4" y="{y - 5}">{_text(header)}</text>')
        body.append(_lane(machine_name, slot, drawn[(machine_name, slot)], timeline, scale, y))
        for item in drawn[(machine_name, slot)]:
            for bar in item.bars:
                places[(bar.shard_id, bar.attempt)] = (item.x0, item.x1, y + LANE_PX / 2)
        y += LANE_PX
    if machine is not None:
        body.append("</g>")
    body.append(_retry_links(bars, places))
    if hidden:
        more = sum(len(b) for _, b in hidden)
        failed = sum(1 for _, b in hidden for bar in b if bar.state is BarState.FAILED)
        note = f"+{_plural(len(hidden), 'more lane')} not shown ({_plural(more, 'shard')}"
        note += f", {failed} failed)" if failed else ")"
        y += HEADER_PX
        body.append(f'<text class="note more-lanes" x="4" y="{y - 5}">{_text(note)}</text>')
    if not bars:
        y += HEADER_PX
        body.append(f'<text class="note empty" x="{GUTTER_PX}" y="{y - 5}">no shards ran</text>')
    height = y + AXIS_PX
    top, bottom = TOP_PX, y
    body.append(_axis(span_s, scale, bottom))
    end_name = "now" if timeline.live else "end"
    body.append(_vertical("run-end", timeline.elapsed_s, scale, (top, bottom), end_name, 24))
    if timeline.estimated_makespan_s is not None:
        body.append(_vertical("makespan", estimate, scale, (top, bottom), "estimate", 11))

    slots = len(lanes)
    machines = len({m for (m, _s), _b in lanes})
    summary = (
        f"Shard timeline: {_plural(len(bars), 'shard')} on {_plural(slots, 'slot')} of "
        f"{_plural(machines, 'machine')}, {'running for' if timeline.live else 'ran'} "
        f"{_clock(timeline.elapsed_s)}"
    )
    if timeline.estimated_makespan_s is not None:
        summary += f", estimated {_clock(estimate)}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH_PX}" '
        f'height="{height}" viewBox="0 0 {WIDTH_PX} {height}" role="img" '
        f'data-lanes="{len(shown)}" data-hidden-lanes="{len(hidden)}">'
        f"<title>{_text(summary)}</title><style>{_STYLE}</style>{_DEFS}"
    )
    return head + "".join(body) + "</svg>"


def _lanes(bars: Sequence[TimelineBar]) -> list[tuple[tuple[str, str], list[TimelineBar]]]:
    """``((machine, slot), bars by start)`` for every slot: machines by name (the
    unknown one last), slots by name with their numbers compared as numbers."""
    by_slot: dict[tuple[str, str], list[TimelineBar]] = {}
    for bar in bars:
        by_slot.setdefault((bar.machine, bar.worker_slot), []).append(bar)
    order = sorted(by_slot, key=lambda key: (key[0] == "", _natural(key[0]), _natural(key[1])))
    return [(key, sorted(by_slot[key], key=lambda b: (b.start_s, b.shard_id))) for key in order]


def _merge(
    bars: list[TimelineBar], timeline: Timeline, scale: float, merge_px: float
) -> list[_Drawn]:
    drawn: list[_Drawn] = []
    for bar in bars:
        x0 = GUTTER_PX + max(bar.start_s, 0.0) * scale
        x1 = max(x0, GUTTER_PX + _end(bar, timeline) * scale)
        narrow = x1 - x0 < merge_px
        last = drawn[-1] if drawn else None
        if (
            narrow
            and last is not None
            and last.narrow
            and last.state is bar.state
            and x0 - last.x1 < merge_px
        ):
            last.x1 = max(last.x1, x1)
            last.bars.append(bar)
        else:
            drawn.append(_Drawn(bar.state, x0, x1, [bar], narrow))
    return drawn


def _lane(
    machine: str, slot: str, drawn: list[_Drawn], timeline: Timeline, scale: float, y: float
) -> str:
    parts = [
        f'<g class="lane" data-slot="{_attr(slot)}" data-machine="{_attr(machine)}" '
        f'transform="translate(0,{_n(y)})">'
        f'<text class="lane-label" x="{GUTTER_PX - 6}" y="{BAR_PX - 1}">'
        f"<title>{_text(slot)}</title>{_text(_shortened(slot, SLOT_MAX_CHARS))}</text>"
    ]
    for item in drawn:
        parts.append(_bar(item))
    last_end_s = max(_end(bar, timeline) for item in drawn for bar in item.bars)
    idle_s = timeline.elapsed_s - last_end_s
    if idle_s * scale >= 0.5:
        x0 = GUTTER_PX + last_end_s * scale
        tip = f"idle for {_clock(idle_s)}: its last shard ended at {_clock(last_end_s)}"
        parts.append(
            f'<rect class="idle" x="{_n(x0)}" y="0" width="{_n(idle_s * scale)}" '
            f'height="{BAR_PX}" data-idle-s="{_n(idle_s)}"><title>{_text(tip)}</title></rect>'
        )
    parts.append("</g>")
    return "".join(parts)


def _bar(item: _Drawn) -> str:
    width = max(item.x1 - item.x0, 1.0)
    first = item.bars[0]
    state = item.state.value
    if len(item.bars) == 1:
        ids = f'id="shard-{first.shard_id}-{first.attempt}"'
        if first.retry_of is not None:
            ids += f' data-retry-of="{first.retry_of}"'
        tip = _tooltip(first)
        classes = f"bar {state}"
    else:
        tests = sum(bar.tests for bar in item.bars)
        ids = f'data-shards="{len(item.bars)}"'
        tip = f"{len(item.bars)} shards, {state}, {_plural(tests, 'test')}"
        classes = f"bar {state} merged"
    out = (
        f'<rect class="{classes}" {ids} x="{_n(item.x0)}" width="{_n(width)}" '
        f'height="{BAR_PX}"><title>{_text(tip)}</title></rect>'
    )
    middle, half = item.x0 + width / 2, BAR_PX / 2
    if item.state is BarState.FAILED:
        out += f'<path class="marker failed" d="M{_n(middle - 3)},{_n(half - 3)}l6,6m0,-6l-6,6"/>'
    elif item.state is BarState.REISSUED:
        out += f'<circle class="marker reissued" cx="{_n(middle)}" cy="{_n(half)}" r="2.5"/>'
    elif item.state is BarState.RUNNING:
        tip_x = _n(item.x0 + width)
        out += f'<path class="marker running" d="M{tip_x},0l5,{_n(half)}l-5,{_n(half)}z"/>'
    return out


def _tooltip(bar: TimelineBar) -> str:
    end = "now" if bar.end_s is None else _clock(bar.end_s)
    tip = f"shard {bar.shard_id}"
    if bar.attempt > 1:
        tip += f" attempt {bar.attempt}"
    if bar.retry_of is not None:
        tip += f" (retry of shard {bar.retry_of})"
    tip += f": {bar.state.value}, {_plural(bar.tests, 'test')}, {_clock(bar.start_s)} to {end}"
    if bar.label:
        tip += f"\n{_shortened(bar.label, LABEL_MAX_CHARS)}"
    return tip


def _retry_links(
    bars: Sequence[TimelineBar], places: dict[tuple[int, int], tuple[float, float, float]]
) -> str:
    """An arrow from each retry's first retried attempt to it, when both are shown."""
    firsts: dict[int, int] = {}
    for bar in bars:
        firsts[bar.shard_id] = min(firsts.get(bar.shard_id, bar.attempt), bar.attempt)
    links: list[str] = []
    for bar in bars:
        if bar.retry_of is None or bar.retry_of not in firsts or len(links) >= MAX_RETRY_LINKS:
            continue
        source = places.get((bar.retry_of, firsts[bar.retry_of]))
        target = places.get((bar.shard_id, bar.attempt))
        if source is None or target is None:
            continue
        (_, x0, y0), (x1, _, y1) = source, target
        links.append(
            f'<path class="retry-link" data-from="shard-{bar.retry_of}-{firsts[bar.retry_of]}" '
            f'data-to="shard-{bar.shard_id}-{bar.attempt}" marker-end="url(#tl-arrow)" '
            f'd="M{_n(x0)},{_n(y0)}L{_n(max(x1, x0))},{_n(y1)}"/>'
        )
    return f'<g class="retry-links">{"".join(links)}</g>'


def _axis(span_s: float, scale: float, y: float) -> str:
    step = next((s for s in _NICE_STEPS_S if span_s / s <= 10), None)
    if step is None:  # longer than 10 hours: whole hours
        step = 3600.0 * math.ceil(span_s / 36000)
    parts = [
        f'<g class="axis"><line x1="{GUTTER_PX}" y1="{_n(y)}" '
        f'x2="{WIDTH_PX - RIGHT_PX}" y2="{_n(y)}"/>'
    ]
    for index in range(int(span_s / step + 1e-9) + 1):
        x = GUTTER_PX + index * step * scale
        parts.append(
            f'<line class="tick" x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x)}" y2="{_n(y + 4)}"/>'
            f'<text class="tick-label" x="{_n(x)}" y="{_n(y + 15)}" text-anchor="middle">'
            f"{_clock(index * step)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def _vertical(
    kind: str, at_s: float, scale: float, rows: tuple[float, float], name: str, label_y: int
) -> str:
    """A line across the lanes at ``at_s``, named above them at ``label_y``."""
    x = GUTTER_PX + at_s * scale
    anchor = "end" if x > GUTTER_PX + _PLOT_PX / 2 else "start"  # the name stays inside
    label = f"{name} {_clock(at_s)}"
    return (
        f'<line class="{kind}" x1="{_n(x)}" y1="{_n(rows[0] - 4)}" x2="{_n(x)}" '
        f'y2="{_n(rows[1])}" data-s="{_n(at_s)}"><title>{label}</title></line>'
        f'<text class="note {kind}-label" x="{_n(x)}" y="{label_y}" text-anchor="{anchor}">'
        f"{label}</text>"
    )


def _end(bar: TimelineBar, timeline: Timeline) -> float:
    return timeline.elapsed_s if bar.end_s is None else bar.end_s


def _clock(seconds: float) -> str:
    """``0.5s``, ``42s``, ``3m05s``, ``1h02m``."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s" if whole % 60 else f"{whole // 60}m"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _n(value: float) -> str:
    """A coordinate with one decimal at most: the drawing's size is mostly numbers."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _text(text: str) -> str:
    """``text`` as XML character data: escaped, and without what XML cannot hold."""
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return _text(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


__all__ = ["BarState", "Timeline", "TimelineBar", "timeline_svg"]
