"""Order dependence: each attempt may name the modules of its test process, those
whose tests ran before it and those it imported that ran after it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20

``module_order`` is JSON, ``{"before": [...], "after": [...]}``, NULL where it was
not recorded: every attempt stored before this revision, and the passing first
attempts that do not send it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("module_order", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("module_order")
