"""Alembic migrations of the results database; run by :func:`farm.store.schema.upgrade_to_head`."""
