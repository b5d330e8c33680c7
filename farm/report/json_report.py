"""A machine-readable report of one run, for scripts and dashboards.

The file is one UTF-8 JSON object. Key names are stable: a key is only ever added,
never renamed or removed, without raising ``format_version``.

Top level:

``format_version`` (int)
    The schema version of this document, now ``2``; version ``1`` called a shard's
    ``machine`` ``host``.
``run_id`` (str)
``verdict`` (str)
    One of :class:`farm.core.domain.Verdict`'s values: ``passed``, ``failed``, ``flaky``,
    ``error``, ``no_tests``, ``interrupted``.
``exit_code`` (int)
    The exit code farm gives the verdict (``0`` passed or flaky, ``1`` failed, ...).
``message`` (str)
    Why the verdict is error or interrupted; may be empty.
``collected`` (int)
    How many tests the run owed a result for.
``counts`` (object of str to int)
    Final results by outcome: one key for every :class:`farm.core.domain.Outcome` value
    (zero included, so readers need no defaults) plus ``missing``.
``makespan_s`` (float)
    Wall time of the run, first dispatch to last result.
``estimated_makespan_s`` (float)
    What the plan expected the makespan to be.
``workers`` (int)
``started_at``, ``finished_at`` (float or null)
    Unix times; null when unknown.
``tests`` (array)
    One object per final result, in collection order, with ``node_id`` (str),
    ``outcome`` (str), ``duration_s`` (float), ``module_setup_s`` (float, the
    module-scoped setup this test paid), ``worker`` (str), ``shard`` (int),
    ``attempt`` (int, 1 for the first), ``started_at`` and ``finished_at`` (float
    unix times or null, for shard timelines), ``longrepr`` (str, traceback or skip
    reason, truncated by the worker), ``output`` (str, captured output, truncated).
``missing`` (array of str)
    Node ids that never got a result, in collection order.
``shards`` (array)
    One object per shard, by id: ``shard`` (int), ``tests`` (int), ``worker``
    (str, the slot ``name:pid`` that ran it, "" if none), ``machine`` (str, the
    machine that slot is on), ``started_at`` and ``finished_at`` (float unix times
    or null).
``snapshot`` (object or null)
    The code snapshot the workers ran: ``digest`` (sha256), ``size_bytes``,
    ``uploaded_bytes`` (0 when the store already had it), ``pack_s``,
    ``upload_s``; null when workers read the submitter's disk.

Durations are seconds rounded to microseconds; a duration that is not a finite
number is written as null rather than breaking strict JSON parsers. Text from the
tests is written as is, except lone surrogates (from undecodable bytes), which
are written as a visible ``\\udcXX`` escape since UTF-8 cannot hold them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from farm.core.domain import CodeInfo, Outcome, RunSummary, ShardTimeline, TestResult
from farm.core.verdict import summary_exit_code

FORMAT_VERSION = 2


def report_dict(summary: RunSummary) -> dict[str, Any]:
    """The report of ``summary`` as plain JSON-ready data (see the module docstring)."""
    counts = {outcome.value: 0 for outcome in Outcome}
    for result in summary.results:
        counts[result.outcome.value] += 1
    counts["missing"] = len(summary.missing)
    return {
        "format_version": FORMAT_VERSION,
        "run_id": _text(summary.run_id),
        "verdict": summary.verdict.value,
        "exit_code": int(summary_exit_code(summary)),
        "message": _text(summary.message),
        "collected": summary.collected,
        "counts": counts,
        "makespan_s": _seconds(summary.makespan_s),
        "estimated_makespan_s": _seconds(summary.estimated_makespan_s),
        "workers": summary.workers,
        "started_at": _timestamp(summary.started_at),
        "finished_at": _timestamp(summary.finished_at),
        "tests": [_test_dict(result) for result in summary.results],
        "missing": [_text(node_id) for node_id in summary.missing],
        "shards": [_shard_dict(shard) for shard in summary.shards],
        "snapshot": _code_dict(summary.code),
    }


def _shard_dict(shard: ShardTimeline) -> dict[str, Any]:
    return {
        "shard": shard.shard_id,
        "tests": shard.tests,
        "worker": _text(shard.worker),
        "machine": _text(shard.machine),
        "started_at": _timestamp(shard.started_at),
        "finished_at": _timestamp(shard.finished_at),
    }


def _code_dict(code: CodeInfo | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return {
        "digest": code.digest,
        "size_bytes": code.size_bytes,
        "uploaded_bytes": code.uploaded_bytes,
        "pack_s": _seconds(code.pack_s),
        "upload_s": _seconds(code.upload_s),
    }


def write_json_report(path: str | os.PathLike[str], summary: RunSummary) -> None:
    """Write the report of ``summary`` to ``path``, replacing the file atomically."""
    text = json.dumps(report_dict(summary), ensure_ascii=False, allow_nan=False, indent=2)
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.write("\n")
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _test_dict(result: TestResult) -> dict[str, Any]:
    return {
        "node_id": _text(result.node_id),
        "outcome": result.outcome.value,
        "duration_s": _seconds(result.duration_s),
        "module_setup_s": _seconds(result.module_setup_s),
        "worker": _text(result.worker),
        "shard": result.shard_id,
        "attempt": result.attempt,
        "started_at": _timestamp(result.started_at),
        "finished_at": _timestamp(result.finished_at),
        "longrepr": _text(result.longrepr),
        "output": _text(result.output),
    }


def _text(value: str) -> str:
    # Only lone surrogates cannot be encoded to UTF-8; backslashreplace turns each
    # into the visible six characters \udcXX and leaves every other character alone.
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _seconds(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _timestamp(value: float) -> float | None:
    return _seconds(value) if value > 0 else None


__all__ = ["FORMAT_VERSION", "report_dict", "write_json_report"]
