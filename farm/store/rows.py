"""Conversions between table rows and the store's records, and the writes they need.

Rows are read with SQLAlchemy Core (not ORM sessions): a run's results are many
thousands of plain rows, and the records handed out are frozen dataclasses anyway.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Row, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from farm.core.domain import ChangeRef, Outcome, Retries, RunFindings, StepwiseMark, TestResult
from farm.core.failure_signature import failure_signature
from farm.store.models import SIGNATURE_CHARS, Attempt, Change, Run, Shard
from farm.store.records import RunRecord, ShardView

# Tracebacks and captured output are clipped to this many characters each: a test
# printing megabytes must not make the results table grow without bound.
MAX_TEXT_CHARS = 64 * 1024
_CLIPPED = "\n[... clipped by farm ...]"
CHANGE_FIELDS = tuple(f.name for f in dataclasses.fields(ChangeRef))
# The parts of a change a later run may name when an earlier one did not (or differently).
_CHANGE_DETAILS = ("branch", "pull_request", "author")

RUNS: Table = Run.__table__  # type: ignore[assignment]
SHARDS: Table = Shard.__table__  # type: ignore[assignment]
ATTEMPTS: Table = Attempt.__table__  # type: ignore[assignment]
CHANGES: Table = Change.__table__  # type: ignore[assignment]

# Records whose every field is a column of the same name: shards and attempts.
_SHARD_VIEW_FIELDS = tuple(f.name for f in dataclasses.fields(ShardView))
# A result's ``detail`` (what pytest's sections show of it) is for the run's own
# report: the store keeps the traceback and output, not pytest's layout of them.
# Its ``modules_before`` and ``modules_after`` share one column, ``module_order``.
_NOT_COLUMNS = frozenset({"detail", "modules_before", "modules_after"})
_TEST_RESULT_FIELDS = tuple(
    f.name for f in dataclasses.fields(TestResult) if f.name not in _NOT_COLUMNS
)


def clip_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` fit for any column: NULs escaped (PostgreSQL refuses them), clipped to ``limit``."""
    text = text.replace("\x00", "\\x00")
    if len(text) <= limit:
        return text
    return text[: limit - len(_CLIPPED)] + _CLIPPED


def pack_node_ids(node_ids: Sequence[str]) -> bytes:
    """Node ids as stored in a blob column: a zlib-compressed JSON list."""
    return zlib.compress(json.dumps(list(node_ids)).encode(), 6)


def unpack_node_ids(blob: bytes) -> tuple[str, ...]:
    """The node ids of a :func:`pack_node_ids` blob; zlib.error or ValueError if damaged."""
    return tuple(json.loads(zlib.decompress(blob)))


def change_id(connection: Connection, change: ChangeRef, now: float) -> int:
    """The id of the change, made if new; its branch, pull request and author as
    ``change`` names them, where it names them (an unknown "" is stored as NULL)."""
    table = CHANGES
    where = (table.c.repository == change.repository) & (table.c.commit_sha == change.commit_sha)
    details = {name: getattr(change, name) for name in _CHANGE_DETAILS if getattr(change, name)}
    row = connection.execute(select(table).where(where)).first()
    if row is None:
        values = {"repository": change.repository, "commit_sha": change.commit_sha, **details}
        try:
            # A savepoint, so that losing a race to another run of the same commit
            # does not end the caller's transaction.
            with connection.begin_nested():
                inserted = connection.execute(insert(table).values(created_at=now, **values))
                return int(inserted.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            row = connection.execute(select(table).where(where)).one()
    changed = {name: value for name, value in details.items() if getattr(row, name) != value}
    if changed:
        connection.execute(update(table).where(table.c.id == row.id).values(changed))
    return int(row.id)


def change_ref(values: Sequence[str | None]) -> ChangeRef:
    """The change of a row's columns, in :data:`CHANGE_FIELDS` order; NULL is ""."""
    return ChangeRef(*(value or "" for value in values))


def findings_json(findings: RunFindings) -> str:
    """``findings`` as the JSON kept in ``runs.findings``."""
    return json.dumps(dataclasses.asdict(findings))


def read_findings(text: str | None) -> RunFindings | None:
    """The findings of a ``runs.findings`` value; None if there are none or they are
    damaged. A field missing (written before it existed) takes its default."""
    if text is None:
        return None
    try:
        data = json.loads(text)
        retries = data.get("retries", {})
        first_failure_s = data.get("first_failure_s")
        return RunFindings(
            failed=_names(data.get("failed", [])),
            flaky=_names(data.get("flaky", [])),
            quarantined_failures=_names(data.get("quarantined_failures", [])),
            new_flaky=_names(data.get("new_flaky", [])),
            retries=Retries(
                allowed=int(retries.get("allowed", 0)),
                budget=int(retries.get("budget", 0)),
                spent=int(retries.get("spent", 0)),
                denied=_names(retries.get("denied", [])),
            ),
            first_failure_s=None if first_failure_s is None else float(first_failure_s),
            order_dependent=_names(data.get("order_dependent", [])),
            stepwise=_stepwise(data.get("stepwise")),
        )
    except (ValueError, AttributeError, TypeError):
        return None  # damaged: a report without findings beats no report


def _stepwise(data: dict[str, object] | None) -> StepwiseMark | None:
    """The mark a ``--sw`` run left (see :class:`StepwiseMark`); None for other runs."""
    if data is None:
        return None
    last_failed, count = data.get("last_failed"), data.get("test_count")
    if not (last_failed is None or isinstance(last_failed, str)) or not isinstance(count, int):
        raise TypeError("not a stepwise mark")
    return StepwiseMark(last_failed, count)


def _names(values: Sequence[object]) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("not a list of node ids")
    return tuple(str(v) for v in values)


def run_record(row: Row[Any]) -> RunRecord:
    change = None
    if row.change_id is not None:
        change = change_ref([row._mapping[f"change_{name}"] for name in CHANGE_FIELDS])
    return RunRecord(
        run_id=row.id,
        project=row.project,
        trigger=row.trigger,
        settings=MappingProxyType(json.loads(row.settings_json)),
        change=change,
        snapshot_digest=row.snapshot_digest,
        state=row.state,
        verdict=row.verdict,
        message=row.message,
        total_tests=row.total_tests,
        estimated_makespan_s=row.estimated_makespan_s,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        findings=read_findings(row.findings),
    )


def shard_view(row: Row[Any]) -> ShardView:
    return ShardView(**{name: row._mapping[name] for name in _SHARD_VIEW_FIELDS})


def test_result(row: Row[Any]) -> TestResult:
    fields = {name: row._mapping[name] for name in _TEST_RESULT_FIELDS}
    fields["tally"] = tuple(sorted(json.loads(fields["tally"] or "{}").items()))
    before, after = read_module_order(row.module_order)
    return TestResult(**fields, modules_before=before, modules_after=after)


def read_module_order(text: str | None) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The modules before and after of an ``attempts.module_order`` value (None and ()
    when not recorded)."""
    if text is None:
        return None, ()
    data = json.loads(text)
    return tuple(data["before"]), tuple(data.get("after", ()))


def attempt_row(result: TestResult) -> dict[str, Any]:
    """The ``attempts`` row of ``result``, its traceback and output clipped, and a
    failure's signature (see :func:`attempt_signature`)."""
    row = {name: getattr(result, name) for name in _TEST_RESULT_FIELDS}
    row["signature"] = attempt_signature(result)
    row["longrepr"] = clip_text(result.longrepr)
    row["output"] = clip_text(result.output)
    row["tally"] = json.dumps(dict(result.tally)) if result.tally else None
    before, after = result.modules_before, result.modules_after
    order = {"before": list(before), "after": list(after)} if before is not None else None
    row["module_order"] = None if order is None else json.dumps(order)
    return row


def attempt_signature(result: TestResult) -> str | None:
    """The signature a failing attempt is grouped by on the run page (None for the
    others), from its whole traceback: the exception's line is near its end, which
    the stored text may have clipped off."""
    if not Outcome(result.outcome).is_failure:
        return None
    return clip_text(failure_signature(result.longrepr, result.outcome).text, SIGNATURE_CHARS)
