"""Flaky tests and quarantine: a change's author, a run's findings, an attempt's
machine, a test's recent runs and durations, and quarantine in tables of its own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

The old ``test_history.quarantined`` flag is dropped: nothing ever set it, and
quarantine entries now need a reason, an actor and a time it began. Existing
history rows are first seen when they were last updated, with their last duration
as their only recent one and no recent outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENUM = sa.String(length=16)


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("author", sa.String(length=255), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("findings", sa.Text(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(
            sa.Column("machine", sa.String(length=255), server_default="", nullable=False)
        )
    with op.batch_alter_table("test_history") as batch:
        batch.drop_column("quarantined")
        batch.add_column(sa.Column("first_seen_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("last_failure_at", sa.Double(), nullable=True))
        batch.add_column(sa.Column("last_failure_run", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("recent_outcomes", sa.Text(), server_default="", nullable=False))
        batch.add_column(
            sa.Column("clean_streak", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("recent_durations", sa.Text(), server_default="[]", nullable=False)
        )
    # Both backends print a double as text JSON reads back (1.5, 1e-05, 2.0).
    op.execute(
        "UPDATE test_history SET first_seen_at = updated_at, "
        "recent_durations = '[' || CAST(last_duration_s AS TEXT) || ']'"
    )
    with op.batch_alter_table("test_history") as batch:
        batch.alter_column("first_seen_at", existing_type=sa.Double(), nullable=False)
    op.create_table(
        "quarantine",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("since_at", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("until_at", sa.Double(), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("project", "node_id", name="pk_quarantine"),
    )
    op.create_table(
        "quarantine_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("action", ENUM, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine_events"),
    )
    op.create_index(
        "ix_quarantine_events_project_node_id", "quarantine_events", ["project", "node_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_events_project_node_id", table_name="quarantine_events")
    op.drop_table("quarantine_events")
    op.drop_table("quarantine")
    with op.batch_alter_table("test_history") as batch:
        for name in (
            "recent_durations",
            "clean_streak",
            "recent_outcomes",
            "last_failure_run",
            "last_failure_at",
            "first_seen_at",
        ):
            batch.drop_column(name)
        batch.add_column(
            sa.Column("quarantined", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("machine")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("findings")
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("author")
