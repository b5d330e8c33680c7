"""Shard tests: which node ids each shard of a run was given, for --resume.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shard_tests",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("shard_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("node_ids", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_shard_tests_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "shard_id", name="pk_shard_tests"),
    )


def downgrade() -> None:
    op.drop_table("shard_tests")
