"""Cursors of the dashboard's lists: what a page hands out comes back, anything else
is one usage error, never a database error (a client may send any cursor)."""

from __future__ import annotations

import base64
import json

import pytest

from farm.core.errors import UsageError
from farm.store.dashboard_changes import decode_cursor, encode_cursor


def forged(values: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_a_cursor_comes_back_as_made() -> None:
    assert decode_cursor(encode_cursor([12.5, 7]), [float, int]) == [12.5, 7]
    assert decode_cursor(None, [int]) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        forged([1]),  # too few values
        forged(["x", 1]),  # the wrong type
        forged([True, 1]),  # a bool is no number here
        forged([1.0, 2**63]),  # past a 64-bit integer: would overflow in the driver
        forged([1.0, -(2**63) - 1]),
    ],
)
def test_anything_else_is_a_usage_error(cursor: str) -> None:
    with pytest.raises(UsageError, match="not a cursor of this list"):
        decode_cursor(cursor, [float, int])
