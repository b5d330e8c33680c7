"""A suite with top-level ``worker`` and ``scheduler`` packages of its own runs under farm.

farm's packages are ``farm.worker`` and ``farm.scheduler``; a suite may have its own
``worker`` and ``scheduler`` (Celery and Django projects often do). The suite here
imports its own and checks them, and ships modules named as farm's used to be
(``worker/plugin.py``, ``scheduler/collect_plugin.py``, ...) that raise when
imported: a farm that loaded one of them instead of its own fails loudly.

It must give plain pytest's outcome (exit code, summary counts, every test's
outcome; see ``tests/oracle.py``):

* under ``farm run -n 2``, an embedded Redis and local workers, cold and warm;
* on a ``farm worker`` started on its own, submitted to with ``farm run --broker``,
  so from a code snapshot, in an environment built by a setup command. farm's
  plugin reaches that environment through a folder holding only a link named
  ``farm``; a test of the suite that runs only in such an environment checks that
  Celery (nor any other dependency of farm's) is not importable there. Its oracle
  is plain pytest in an environment built by the same command.

The setup command stays offline and quick: it links the new virtual environment to a
folder of links to pytest and its dependencies alone, taken from this environment.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import NO_IDLE_PLUGINS, WorkerProcess, farm_env
from helpers import run_farm as run_farm_command
from oracle import Outcome, compare, junit_outcomes, run_farm, run_pytest, summary_counts
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.integration

BUILT_MARK = "built-by-setup"  # left in the environment's prefix by the setup command
ENV_TEST = "tests.test_environment::test_farm_dependencies_are_not_importable"

# Modules named as farm's were before they moved under farm: each raises if imported.
LOUD_MODULES = (
    "worker.plugin", "worker.app", "worker.runner", "worker.envs",
    "scheduler.collect_plugin", "scheduler.collect", "scheduler.plan",
)  # fmt: skip
_LOUD = (
    "raise RuntimeError(\n"
    "    'farm imported the suite\\'s own {name} (' + __file__ + '), not its own farm.{name}'\n"
    ")\n"
)
SUITE: dict[str, str] = {
    "pytest.ini": "[pytest]\npythonpath = .\n",
    "worker/__init__.py": "NAME = 'the suite worker'\n\n\ndef double(x):\n    return 2 * x\n",
    "scheduler/__init__.py": (
        "NAME = 'the suite scheduler'\n\n\n"
        "def order(jobs):\n    return sorted(jobs, reverse=True)\n"
    ),
    **{f"{name.replace('.', '/')}.py": _LOUD.format(name=name) for name in LOUD_MODULES},
    "tests/test_worker.py": (
        "import importlib\n"
        "from pathlib import Path\n\n"
        "import pytest\n\n"
        "import worker\n\n"
        "ROOT = Path(__file__).resolve().parent.parent\n\n\n"
        "def test_worker_is_the_suites_own():\n"
        "    assert worker.NAME == 'the suite worker'\n"
        "    assert Path(worker.__file__).resolve() == ROOT / 'worker' / '__init__.py'\n\n\n"
        "@pytest.mark.parametrize('x', range(6))\n"
        "def test_worker_doubles(x):\n"
        "    assert worker.double(x) == x + x\n\n\n"
        "def test_its_plugin_module_is_the_loud_one():\n"
        "    with pytest.raises(RuntimeError, match='suite'):\n"
        "        importlib.import_module('worker.plugin')\n"
    ),
    "tests/test_scheduler.py": (
        "from pathlib import Path\n\n"
        "import pytest\n\n"
        "import scheduler\n"
        "from scheduler import order\n\n"
        "ROOT = Path(__file__).resolve().parent.parent\n\n\n"
        "def test_scheduler_is_the_suites_own():\n"
        "    assert scheduler.NAME == 'the suite scheduler'\n"
        "    assert Path(scheduler.__file__).resolve() == ROOT / 'scheduler' / '__init__.py'\n\n\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "def test_scheduler_orders(n):\n"
        "    assert order(range(n)) == list(range(n))[::-1]\n"
    ),
    "tests/test_environment.py": (
        "import importlib.util\n"
        "import os\n"
        "import sys\n\n"
        "import pytest\n\n"
        f"BUILT = os.path.exists(os.path.join(sys.prefix, {BUILT_MARK!r}))\n\n\n"
        "@pytest.mark.skipif(not BUILT, reason='only in an environment a setup command built')\n"
        "def test_farm_dependencies_are_not_importable():\n"
        "    for name in ('celery', 'kombu', 'redis', 'sqlalchemy', 'alembic', 'click'):\n"
        "        assert importlib.util.find_spec(name) is None, name\n"
        "    import worker, scheduler\n"
        "    assert worker.NAME == 'the suite worker'\n"
        "    assert scheduler.NAME == 'the suite scheduler'\n"
    ),
}


def write_suite(root: Path) -> Path:
    for rel, text in SUITE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def oracle_env(**extra: str) -> dict[str, str]:
    """farm's environment for a subprocess, with this interpreter's ``pytest`` and
    ``farm`` first on PATH and no pytest options of the caller's."""
    env = farm_env(**extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_ADDOPTS"] = NO_IDLE_PLUGINS  # none of the caller's options
    return env


def differences_message(what: str, expected: Outcome, got: Outcome) -> str:
    return (
        f"{what}: farm differs from pytest:\n  "
        + "\n  ".join(compare(expected, got))
        + f"\n--- pytest ---\n{expected.output[-1500:]}\n--- farm ---\n{got.output[-3000:]}"
    )


def test_local_workers_run_the_suite_as_pytest_does(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite")
    env = oracle_env()
    expected = run_pytest(suite, [], env, timeout_s=60)
    assert expected.exit_code == 0, expected.output[-2000:]
    assert expected.counts == {"passed": 15, "skipped": 1}, expected.output[-2000:]
    assert expected.tests[ENV_TEST] == "skipped"
    for when in ("cold", "warm"):
        got = run_farm(suite, [], env, tmp_path / "state", 2, timeout_s=90)
        assert not compare(expected, got), differences_message(when, expected, got)


# --- a farm elsewhere: a worker of its own, a snapshot and a setup command -------------


def pytest_distributions() -> list[importlib.metadata.Distribution]:
    """pytest's distribution and those it needs here, by its requirements' markers."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = ["pytest"]
    while pending:
        dist = importlib.metadata.distribution(pending.pop())
        name = canonicalize_name(dist.metadata["Name"])
        if name in found:
            continue
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


@pytest.fixture(scope="module")
def pytest_only_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of links to pytest and its dependencies, and nothing else."""
    site = tmp_path_factory.mktemp("pytest-only")
    for dist in pytest_distributions():
        tops = {f.parts[0] for f in dist.files or []} - {"..", "__pycache__"}
        for top in tops:
            target = Path(str(dist.locate_file(top)))
            if target.exists() and not (site / top).exists():
                (site / top).symlink_to(target)
    assert (site / "pytest").exists() and (site / "pluggy").exists()
    assert not (site / "celery").exists()
    return site


def setup_command(site: Path) -> str:
    """What stands in for ``pip install pytest``: the environment sees ``site``."""
    return (
        f"python -c \"import site; open(site.getsitepackages()[0] + '/pytest-only.pth', 'w')"
        f'.write({str(site)!r})" && touch "$VIRTUAL_ENV/{BUILT_MARK}"'
    )


def built_like_a_worker(folder: Path, command: str, env: dict[str, str]) -> dict[str, str]:
    """A virtual environment at ``folder`` built by ``command`` as a worker builds one,
    with a ``pytest`` command; the environment to run it with."""
    venv.EnvBuilder(with_pip=False, clear=True).create(folder)
    bin_dir = folder / "bin"
    activated = {**env, "VIRTUAL_ENV": str(folder), "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    subprocess.run(["/bin/sh", "-c", command], env=activated, check=True, capture_output=True)
    script = bin_dir / "pytest"
    script.write_text(f"#!{bin_dir / 'python'}\nimport sys, pytest\nsys.exit(pytest.main())\n")
    script.chmod(0o755)
    return activated


@pytest.fixture
def worker(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[WorkerProcess]:
    home = tmp_path / "worker-home"
    home.mkdir()
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q")
    process = WorkerProcess(
        tmp_path / "worker.log", "--broker", redis_url, "-c", "2",
        "--cache", str(tmp_path / "worker-cache"), "--name", "clash", cwd=home, env=env,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.kill()


def submit(suite: Path, redis_url: str, env: dict[str, str], tmp: Path) -> Outcome:
    """``farm run --broker URL -n 2`` in ``suite``, read as the oracle reads a run."""
    junit = tmp / "farm-junit.xml"
    started = time.monotonic()
    done = run_farm_command(
        "run", "--broker", redis_url, "-n", "2", "--state-dir", str(tmp / "state"),
        "--junit-xml", str(junit), cwd=suite, env=env, timeout_s=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    return Outcome(
        command=tuple(str(a) for a in done.args),
        exit_code=done.returncode,
        tests=junit_outcomes(junit) if junit.exists() else {},
        counts=summary_counts(output),
        output=output,
        wall_s=time.monotonic() - started,
    )


def test_a_worker_elsewhere_runs_the_suite_in_its_built_environment(
    tmp_path: Path,
    redis_url: str,
    key_prefix: str,
    worker: WorkerProcess,
    pytest_only_site: Path,
) -> None:
    suite = write_suite(tmp_path / "suite")
    command = setup_command(pytest_only_site)
    expected_env = built_like_a_worker(tmp_path / "oracle-venv", command, oracle_env())
    expected = run_pytest(suite, [], expected_env, timeout_s=60)
    assert expected.exit_code == 0, expected.output[-2000:]
    assert expected.counts == {"passed": 16}, expected.output[-2000:]

    env = oracle_env(
        FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q", FARM_SETUP_COMMAND=command
    )
    got = submit(suite, redis_url, env, tmp_path)
    assert not compare(expected, got), differences_message("--broker", expected, got)
    assert got.tests[ENV_TEST] == "passed"
    assert len(worker.events("env.built")) == 1
    assert len(worker.events("snapshot.fetched")) == 1
