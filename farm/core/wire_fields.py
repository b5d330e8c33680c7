"""Reading the typed fields of a JSON message that came over the network.

Both directions of the wire (the shard task a worker receives, the events it sends
back: see :mod:`farm.core.shard_task` and :mod:`farm.core.messages`) are JSON objects
from another process, maybe another machine or an older farm. Each reader here takes
the decoded object and a key, and returns the value with its type checked, or raises
:class:`MessageError` naming the field, so a malformed message is refused whole
rather than half read. A missing key raises :class:`KeyError`, which the caller turns
into a :class:`MessageError` naming the message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from farm.core.errors import FarmError

T = TypeVar("T")


class MessageError(FarmError):
    """Raised when a message from the network is malformed."""


def optional_field(
    data: dict[str, Any], key: str, parse: Callable[[dict[str, Any], str], T], default: T
) -> T:
    """``parse(data, key)`` if the field is there (older senders omit it), else ``default``."""
    return parse(data, key) if key in data else default


def str_field(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise MessageError(f"field {key!r} must be a string")
    return value


def int_field(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise MessageError(f"field {key!r} must be an integer")
    return value


def float_field(data: dict[str, Any], key: str) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise MessageError(f"field {key!r} must be a finite number")
    return float(value)


def float_or_none_field(data: dict[str, Any], key: str) -> float | None:
    return None if data[key] is None else float_field(data, key)


def str_list_field(data: dict[str, Any], key: str) -> list[str]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MessageError(f"field {key!r} must be a list of strings")
    return value
