"""The Redis key schema: every key starts with the prefix, and the table names every key."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import pytest

from farm.core import defaults, keys
from farm.core.keys import Keys

PREFIX = "farmtest-abc:"

# Arguments for each method, by parameter name.
ARGUMENTS: dict[str, object] = {
    "run_id": "r1",
    "shard_id": 3,
    "lease": 2,
    "digest": "ab" * 32,
    "token": "t0",
    "name": "farm",
}


def key_methods() -> dict[str, Callable[..., str]]:
    """Every public method of Keys, bound to a Keys of PREFIX."""
    built = Keys(PREFIX)
    return {
        name: getattr(built, name)
        for name, member in inspect.getmembers(Keys, inspect.isfunction)
        if not name.startswith("_")
    }


def table_rows() -> dict[str, str]:
    """The method and key columns of the table in farm.core.keys' docstring."""
    doc = keys.__doc__ or ""
    borders = [i for i, line in enumerate(doc.splitlines()) if re.fullmatch(r"[= ]+=", line)]
    assert len(borders) == 3, "the docstring's table has a head and a body"
    body = doc.splitlines()[borders[1] + 1 : borders[2]]
    rows = {}
    for line in body:
        method, key = line.split()[:2]
        rows[method] = key.strip("`")
    return rows


def call(method: Callable[..., str]) -> str:
    parameters = inspect.signature(method).parameters
    return method(**{name: ARGUMENTS[name] for name in parameters})


def test_the_default_prefix_is_farms() -> None:
    assert Keys().prefix == defaults.KEY_PREFIX


@pytest.mark.parametrize("name", sorted(key_methods()))
def test_every_key_starts_with_the_prefix(name: str) -> None:
    assert call(key_methods()[name]).startswith(PREFIX)


def test_the_table_names_every_method_and_no_other() -> None:
    assert set(table_rows()) == set(key_methods())


@pytest.mark.parametrize("name", sorted(key_methods()))
def test_each_key_is_built_as_its_row_says(name: str) -> None:
    pattern = table_rows()[name]
    names = {"p": PREFIX, "shard": ARGUMENTS["shard_id"], "queue": ARGUMENTS["name"]}
    expected = pattern.format_map({**ARGUMENTS, **names})
    assert call(key_methods()[name]) == expected
