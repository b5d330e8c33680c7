"""Where in the repository a test failed, read from its traceback: for annotations
(GitHub's ``::error file=,line=``, check-run annotations) that point at a line.

A traceback names its frames in two ways. pytest's own styles (long, short) end each
entry with ``path:line: text`` (``tests/test_cart.py:12: AssertionError``, ``...:8:
in helper``), with paths relative to the rootdir where the test ran, which is where
node ids start too; Python's style (``--tb=native``, and syntax errors in collection
reports) writes ``File "path", line N``, with absolute paths. The failure's place is
the innermost frame inside the repository: a relative path that does not climb out
of it, nor into installed packages, or an absolute path that ends with the node id's
own file. Without one, it is the node id's file, with no line.
"""

from __future__ import annotations

import re

# pytest: "path:line: text" at the start of a line ("path:line:" ending the line too).
# A path holds no ": ", which ends the first part of a message line ("Hint: ...").
_PYTEST_FRAME = re.compile(r"^(?P<path>[^\s>:](?:[^:]|:(?!\s))*?):(?P<line>\d+):(?:\s|$)")
# Python: '  File "path", line N, in name' (also behind pytest's "E   " marker).
_PYTHON_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')
# pytest marks the lines of the error itself with "E" and blanks: never a frame.
_ERROR_LINE = re.compile(r"^E(?:\s|$)")
_INSTALLED = ("site-packages/", "dist-packages/")


def failure_location(node_id: str, traceback: str) -> tuple[str, int | None]:
    """``(path, line)`` of the innermost frame of ``traceback`` inside the repository,
    paths relative to the rootdir; ``(node id's file, None)`` when it names none."""
    own_file = node_id.split("::", 1)[0]
    found: tuple[str, int] | None = None
    for text in traceback.splitlines():
        for path, line in _frames(text):
            inside = _inside(path, own_file)
            if inside is not None and line > 0:
                found = (inside, line)
    return found if found is not None else (own_file, None)


def _frames(text: str) -> list[tuple[str, int]]:
    frames = [(m["path"], int(m["line"])) for m in _PYTHON_FRAME.finditer(text)]
    if not frames and not _ERROR_LINE.match(text):
        match = _PYTEST_FRAME.match(text)
        if match:
            frames.append((match["path"], int(match["line"])))
    return frames


def _inside(path: str, own_file: str) -> str | None:
    """``path`` relative to the rootdir if it is a file of the repository, else None."""
    path = path.replace("\\", "/")
    if path.startswith("<") or any(part in path for part in _INSTALLED):
        return None  # <frozen importlib._bootstrap>, <string>, installed packages
    if path.startswith("/") or re.match(r"^[A-Za-z]:/", path):
        # Absolute: only the node's own file is known to be the repository's.
        return own_file if own_file and path.endswith("/" + own_file) else None
    while path.startswith("./"):
        path = path[2:]
    if path == ".." or path.startswith("../") or not path:
        return None
    return path


__all__ = ["failure_location"]
