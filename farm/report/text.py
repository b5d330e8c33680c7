"""What the terminal report's sections share: safe text, pytest's rules and widths,
and node ids and paths shown as pytest shows them.

Test output is untrusted text. Before it reaches the terminal, every control
character but newline and tab (and Unicode bidi overrides, which can make shown
text differ from the real one) is replaced by a visible ``\\xNN``/``\\uNNNN``
escape, so a test cannot move the cursor, clear the screen or retitle the window.
"""

from __future__ import annotations

import os.path
import re
import shutil
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from farm.core.pytest_report import Place

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

RED, GREEN, YELLOW, BOLD, RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[0m"


def terminal_safe(text: str) -> str:
    """``text`` with control characters other than ``\\n`` and ``\\t`` made visible."""
    return _UNSAFE.sub(_escape_char, text.replace("\r\n", "\n"))


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def format_duration(seconds: float) -> str:
    """pytest's way of writing a run's length: ``24.10s``, ``124.10s (0:02:04)``."""
    text = f"{seconds:.2f}s"
    if seconds >= 60:
        text += f" ({timedelta(seconds=int(seconds))})"
    return text


def rule(title: str, fill: str, width: int) -> str:
    """``title`` centred in a line of ``fill`` characters, as pytest's section rules."""
    room = width - len(title) - 2
    if room < 2:
        return f"{fill} {title} {fill}"
    left = room // 2
    return f"{fill * left} {title} {fill * (room - left)}"


def lines_of(text: str) -> list[str]:
    """The lines pytest's terminal writer prints for ``text`` written as one line:
    none for "", and one trailing newline dropped."""
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@lru_cache(maxsize=100)
def _char_width(char: str) -> int:
    """Columns one character takes, as pytest's terminal writer counts them."""
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return 1
    zero = (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2063)  # some Cf, Zl, Zp
    if code == 0 or any(low <= code <= high for low, high in zero):
        return 0
    category = unicodedata.category(char)
    if category == "Cc":
        return -1
    if category in ("Me", "Mn"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("F", "W") else 1


def text_width(text: str) -> int:
    """Columns ``text`` takes (-1 if it holds a control character), as pytest counts."""
    width = 0
    for char in unicodedata.normalize("NFC", text):
        columns = _char_width(char)
        if columns < 0:
            return -1
        width += columns
    return width


def trimmed(template: str, message: str, room: int) -> str | None:
    """``template`` (holding one ``{}``) filled with the first line of ``message``,
    cut with ``...`` to ``room`` columns; None when not even ``...`` fits (pytest's
    ``_format_trimmed``)."""
    message = message.split("\n", 1)[0]
    ellipsis = "..."
    fixed = text_width(template.format(""))
    if fixed + len(ellipsis) > room:
        return None
    if fixed + text_width(message) > room:
        room -= len(ellipsis)
        message = message[:room]
        while fixed + text_width(message) > room:
            message = message[:-1]
        message += ellipsis
    return template.format(message)


@dataclass(frozen=True)
class Where:
    """Where pytest ran on the submitter, to show node ids and paths as it shows
    them: relative to the folder it was started in. Both "" leaves them as they are."""

    rootdir: str = ""
    invocation_dir: str = ""

    def node_id(self, node_id: str) -> str:
        """``node_id`` (relative to the rootdir) relative to the invocation folder."""
        if not self.rootdir or not self.invocation_dir or self.rootdir == self.invocation_dir:
            return node_id
        path, sep, rest = node_id.partition("::")
        return self.relative(os.path.join(self.rootdir, path)) + sep + rest

    def absolute(self, path: str) -> str:
        """A path a worker sent (relative to the rootdir, or absolute) on this machine."""
        if not path or os.path.isabs(path) or not self.rootdir:
            return path
        return os.path.join(self.rootdir, path)

    def relative(self, path: str) -> str:
        """A path as pytest shows it: relative to the invocation folder (``bestrelpath``)."""
        path = self.absolute(path)
        if not self.invocation_dir or not os.path.isabs(path):
            return path
        return os.path.relpath(path, self.invocation_dir)

    def place(self, place: Place) -> str:
        """``path:line: text`` with the path as pytest printed it (absolute)."""
        if not place.path:
            return place.text
        return f"{self.absolute(place.path)}:{place.lineno}: {place.text}"


def terminal_width() -> int:
    """The columns pytest would print in here: the terminal's (or ``COLUMNS``), 80
    when there is none or it says under 40."""
    width = shutil.get_terminal_size(fallback=(80, 24)).columns
    return width if width >= 40 else 80


def on_ci(environ: Mapping[str, str]) -> bool:
    """Whether pytest would think it runs on CI (it then prints messages whole)."""
    return any(environ.get(name) for name in ("CI", "BUILD_NUMBER"))


class Paint:
    """Wraps text in an ANSI style, or returns it unchanged when color is off."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        return f"{style}{text}{RESET}" if self._enabled else text


__all__ = [
    "BOLD",
    "GREEN",
    "RED",
    "RESET",
    "YELLOW",
    "Paint",
    "Where",
    "format_duration",
    "lines_of",
    "on_ci",
    "plural",
    "rule",
    "terminal_safe",
    "terminal_width",
    "text_width",
    "trimmed",
]
