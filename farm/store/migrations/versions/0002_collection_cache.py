"""Collection cache: the last collection of each request, for speculative dispatch.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collection_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("rootdir", sa.Text(), nullable=False),
        sa.Column("inifile", sa.Text(), nullable=False),
        sa.Column("node_ids", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_collection_cache"),
    )


def downgrade() -> None:
    op.drop_table("collection_cache")
