"""The built wheel: one import package, ``farm``, under a distribution not named farm.

Installed, the distribution must add only ``farm`` to site-packages: a generic
top-level name (``worker``, ``scheduler``) would shadow, or be shadowed by, the
packages of the suites farm runs. The wheel is built once per module from a copy
of the project's packaging files and ``farm/`` (so the build leaves no ``build/``
folder in the work tree), without build isolation when this environment has the
build requirements, which keeps it offline and takes a couple of seconds.
"""

from __future__ import annotations

import configparser
import csv
import importlib.metadata
import importlib.util
import io
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What setuptools reads to build the wheel, besides the package itself.
PACKAGING_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md")
BUILD_BOUND_S = 120.0


@dataclass(frozen=True)
class Wheel:
    path: Path
    names: tuple[str, ...]  # every file in the archive

    def read(self, name: str) -> str:
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(name).decode("utf-8")

    @property
    def dist_info(self) -> str:
        (folder,) = {n.split("/")[0] for n in self.names if n.split("/")[0].endswith(".dist-info")}
        return folder


def build_requirements_met() -> bool:
    """Whether this environment can run the project's build backend as it is: every
    ``[build-system] requires`` installed, and setuptools able to make a wheel."""
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    for text in build_system.get("requires", []):
        requirement = Requirement(text)
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if not requirement.specifier.contains(installed, prereleases=True):
            return False
    if not build_system.get("build-backend", "").startswith("setuptools"):
        return True
    # setuptools makes wheels itself from 70.1 on; before, with the wheel package.
    try:
        setuptools = Version(importlib.metadata.version("setuptools"))
    except importlib.metadata.PackageNotFoundError:
        return False
    return setuptools >= Version("70.1") or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    source = tmp_path_factory.mktemp("source")
    for name in PACKAGING_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "farm", source / "farm", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    isolated = not build_requirements_met()
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."]
    if not isolated:
        command[4:4] = ["--no-build-isolation", "--no-index"]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=source, capture_output=True, text=True, timeout=BUILD_BOUND_S, check=False
    )
    build_s = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        names = tuple(archive.namelist())
    print(f"wheel built in {build_s:.1f}s ({'isolated' if isolated else 'no isolation'})")
    return Wheel(path, names)


def test_farm_is_the_only_top_level_package(wheel: Wheel) -> None:
    record = wheel.read(f"{wheel.dist_info}/RECORD")
    recorded = [row[0] for row in csv.reader(io.StringIO(record)) if row]
    assert sorted(recorded) == sorted(wheel.names)
    tops = {PurePosixPath(name).parts[0] for name in recorded}
    assert tops - {wheel.dist_info} == {"farm"}, f"top-level names in {wheel.path.name}: {tops}"
    assert "farm/__init__.py" in recorded
    top_level = wheel.read(f"{wheel.dist_info}/top_level.txt").split()
    assert top_level == ["farm"]


def test_every_module_of_farm_is_in_the_wheel(wheel: Wheel) -> None:
    source = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "farm").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    missing = sorted(source - set(wheel.names))
    # A folder without __init__.py is not found as a package and would not ship.
    assert not missing, f"modules left out of the wheel: {missing}"
    for data in ("farm/py.typed", "farm/store/migrations/alembic.ini"):
        assert data in wheel.names
    templates = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "farm" / "server" / "templates").iterdir()
    }
    assert templates and templates <= set(wheel.names), "the server's templates must ship"


def test_the_distribution_is_not_named_farm(wheel: Wheel) -> None:
    metadata = HeaderParser().parsestr(wheel.read(f"{wheel.dist_info}/METADATA"))
    name = metadata["Name"]
    assert canonicalize_name(name) != "farm"
    assert canonicalize_name(name) == canonicalize_name(wheel.dist_info.split("-")[0])
    assert wheel.path.name.startswith(f"{name.replace('-', '_')}-")


def test_the_farm_command_points_into_farm(wheel: Wheel) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{wheel.dist_info}/entry_points.txt"))
    scripts = dict(entry_points["console_scripts"])
    assert set(scripts) == {"farm"}
    module, _, function = scripts["farm"].partition(":")
    assert module.split(".")[0] == "farm" and function
    assert f"{module.replace('.', '/')}.py" in wheel.names
    # Other entry point groups (a pytest11 plugin, say) would name farm modules too.
    for group in entry_points.sections():
        for target in entry_points[group].values():
            assert target.split(".")[0].split(":")[0] == "farm", (group, target)
