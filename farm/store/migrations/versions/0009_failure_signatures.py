"""A failing attempt's signature, stored when it is recorded, so that the run page
groups a run's failures by one GROUP BY instead of reading every traceback.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

``signature`` is NULL for attempts that did not fail and for every attempt stored
before this revision: the dashboard's grouping computes those from their traceback
(:mod:`farm.store.dashboard_runs`). Adding a nullable column without a default is
a catalogue change on PostgreSQL, cheap on a large table. No index: the grouping
reads a run's failing rows through ``attempts (run_id, outcome, attempt)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("signature", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("signature")
