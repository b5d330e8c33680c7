"""The server's memory of what it has acted on: webhook delivery ids and the commits
it triggered.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

A key is recorded once; a second insert of it fails on the primary key, which is how
a redelivered webhook is told apart from a new one even when two server processes
receive it at the same moment.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=600), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("source", "key", name=op.f("pk_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
