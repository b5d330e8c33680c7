"""Masking secrets in URLs, and choosing the PostgreSQL driver."""

from __future__ import annotations

import pytest

from farm.core.urls import mask_url
from farm.store.urls import database_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://farm:s3cret@db:5432/farm", "postgresql://farm:***@db:5432/farm"),
        ("postgresql+psycopg://u:p@h/d", "postgresql+psycopg://u:***@h/d"),
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://default:pa@ss/w:rd@host:6380", "rediss://default:***@host:6380"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
        ("sqlite:////tmp/farm.db", "sqlite:////tmp/farm.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("redis://h:6379/0?password=s3cret&db=1", "redis://h:6379/0?password=***&db=1"),
        ("unix:///run/redis.sock?Password=x", "unix:///run/redis.sock?Password=***"),
        ("not a url", "not a url"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg"),
        ("postgres://u@h/d", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_database_url_chooses_psycopg_for_bare_postgres(url: str, driver: str) -> None:
    assert database_url(url).drivername == driver
