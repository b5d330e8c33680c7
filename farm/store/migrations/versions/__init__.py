"""Alembic revisions of the results database, one module each (Alembic skips this file)."""
