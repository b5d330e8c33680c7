"""A machine-readable report of one run, for scripts and dashboards.

The file is one UTF-8 JSON object. Key names are stable: a key is only ever added,
never renamed or removed, without raising ``format_version``.

Top level:

``format_version`` (int)
    The schema version of this document, now ``3``. Version ``3`` added each test's
    ``attempts`` and ``flaky``, and the top-level ``flaky``, ``quarantined_failures``,
    ``new_flaky``, ``retries``, ``first_failure_s``, ``suspects`` and ``change``; it
    also writes each test on one line (the keys and values of version ``2`` are
    unchanged). Version ``1`` called a shard's ``machine`` ``host``.
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
    reason, truncated by the worker), ``output`` (str, captured output, truncated),
    ``attempts`` (array: every attempt of the test, oldest first, the final one
    last, each with ``attempt``, ``outcome``, ``duration_s``, ``worker``,
    ``machine`` (str, "" when not known), ``started_at``, ``finished_at``,
    ``longrepr`` and ``output`` as above, ``modules_before``: the modules whose
    tests ran before it in its test process, in order, or null where not recorded,
    as for a passing first attempt, and ``modules_after``: the modules its process
    imported whose tests ran after it) and ``flaky`` (bool: failed, then passed on
    a retry).
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
``flaky``, ``quarantined_failures``, ``new_flaky`` (arrays of str)
    Node ids, in collection order: tests that failed and then passed on a retry;
    tests that failed but are quarantined, so the verdict does not hold them
    against the run; tests never seen before whose repeated runs disagreed.
``retries`` (object)
    ``allowed`` (int, more attempts a failed test may get), ``budget`` (int,
    retries the run could spend), ``spent`` (int), ``denied`` (array of str, the
    failed tests left without a retry because the budget ran out) and
    ``exhausted`` (bool, whether any was).
``first_failure_s`` (float or null)
    Seconds from the run's start to its first failing result; null when none failed.
``suspects`` (array)
    Tests whose failures all came from one machine while they passed on others:
    ``node_id`` (str), ``machine`` (str), ``failures`` (int, failing attempts, all
    on that machine), ``passes_elsewhere`` (int).
``change`` (object or null)
    The change the run tested: ``repository``, ``commit_sha``, ``branch``,
    ``pull_request``, ``author`` (str, "" when not known); null when not known.
``order_dependent`` (array)
    Tests that may depend on the order modules ran in, in collection order:
    ``node_id`` (str), ``sign`` (``flaky``: its attempts disagreed after different
    modules; ``regressed``: it failed on every attempt and passed in the change's
    previous run) and ``attempts`` (oldest first, the previous run's first), each
    with ``run_id``, ``attempt``, ``outcome``, ``worker``, ``machine``,
    ``modules_before`` (array of str, or null when not known), ``modules_after``
    (array of str) and ``planned`` (bool: read from its shard's plan, as its
    process did not report it).
``coverage`` (object or null)
    A run under pytest-cov's ``--cov``: ``total`` (float percent, null when no
    figure was made), ``fail_under`` (number or null), ``reports`` (array of str,
    the report files and folders written, as named), ``data_file`` (str, "" when
    none was written) and ``incomplete`` (str, why some shard's data is missing,
    "" when none is); null for a run without coverage.
``seeds`` (object of str to str)
    The seed each plugin that shuffles tests used, by its option
    (``--randomly-seed``, ``--random-order-seed``): given to ``farm run`` after
    ``--``, it makes the run's order again; empty when no such plugin was active.

Durations are seconds rounded to microseconds; a duration that is not a finite
number is written as null rather than breaking strict JSON parsers. Text from the
tests is written as is, except lone surrogates (from undecodable bytes), which
are written as a visible ``\\udcXX`` escape since UTF-8 cannot hold them.

The file is written as it is made, one test at a time, each with the C encoder on
one line of its own, so a run of 100,000 tests never holds a second copy of its
report in memory, and a test's entry can be read with line tools.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from farm.core.coverage_result import CoverageResult
from farm.core.domain import (
    ChangeRef,
    CodeInfo,
    MachineSuspect,
    OrderSuspect,
    Outcome,
    Retries,
    RunSummary,
    ShardTimeline,
    TestResult,
)
from farm.core.seeds import plugin_seeds
from farm.core.verdict import summary_exit_code
from farm.report.findings import earlier_by_test

FORMAT_VERSION = 3

_TESTS = "tests"  # the one key whose value is written as it is made
# One encoder for every test: json.dumps with options makes a new one per call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def report_dict(summary: RunSummary) -> dict[str, Any]:
    """The report of ``summary`` as plain JSON-ready data (see the module docstring)."""
    return {key: list(value) if key == _TESTS else value for key, value in _fields(summary)}


def write_json_report(path: str | os.PathLike[str], summary: RunSummary) -> None:
    """Write the report of ``summary`` to ``path``, replacing the file atomically."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            _write(tmp, summary)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write(out: TextIO, summary: RunSummary) -> None:
    """The document, indented by two like ``json.dumps(indent=2)``, except that each
    test is one line: ``indent`` makes ``json`` use its pure-Python encoder, several
    times slower than the C one that writes a test without it."""
    out.write("{")
    for i, (key, value) in enumerate(_fields(summary)):
        out.write(",\n  " if i else "\n  ")
        out.write(_dumps(key))
        out.write(": ")
        if key == _TESTS:
            _write_tests(out, value)
        else:
            # JSON strings hold no raw newline, so every newline is between tokens.
            out.write(_dumps(value, indent=2).replace("\n", "\n  "))
    out.write("\n}\n")


def _write_tests(out: TextIO, tests: Iterator[dict[str, Any]]) -> None:
    first = True
    for test in tests:
        out.write("[\n    " if first else ",\n    ")
        out.write(_COMPACT.encode(test))
        first = False
    out.write("[]" if first else "\n  ]")


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)


def _fields(summary: RunSummary) -> Iterator[tuple[str, Any]]:
    """The report's keys and values in order; the value of ``tests`` is an iterator."""
    counts = {outcome.value: 0 for outcome in Outcome}
    for result in summary.results:
        counts[result.outcome.value] += 1
    counts["missing"] = len(summary.missing)
    yield "format_version", FORMAT_VERSION
    yield "run_id", _text(summary.run_id)
    yield "verdict", summary.verdict.value
    yield "exit_code", int(summary_exit_code(summary))
    yield "message", _text(summary.message)
    yield "collected", summary.collected
    yield "counts", counts
    yield "makespan_s", _seconds(summary.makespan_s)
    yield "estimated_makespan_s", _seconds(summary.estimated_makespan_s)
    yield "workers", summary.workers
    yield "started_at", _timestamp(summary.started_at)
    yield "finished_at", _timestamp(summary.finished_at)
    yield _TESTS, _tests(summary)
    yield "missing", _texts(summary.missing)
    yield "shards", [_shard_dict(shard) for shard in summary.shards]
    yield "snapshot", _code_dict(summary.code)
    yield "flaky", _texts(summary.flaky)
    yield "quarantined_failures", _texts(summary.quarantined_failures)
    yield "new_flaky", _texts(summary.new_flaky)
    yield "retries", _retries_dict(summary.retries)
    first_failure_s = summary.first_failure_s
    yield "first_failure_s", None if first_failure_s is None else _seconds(first_failure_s)
    yield "suspects", [_suspect_dict(suspect) for suspect in summary.suspects]
    yield "change", _change_dict(summary.change)
    yield "order_dependent", [_order_dict(suspect) for suspect in summary.order_suspects]
    yield "coverage", _coverage_dict(summary.coverage)
    yield "seeds", plugin_seeds(summary.options)


def _tests(summary: RunSummary) -> Iterator[dict[str, Any]]:
    earlier = earlier_by_test(summary)
    flaky = frozenset(summary.flaky)
    for result in summary.results:
        yield _test_dict(result, earlier.get(result.node_id, ()), result.node_id in flaky)


def _test_dict(result: TestResult, earlier: Sequence[TestResult], flaky: bool) -> dict[str, Any]:
    final = _attempt_dict(result)  # its values are the test's own: made once
    return {
        "node_id": _text(result.node_id),
        "outcome": final["outcome"],
        "duration_s": final["duration_s"],
        "module_setup_s": _seconds(result.module_setup_s),
        "worker": final["worker"],
        "shard": result.shard_id,
        "attempt": result.attempt,
        "started_at": final["started_at"],
        "finished_at": final["finished_at"],
        "longrepr": final["longrepr"],
        "output": final["output"],
        "attempts": [*(_attempt_dict(attempt) for attempt in earlier), final],
        "flaky": flaky,
    }


def _attempt_dict(result: TestResult) -> dict[str, Any]:
    return {
        "attempt": result.attempt,
        "outcome": result.outcome.value,
        "duration_s": _seconds(result.duration_s),
        "worker": _text(result.worker),
        "machine": _text(result.machine),
        "started_at": _timestamp(result.started_at),
        "finished_at": _timestamp(result.finished_at),
        "longrepr": _text(result.longrepr),
        "output": _text(result.output),
        "modules_before": _modules(result.modules_before),
        "modules_after": _texts(result.modules_after),
    }


def _order_dict(suspect: OrderSuspect) -> dict[str, Any]:
    return {
        "node_id": _text(suspect.node_id),
        "sign": suspect.sign.value,
        "attempts": [
            {
                "run_id": _text(a.run_id),
                "attempt": a.attempt,
                "outcome": a.outcome.value,
                "worker": _text(a.worker),
                "machine": _text(a.machine),
                "modules_before": _modules(a.modules_before),
                "modules_after": _texts(a.modules_after),
                "planned": a.planned,
            }
            for a in suspect.attempts
        ],
    }


def _modules(modules: Sequence[str] | None) -> list[str] | None:
    return None if modules is None else _texts(modules)


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


def _retries_dict(retries: Retries) -> dict[str, Any]:
    return {
        "allowed": retries.allowed,
        "budget": retries.budget,
        "spent": retries.spent,
        "denied": _texts(retries.denied),
        "exhausted": retries.exhausted,
    }


def _suspect_dict(suspect: MachineSuspect) -> dict[str, Any]:
    return {
        "node_id": _text(suspect.node_id),
        "machine": _text(suspect.machine),
        "failures": suspect.failures,
        "passes_elsewhere": suspect.passes_elsewhere,
    }


def _coverage_dict(coverage: CoverageResult | None) -> dict[str, Any] | None:
    if coverage is None:
        return None
    return {
        "total": coverage.total,
        "fail_under": coverage.fail_under,
        "reports": _texts(coverage.files),
        "data_file": _text(coverage.data_file),
        "incomplete": _text(coverage.incomplete),
    }


def _change_dict(change: ChangeRef | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {
        "repository": _text(change.repository),
        "commit_sha": _text(change.commit_sha),
        "branch": _text(change.branch),
        "pull_request": _text(change.pull_request),
        "author": _text(change.author),
    }


def _texts(values: Sequence[str]) -> list[str]:
    return [_text(value) for value in values]


def _text(value: str) -> str:
    # Only lone surrogates cannot be encoded to UTF-8; backslashreplace turns each
    # into the visible six characters \udcXX and leaves every other character alone.
    if value.isascii():  # most text, checked far faster than it is re-encoded
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _seconds(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _timestamp(value: float) -> float | None:
    return _seconds(value) if value > 0 else None


__all__ = ["FORMAT_VERSION", "report_dict", "write_json_report"]
