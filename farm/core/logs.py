"""Structured logging for long-running processes (``farm worker``).

On a terminal a person reads the lines, so they are plain text; anywhere else
(systemd's journal, a container's log driver, a file) a program reads them, so
each record is one JSON object: ``ts``, ``level``, ``logger``, ``event`` (the
message) and the record's ``extra`` fields. Code logs with :func:`event` so the
fields stay machine-readable in both forms.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

# event() keeps its fields under one attribute, so a field may be called "name" or
# "module" without clashing with the LogRecord's own attributes.
_FIELDS = "farm_fields"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and k != _FIELDS}
    fields.update(getattr(record, _FIELDS, {}))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record; values that are not JSON become their ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _fields(record).items():
            data.setdefault(key, value)  # a field never hides the record's own keys
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level event key=value ...`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(stream: TextIO = sys.stderr, *, level: int = logging.INFO) -> None:
    """Send every log record to ``stream``: JSON unless it is a terminal."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if stream.isatty() else JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def event(
    logger: logging.Logger, what: str, /, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log the event ``what`` with ``fields`` as structured data."""
    logger.log(level, what, extra={_FIELDS: fields})
