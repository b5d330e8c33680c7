"""Alembic environment of the results database.

At run time farm calls Alembic in code (:func:`farm.store.schema.upgrade_to_head`)
and hands over an open connection in ``config.attributes["connection"]``, inside the
transaction that also holds the upgrade lock. A developer writing a new revision
uses the ``alembic.ini`` beside this file with a database URL::

    alembic -c farm/store/migrations/alembic.ini -x url=sqlite:///dev.db upgrade head
    alembic -c farm/store/migrations/alembic.ini -x url=sqlite:///dev.db \\
        revision --autogenerate -m "what changes"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from farm.store.models import Base
from farm.store.urls import database_url

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("no database: pass -x url=... or set sqlalchemy.url")
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as own_connection:
            _configure(own_connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("farm's migrations run online only: give a database URL")
run_migrations()
