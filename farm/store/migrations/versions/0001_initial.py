"""Initial schema: changes, runs, shards, attempts, test and module history.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Migrations are frozen in time: they spell every column out with plain SQLAlchemy
types and never import farm's models, which will go on changing. Enum columns are
VARCHAR(16) holding the enum's value; timestamps are float unix seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENUM = sa.String(length=16)
ZERO = sa.text("0")


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository", sa.String(length=500), nullable=False),
        sa.Column("commit_sha", sa.String(length=64), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("pull_request", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
        sa.UniqueConstraint("repository", "commit_sha", name="uq_changes_repository_commit_sha"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("snapshot_digest", sa.String(length=128), nullable=True),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("verdict", ENUM, nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("total_tests", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("estimated_makespan_s", sa.Double(), server_default=ZERO, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"], name="fk_runs_change_id_changes"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_change_id", "runs", ["change_id"])
    op.create_index("ix_runs_project_created_at", "runs", ["project", "created_at"])
    op.create_index("ix_runs_state", "runs", ["state"])
    op.create_table(
        "shards",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("shard_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("test_count", sa.Integer(), nullable=False),
        sa.Column("estimate_s", sa.Double(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("machine", sa.String(length=255), nullable=True),
        sa.Column("lease", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_shards_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "shard_id", name="pk_shards"),
    )
    op.create_table(
        "attempts",
        # BIGINT on PostgreSQL; SQLite only autoincrements a column typed INTEGER.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("shard_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease", sa.Integer(), nullable=False),
        sa.Column("outcome", ENUM, nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("module_setup_s", sa.Double(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("longrepr", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_attempts_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
    )
    op.create_index("ix_attempts_run_id_node_id", "attempts", ["run_id", "node_id"])
    op.create_table(
        "test_history",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("last_duration_s", sa.Double(), nullable=False),
        sa.Column("samples", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("passes", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("failures", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("flaky_count", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("quarantined", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("project", "node_id", name="pk_test_history"),
    )
    op.create_table(
        "module_history",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("module", sa.Text(), nullable=False),
        sa.Column("setup_s", sa.Double(), nullable=False),
        sa.Column("samples", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("project", "module", name="pk_module_history"),
    )


def downgrade() -> None:
    op.drop_table("module_history")
    op.drop_table("test_history")
    op.drop_index("ix_attempts_run_id_node_id", table_name="attempts")
    op.drop_table("attempts")
    op.drop_table("shards")
    op.drop_index("ix_runs_state", table_name="runs")
    op.drop_index("ix_runs_project_created_at", table_name="runs")
    op.drop_index("ix_runs_change_id", table_name="runs")
    op.drop_table("runs")
    op.drop_table("changes")
