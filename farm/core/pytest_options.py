"""What the suite's pytest options change in how farm runs and reports a suite.

The options are resolved by pytest itself on the submitter (the command line after
``--`` plus the ini file's ``addopts``), in the collection subprocess, and travel as
*facts*: a flat JSON object written by the collection plugin and kept in the
collection cache for warm runs. A fact missing from an older cache entry takes the
field's default, so adding an option never invalidates a cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PytestOptions:
    """The options, as pytest resolved them, that farm acts on itself.

    ``maxfail`` is ``-x``/``--maxfail`` (0: never stop); ``reportchars`` the
    short-summary characters of ``-r`` after pytest expands ``a``, ``A`` and ``N``.
    """

    maxfail: int = 0
    reportchars: str = "fE"

    def to_facts(self) -> dict[str, Any]:
        """The options as one flat JSON object."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> PytestOptions:
        """The options of ``facts``; a missing fact takes its default.

        Raises ValueError (or TypeError) on a fact of the wrong type, so a damaged
        cache entry is read as no entry.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in facts:
                values[f.name] = _typed(f.name, facts[f.name], getattr(cls(), f.name))
        return cls(**values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _typed(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the field's ``default`` (None allows None or a number)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if default is None and (value is None or number):
        return value
    if isinstance(default, bool) and isinstance(value, bool):
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool) and number:
        return type(default)(value)
    if isinstance(default, str) and isinstance(value, str):
        return value
    strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(default, tuple) and strings:
        return tuple(value)
    raise ValueError(f"pytest option fact {name!r} has the wrong type: {value!r}")
