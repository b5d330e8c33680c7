"""Database URLs: choosing the database driver (masking lives in :mod:`farm.core.urls`)."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from farm.core.urls import mask_url

# Drivers farm ships with for a URL that names none (SQLAlchemy's default for
# "postgresql" is psycopg2, which farm does not depend on).
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``, with psycopg 3 chosen for a bare PostgreSQL URL.

    Raises :class:`sqlalchemy.exc.ArgumentError` when ``url`` is not a URL.
    """
    parsed = make_url(url)
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed if driver is None else parsed.set(drivername=driver)


__all__ = ["database_url", "mask_url"]
