"""farm against pytest on the test suites of real open-source projects.

Usage::

    python bench/real_suites.py [--workers 2] [--only NAME ...] [--cache DIR] [--plugins]

For each suite in ``SUITES`` (a project at a pinned version whose source
distribution on PyPI ships its tests), this:

Everything goes under ``--cache`` (``$XDG_CACHE_HOME/farm-bench``, else
``~/.cache/farm-bench``), outside any project: a suite without a pytest
configuration of its own would otherwise read this repository's.

1. downloads the sdist (``pip download --no-deps --no-binary :all: NAME==VERSION``)
   into ``CACHE/sdists`` and unpacks it into ``CACHE/src``, once;
2. makes a virtual environment for it in ``CACHE/venvs`` (no system site
   packages) with farm (``pip install -e`` this checkout), the project from the
   unpacked tree and its test requirements, all pinned: the suite's own pins, and
   for everything else the versions of the environment running this script (so
   farm's dependencies are the ones farm is developed with); made again only when
   that list changes;
3. runs, in the unpacked tree, plain ``pytest ARGS``, then ``farm run -n WORKERS``
   with the same arguments *cold* (a fresh state folder: nothing cached) and *warm*
   (the same command again: farm starts from its cached collection), each with
   JUnit XML and a bound on its time, past which it is killed and called hung;
4. compares each farm run with pytest through ``tests/oracle.py``: the exit code,
   every count of the final summary line, and every test's outcome in the JUnit XML.

With ``--plugins`` each suite runs with the plugins people run with, installed from
PyPI at the versions of this environment (pytest-cov, coverage, pytest-timeout,
pytest-randomly) in a venv of its own, and the same options on both sides:
``-p randomly --randomly-seed=N --timeout=600 --cov=PKG --cov-report=term -ra
--durations=5``; besides the oracle's comparison, the coverage table's ``TOTAL``
line, and the seed farm prints, must agree with pytest's.

It prints one row per suite and then every difference, and exits 1 if any farm run
differs from pytest, else 2 if a suite could not be set up (the others still run).
Each command's whole output is kept in ``CACHE/logs/SUITE-VERSION-RUN.log``.
Wall times are whole commands, start-up and collection included, on a machine that
may be shared.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]

from _common import print_table  # noqa: E402
from oracle import Outcome, compare, run_farm, run_pytest  # noqa: E402

# pip and a source build of a project can take minutes on a busy machine.
SETUP_TIMEOUT_S = 900.0
# A farm run gets this many times pytest's wall time (and at least the floor)
# before it is called hung: farm on 2 workers is never expected to be slower than
# this on these suites, and a hang must not stall the table.
HANG_FACTOR = 4.0
HANG_FLOOR_S = 120.0
# --plugins: installed at this environment's versions, and the options they get.
PLUGINS = ("pytest-cov", "coverage", "pytest-timeout", "pytest-randomly")
PLUGIN_SEED = 20261130
PYTEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Suite:
    """One project's test suite: what is installed and how pytest is run on it.

    ``requirements`` are pinned pip specifiers for its tests; ``args`` are pytest's
    arguments in the unpacked sdist, paths first (the leading ones become farm's
    PATHS); ``exercises`` says which pytest features made it worth including, and
    ``note`` anything left out and why.
    """

    name: str
    version: str
    requirements: tuple[str, ...]
    args: tuple[str, ...]
    exercises: str
    cov_sources: tuple[str, ...] = ()
    note: str = ""


SUITES: tuple[Suite, ...] = (
    Suite(
        name="more-itertools",
        version="11.2.1",
        requirements=(),
        args=("tests",),
        exercises="unittest.TestCase classes, self.subTest in loops",
        cov_sources=("more_itertools",),
    ),
    Suite(
        name="idna",
        version="3.20",
        requirements=("hypothesis==6.170.15",),
        args=("tests",),
        exercises="unittest.TestCase with self.subTest, hypothesis properties",
        cov_sources=("idna",),
    ),
    Suite(
        name="attrs",
        version="26.1.0",
        requirements=("hypothesis==6.170.15", "pympler==1.1"),
        args=("tests",),
        exercises="parametrize, xfail_strict, --import-mode=importlib, hypothesis",
        cov_sources=("attr", "attrs"),
        note=(
            "cloudpickle left out on purpose: test_3rd_party.py is then skipped at "
            "collection (module-level importorskip); test_mypy.yml needs "
            "pytest-mypy-plugins and is not collected"
        ),
    ),
    Suite(
        name="python-dateutil",
        version="2.9.0.post0",
        # pytest-cov registers the no_cover mark the tests use; unknown marks are
        # errors under the suite's filterwarnings = error.
        requirements=(
            "hypothesis==6.170.15",
            "freezegun==1.5.5",
            "pytest-cov==7.1.0",
            "coverage==7.17.3",
        ),
        args=("tests", "-W", "ignore::pytest.PytestRemovedIn10Warning"),
        exercises="xfail marks with xfail_strict, filterwarnings=error, unittest classes",
        cov_sources=("dateutil",),
        note=(
            "2.9.0.post0, not 4.0.0: celery, which farm needs in the same venv, "
            "requires dateutil < 3; tests/ only (tox also runs docs/); -W because "
            "pytest 9 deprecates the generator given to parametrize in "
            "test_isoparser.py, an error under filterwarnings = error"
        ),
    ),
    Suite(
        name="packaging",
        version="26.3",
        requirements=("hypothesis==6.170.15", "pretend==1.0.9", "tomli-w==1.2.0"),
        args=("tests",),
        exercises="heavy parametrize, -m 'not property' in addopts (deselected)",
        cov_sources=("packaging",),
    ),
)


@dataclass(frozen=True)
class Result:
    """One suite's three runs, and farm's differences from pytest cold and warm."""

    suite: Suite
    pytest: Outcome
    cold: Outcome
    warm: Outcome
    cold_differences: list[str]
    warm_differences: list[str]


class SetupError(Exception):
    """Raised when a suite's sdist cannot be fetched, unpacked or installed."""


def pip(python: Path | str, args: Sequence[str], what: str) -> str:
    """Run ``python -m pip ARGS``; its output, or SetupError saying ``what`` failed."""
    command = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise SetupError(f"{what}: pip ran over {SETUP_TIMEOUT_S:.0f}s") from e
    if done.returncode != 0:
        # pip warns once per package about index locations it skips; only the
        # errors say why the install failed.
        errors = [line for line in done.stderr.splitlines() if not line.startswith("WARNING:")]
        raise SetupError(f"{what}: pip exited {done.returncode}\n" + "\n".join(errors[-30:]))
    return done.stdout


def sdist(suite: Suite, cache: Path) -> Path:
    """The suite's sdist archive in ``cache/sdists``, downloaded if absent."""
    folder = cache / "sdists"
    found = _find_sdist(folder, suite)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"{suite.name}=={suite.version}"
    download = ["download", "--no-deps", "--no-binary", ":all:", spec, "-d", str(folder)]
    pip(sys.executable, download, f"download {spec}")
    found = _find_sdist(folder, suite)
    if found is None:
        raise SetupError(f"download {spec}: no sdist of it in {folder}")
    return found


def _find_sdist(folder: Path, suite: Suite) -> Path | None:
    # Older sdists keep the project's spelling (python-dateutil-2.9.0.post0), newer
    # ones normalise it (more_itertools-11.2.1), so names are compared normalised.
    for path in folder.glob("*.tar.gz"):
        project, _, version = path.name.removesuffix(".tar.gz").rpartition("-")
        if normalise(project) == normalise(suite.name) and version == suite.version:
            return path
    return None


def unpack(archive: Path, cache: Path) -> Path:
    """The sdist's tree under ``cache/src``, unpacked once (whole or not at all)."""
    target = cache / "src" / archive.name.removesuffix(".tar.gz")
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
        tops = list(Path(scratch).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise SetupError(f"{archive.name}: expected one top folder, found {len(tops)}")
        tops[0].rename(target)
    return target


def pins(exclude: Sequence[str]) -> list[str]:
    """``name==version`` of every package of this interpreter's environment but farm
    and those named in ``exclude`` (names compared as pip normalises them)."""
    frozen = pip(sys.executable, ["freeze", "--exclude-editable"], "freeze this environment")
    skip = {normalise(name) for name in [*exclude, "farm"]}
    return [
        line
        for line in frozen.splitlines()
        if "==" in line and normalise(line.split("==")[0]) not in skip
    ]


def normalise(name: str) -> str:
    """A package name as pip compares them: lower case, runs of ``-_.`` as one ``-``."""
    return "-".join(
        part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part
    )


def venv(suite: Suite, tree: Path, cache: Path, *, plugins: bool = False) -> Path:
    """The suite's virtual environment (its folder), made or remade as needed.

    A stamp file holds a digest of everything installed; a venv whose stamp differs
    is made again from nothing, so no leftover of an older pin can leak in.
    """
    folder = cache / "venvs" / f"{suite.name}-{suite.version}{'-plugins' if plugins else ''}"
    wanted_packages = [*suite.requirements, *(PLUGINS if plugins else ())]
    requirements = [s.split("==")[0] for s in suite.requirements]
    constraints = pins([suite.name, *requirements])
    wanted = "\n".join([str(ROOT), str(tree), *wanted_packages, *constraints])
    digest = hashlib.sha256(wanted.encode()).hexdigest()
    stamp = folder / "farm-bench.stamp"
    if stamp.exists() and stamp.read_text() == digest:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "venv", str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SetupError(f"venv for {suite.name}: {done.stderr.strip()}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
        file.write("\n".join(constraints) + "\n")
    try:
        pip(
            folder / "bin" / "python",
            ["install", "-c", file.name, "-e", str(ROOT), str(tree), *wanted_packages],
            f"install {suite.name} {suite.version}",
        )
    finally:
        os.unlink(file.name)
    stamp.write_text(digest)
    return folder


def suite_env(folder: Path) -> dict[str, str]:
    """This process's environment with ``folder``'s venv activated and farm's and
    pytest's own variables removed, so neither run inherits settings of ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FARM_", "PYTEST_", "CELERY_"))
        and k not in ("PYTHONPATH", "PYTHONHOME")
    }
    env["VIRTUAL_ENV"] = str(folder)
    env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def plugin_args(suite: Suite) -> tuple[str, ...]:
    """The plugins' options of a ``--plugins`` run, the same for pytest and farm."""
    cov = tuple(f"--cov={source}" for source in suite.cov_sources)
    return (
        "-p", "randomly", f"--randomly-seed={PLUGIN_SEED}", "--timeout=600",
        *cov, "--cov-report=term", "-ra", "--durations=5",
    )  # fmt: skip


def plugin_differences(expected: Outcome, got: Outcome) -> list[str]:
    """What a ``--plugins`` run must print as pytest does besides the oracle's
    comparison: the coverage total and the seed."""
    found = []
    want, have = total_line(expected.output), total_line(got.output)
    if want is None or want != have:
        found.append(f"coverage TOTAL: pytest {want!r}, farm {have!r}")
    seed = f"Using --randomly-seed={PLUGIN_SEED}"
    if seed not in got.output:
        found.append(f"farm did not print {seed!r}")
    return found


def total_line(output: str) -> str | None:
    """The coverage table's TOTAL line, spaces squeezed; None if there is none."""
    for line in output.splitlines():
        if line.startswith("TOTAL "):
            return " ".join(line.split())
    return None


def run_suite(suite: Suite, cache: Path, workers: int, *, plugins: bool = False) -> Result:
    """Set the suite up, run pytest then farm cold and warm, compare."""
    tree = unpack(sdist(suite, cache), cache)
    env = suite_env(venv(suite, tree, cache, plugins=plugins))
    args = (*suite.args, *plugin_args(suite)) if plugins else suite.args
    mode = "-plugins" if plugins else ""
    state_dir = cache / "state" / f"{suite.name}-{suite.version}{mode}"
    shutil.rmtree(state_dir, ignore_errors=True)
    print(f"{suite.name} {suite.version}: pytest ...", file=sys.stderr, flush=True)
    expected = run_pytest(tree, args, env, timeout_s=PYTEST_TIMEOUT_S)
    bound_s = max(HANG_FLOOR_S, HANG_FACTOR * expected.wall_s)
    runs: list[Outcome] = []
    for label in ("cold", "warm"):
        print(f"{suite.name} {suite.version}: farm {label} ...", file=sys.stderr, flush=True)
        runs.append(run_farm(tree, args, env, state_dir, workers, timeout_s=bound_s))
    cold, warm = runs
    # The table keeps only counts; the whole output is what explains a difference.
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for label, outcome in (("pytest", expected), ("cold", cold), ("warm", warm)):
        (logs / f"{suite.name}-{suite.version}{mode}-{label}.log").write_text(outcome.output)
    cold_differences, warm_differences = compare(expected, cold), compare(expected, warm)
    if plugins:
        cold_differences += plugin_differences(expected, cold)
        warm_differences += plugin_differences(expected, warm)
    return Result(suite, expected, cold, warm, cold_differences, warm_differences)


# Short names for the counts in the table; the legend is printed under it.
ABBREVIATIONS = {
    "passed": "p",
    "failed": "f",
    "error": "E",
    "skipped": "s",
    "xfailed": "x",
    "xpassed": "X",
    "deselected": "d",
    "warning": "w",
}


def short_counts(counts: Mapping[str, int]) -> str:
    """``{"passed": 12, "skipped": 1}`` as ``12p 1s``; words without a letter in full."""
    return " ".join(f"{n}{ABBREVIATIONS.get(word, ' ' + word)}" for word, n in counts.items())


def exit_cell(outcome: Outcome) -> str:
    return "hung" if outcome.hung else str(outcome.exit_code)


def agree_cell(differences: Sequence[str]) -> str:
    return "yes" if not differences else f"NO ({len(differences)})"


def print_results(results: Sequence[Result]) -> None:
    """The table, its legend, then each suite's differences cold and warm."""
    header = [
        "suite",
        "version",
        "tests",
        "pytest",
        "exit",
        "wall",
        "farm cold",
        "exit",
        "wall",
        "agree",
        "farm warm",
        "exit",
        "wall",
        "agree",
    ]
    rows = [
        [
            r.suite.name,
            r.suite.version,
            str(len(r.pytest.tests)),
            short_counts(r.pytest.counts),
            exit_cell(r.pytest),
            f"{r.pytest.wall_s:.1f}s",
            short_counts(r.cold.counts),
            exit_cell(r.cold),
            f"{r.cold.wall_s:.1f}s",
            agree_cell(r.cold_differences),
            short_counts(r.warm.counts),
            exit_cell(r.warm),
            f"{r.warm.wall_s:.1f}s",
            agree_cell(r.warm_differences),
        ]
        for r in results
    ]
    print_table(header, rows)
    legend = ", ".join(f"{letter} {word}" for word, letter in ABBREVIATIONS.items())
    print(f"\ncounts from each command's last summary line: {legend}")
    print("tests: test cases in pytest's JUnit XML (a module skipped at collection is one)")
    for r in results:
        print(f"{r.suite.name}: pytest {' '.join(r.suite.args)}; {r.suite.exercises}")
        if r.suite.note:
            print(f"  {r.suite.note}")
    for r in results:
        for label, differences in (("cold", r.cold_differences), ("warm", r.warm_differences)):
            if differences:
                print(f"\n{r.suite.name} {r.suite.version}, farm {label} vs pytest:")
                print("\n".join(f"  {line}" for line in differences))


def default_cache() -> Path:
    """Outside any project: a suite without a pytest configuration of its own must not
    find this repository's (its addopts, its rootdir) above its tree."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "farm-bench"


def pytest_config_above(folder: Path) -> Path | None:
    """The nearest file at or above ``folder`` that pytest could take as its ini file."""
    for parent in (folder, *folder.parents):
        for name in ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"):
            if (parent / name).is_file():
                return parent / name
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="farm's -n [2]")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only this suite"
    )
    parser.add_argument(
        "--cache", type=Path, default=default_cache(), help="sdists, trees, venvs, state"
    )
    parser.add_argument(
        "--plugins", action="store_true", help="with pytest-cov, pytest-timeout, pytest-randomly"
    )
    options = parser.parse_args(argv)
    found = pytest_config_above(options.cache.resolve())
    if found is not None:
        parser.error(
            f"--cache {options.cache} is under {found}, which pytest would read as the "
            "configuration of suites without their own: choose a folder outside any project"
        )
    known = {s.name for s in SUITES}
    unknown = set(options.only) - known
    if unknown:
        parser.error(f"unknown suite {sorted(unknown)}; known: {', '.join(sorted(known))}")
    chosen = [s for s in SUITES if not options.only or s.name in options.only]
    results: list[Result] = []
    broken: list[str] = []
    for suite in chosen:
        try:
            results.append(
                run_suite(suite, options.cache.resolve(), options.workers, plugins=options.plugins)
            )
        except SetupError as e:
            # One suite that cannot be installed says nothing about farm: the
            # others still run, and the exit status tells it apart from a difference.
            broken.append(f"{suite.name} {suite.version}: {e}")
    print_results(results)
    for message in broken:
        print(f"\nbench: error: {message}", file=sys.stderr)
    if any(r.cold_differences or r.warm_differences for r in results):
        return 1
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
