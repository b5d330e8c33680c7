"""How farm starts pytest: as the ``pytest`` console script does.

``python -m pytest`` (or ``-c``) puts the working folder first on ``sys.path``; the
``pytest`` command does not, and a suite's imports can resolve differently between
the two. The oracle is the ``pytest`` command, so farm drops that entry too.

In a test environment built by a setup command, farm's own plugin comes from a
folder holding only a link to this ``farm`` package (see
:mod:`farm.worker.envs`); it goes first on the test process's ``sys.path``, so
nothing of farm's but the name ``farm`` is visible to the tests, and nothing is
installed into the environment.
"""

from __future__ import annotations

import sys


def pytest_command(python: str = sys.executable, *, farm_path: str = "") -> list[str]:
    """argv prefix that runs pytest in a fresh interpreter; append pytest's arguments.

    ``farm_path``: a folder to put first on ``sys.path`` (one that holds ``farm``)."""
    boot = "import sys; sys.path.pop(0); "
    if farm_path:
        boot += f"sys.path.insert(0, {farm_path!r}); "
    return [python, "-c", boot + "import pytest; sys.exit(int(pytest.main()))"]
