"""The results database's tables, as SQLAlchemy typed declarative models.

The schema itself is made only by the Alembic migrations in ``migrations/``; these
models must describe exactly what the migrations create (a test compares them).

Terms: a *change* is one commit of one repository; a *run* is one execution of a
project's suite, maybe for a change; a *shard* is a part of a run's tests given to
one worker at a time; an *attempt* is one execution of one test. *Test history* and
*module history* are a project's running statistics: an exponentially weighted moving
average (EWMA) of past durations, counts, and a test's last few runs and durations.
A *quarantined* test still runs, but its failures do not fail a verdict; every
entry into or out of quarantine is an event. Enum columns hold the enum's string
value; timestamps are float unix seconds; JSON is stored as text.
"""

from __future__ import annotations

import enum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from farm.core.domain import Outcome, RunState, Verdict
from farm.core.quarantine import QuarantineAction
from farm.store.records import ShardState

E = TypeVar("E", bound=enum.Enum)

# Stable constraint names let later migrations (and SQLite batch mode) find them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Enum values are stored as plain strings, not database enums, so that adding an
# outcome or a state never needs a PostgreSQL type migration.
ENUM_LENGTH = 16
# ``attempts.signature``'s width; farm.core.failure_signature bounds a signature at 200.
SIGNATURE_CHARS = 300


class EnumText(TypeDecorator[E], Generic[E]):
    """A ``str`` enum stored as its value in a VARCHAR column."""

    impl = String(ENUM_LENGTH)
    cache_ok = True

    def __init__(self, enum_type: type[E]) -> None:
        super().__init__()
        self.enum_type = enum_type

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum_type(value).value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_type(value)


class NodeIdText(TypeDecorator[str]):
    """A node id as TEXT, NUL characters escaped reversibly (PostgreSQL refuses NUL).

    Node ids are keys, so unlike output they must come back exactly: ``\x00`` is
    stored as U+E000 U+E002 and a U+E000 of the id as U+E000 U+E001 (private-use
    characters), and undone on the way out.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return value.replace("\ue000", "\ue000\ue001").replace("\x00", "\ue000\ue002")

    def process_result_value(self, value: Any | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = str(value)
        if "\ue000" not in text:  # nearly every id: a run page may read 100,000 of them
            return text
        return text.replace("\ue000\ue002", "\x00").replace("\ue000\ue001", "\ue000")


# BIGINT on PostgreSQL, where attempts will number in the billions; SQLite only
# autoincrements a column declared exactly INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Change(Base):
    __tablename__ = "changes"
    __table_args__ = (
        UniqueConstraint("repository", "commit_sha"),
        Index(None, "created_at"),
        Index(None, "repository", "branch", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(500))
    commit_sha: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(255))
    pull_request: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Double)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "project", "created_at"),
        Index(None, "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id"), index=True)
    project: Mapped[str] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(32))
    settings_json: Mapped[str] = mapped_column(Text)
    snapshot_digest: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[RunState] = mapped_column(EnumText(RunState))
    verdict: Mapped[Verdict | None] = mapped_column(EnumText(Verdict))
    message: Mapped[str] = mapped_column(Text, default="", server_default="")
    total_tests: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    estimated_makespan_s: Mapped[float] = mapped_column(
        Double, default=0.0, server_default=text("0")
    )
    created_at: Mapped[float] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    heartbeat_at: Mapped[float | None] = mapped_column(Double)
    findings: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: RunFindings


class Shard(Base):
    __tablename__ = "shards"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    shard_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    test_count: Mapped[int] = mapped_column(Integer)
    estimate_s: Mapped[float] = mapped_column(Double)
    worker: Mapped[str | None] = mapped_column(String(255))
    machine: Mapped[str | None] = mapped_column(String(255))
    lease: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    state: Mapped[ShardState] = mapped_column(EnumText(ShardState))
    started_at: Mapped[float | None] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        Index(None, "run_id", "node_id"),
        # The dashboard's reads (migration 0008): a test's runs, a run's failures and
        # outcome counts, its slowest attempts.
        Index(None, "node_id", "run_id"),
        Index(None, "run_id", "outcome", "attempt"),
        Index(None, "run_id", "duration_s"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign key to shards: a lost shard's tests may come back under a shard id
    # the plan never had; the run is what every attempt must belong to.
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    shard_id: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(NodeIdText)
    attempt: Mapped[int] = mapped_column(Integer)
    lease: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[Outcome] = mapped_column(EnumText(Outcome))
    duration_s: Mapped[float] = mapped_column(Double)
    module_setup_s: Mapped[float] = mapped_column(Double)
    worker: Mapped[str] = mapped_column(String(255))
    longrepr: Mapped[str] = mapped_column(Text)
    output: Mapped[str] = mapped_column(Text)
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float] = mapped_column(Double)
    tally: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: category -> count
    machine: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # JSON {"before": [...], "after": [...]}: the other modules of its test process,
    # whose tests ran before it and after it; NULL: not recorded.
    module_order: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A failing attempt's signature (farm.core.failure_signature), computed when it is
    # recorded; NULL for the others and for failures recorded before migration 0009.
    signature: Mapped[str | None] = mapped_column(String(SIGNATURE_CHARS), nullable=True)


class TestHistory(Base):
    """One test's running statistics in one project.

    ``duration_s`` is the EWMA estimate, ``last_duration_s`` the latest sample and
    ``recent_durations`` (a JSON list) the last few; ``samples`` counts the durations
    folded in; ``flaky_count`` the runs in which its attempts disagreed.
    ``recent_outcomes`` has a letter per recent run, newest last, and
    ``clean_streak`` counts its clean runs in a row (see farm.core.quarantine).
    ``updated_at`` is when a run last reported it.
    """

    __test__ = False  # not a pytest test class
    __tablename__ = "test_history"

    project: Mapped[str] = mapped_column(String(255), primary_key=True)
    node_id: Mapped[str] = mapped_column(NodeIdText, primary_key=True)
    duration_s: Mapped[float] = mapped_column(Double)
    last_duration_s: Mapped[float] = mapped_column(Double)
    samples: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    passes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    flaky_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    updated_at: Mapped[float] = mapped_column(Double)
    first_seen_at: Mapped[float] = mapped_column(Double)
    last_failure_at: Mapped[float | None] = mapped_column(Double)
    last_failure_run: Mapped[str | None] = mapped_column(String(32))
    recent_outcomes: Mapped[str] = mapped_column(Text, default="", server_default="")
    clean_streak: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    recent_durations: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


class ModuleHistory(Base):
    """One module's running estimate of its module-scoped fixture setup, in seconds."""

    __tablename__ = "module_history"

    project: Mapped[str] = mapped_column(String(255), primary_key=True)
    module: Mapped[str] = mapped_column(Text, primary_key=True)
    setup_s: Mapped[float] = mapped_column(Double)
    samples: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    updated_at: Mapped[float] = mapped_column(Double)


class CollectionCache(Base):
    """The last collection of one request (working directory, paths, pytest options).

    ``key`` is a hash of that request; ``node_ids`` is zlib-compressed JSON. A run
    dispatches shards from it speculatively while pytest collects again, then
    settles on what pytest really collected.
    """

    __tablename__ = "collection_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    rootdir: Mapped[str] = mapped_column(Text)
    inifile: Mapped[str] = mapped_column(Text)
    node_ids: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[float] = mapped_column(Double)
    facts: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, see collections.py


class ShardTests(Base):
    """The node ids one shard of a run was given (zlib-compressed JSON), so a run
    whose scheduler died can be resumed from what the database holds."""

    __tablename__ = "shard_tests"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    shard_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    node_ids: Mapped[bytes] = mapped_column(LargeBinary)


class QuarantineRow(Base):
    """One quarantined test of a project (see farm.store.records.QuarantineEntry)."""

    __tablename__ = "quarantine"

    project: Mapped[str] = mapped_column(String(255), primary_key=True)
    node_id: Mapped[str] = mapped_column(NodeIdText, primary_key=True)
    since_at: Mapped[float] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(255))
    until_at: Mapped[float | None] = mapped_column(Double)
    automatic: Mapped[bool] = mapped_column(Boolean)


class QuarantineEventRow(Base):
    """A test entering or leaving quarantine, kept for good: who, when and why."""

    __tablename__ = "quarantine_events"
    __table_args__ = (Index(None, "project", "node_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(255))
    node_id: Mapped[str] = mapped_column(NodeIdText)
    at: Mapped[float] = mapped_column(Double)
    action: Mapped[QuarantineAction] = mapped_column(EnumText(QuarantineAction))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)


class DeliveryRow(Base):
    """A key the server has seen once and must not act on twice: a webhook's delivery
    id (``github``, ``gitlab``: the replay guard) or a commit it triggered (``head``:
    ``repository@sha``, so polling and redelivered events do not test it again)."""

    __tablename__ = "deliveries"

    source: Mapped[str] = mapped_column(String(ENUM_LENGTH), primary_key=True)
    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    seen_at: Mapped[float] = mapped_column(Double)
