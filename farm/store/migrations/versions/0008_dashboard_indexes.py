"""Indexes for the dashboard's reads: a test's history, a run's failures and slowest
tests, and the changes list newest first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Each query of :mod:`farm.store.dashboard` reads through one of these (or an older
one), so a page costs an index range scan however many attempts the database
holds. Building them on a large PostgreSQL database locks writes to ``attempts``
while they build; upgrade between runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, columns), named as the models' naming convention names them.
INDEXES = (
    ("attempts", ("node_id", "run_id")),  # a test's runs
    ("attempts", ("run_id", "outcome", "attempt")),  # failures, progress, flaky retries
    ("attempts", ("run_id", "duration_s")),  # a run's slowest
    ("changes", ("created_at",)),  # the changes list, newest first
    ("changes", ("repository", "branch", "created_at")),  # ... of one repository or branch
)


def _name(table: str, columns: Sequence[str]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    for table, columns in INDEXES:
        op.create_index(_name(table, columns), table, list(columns))


def downgrade() -> None:
    for table, columns in reversed(INDEXES):
        op.drop_index(_name(table, columns), table_name=table)
