"""How farm starts pytest: the same as the ``pytest`` console script does.

``python -m pytest`` would put the working directory first on ``sys.path``, so a
suite with its own top-level ``worker`` or ``scheduler`` package would shadow
farm's plugins; the console script does not, and neither does this.
"""

from __future__ import annotations

import sys

_BOOT = "import sys; sys.path.pop(0); import pytest; sys.exit(int(pytest.main()))"


def pytest_command(python: str = sys.executable) -> list[str]:
    """argv prefix that runs pytest in a fresh interpreter; append pytest's arguments."""
    return [python, "-c", _BOOT]
