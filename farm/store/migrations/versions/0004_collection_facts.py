"""Collection facts and tallies: counts and options a warm run reports before it has
collected, and how each attempt counts in pytest's summary line.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collection_cache") as batch:
        batch.add_column(sa.Column("facts", sa.Text(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("tally", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("tally")
    with op.batch_alter_table("collection_cache") as batch:
        batch.drop_column("facts")
