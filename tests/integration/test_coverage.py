"""Coverage (pytest-cov) through farm, against pytest itself on the same suite.

A small package with known coverage (lines never run, a branch taken one way, a
module never imported) is tested by three modules. Each run works in a copy of
its own, so no run sees another's data file. farm's terminal table, its XML report
(the ``<class>`` elements: file, line rate, branch rate, each line's hits; not the
timestamps or absolute paths), its JSON and HTML reports, its exit code and its
fail-under lines must be pytest-cov's, serial and under pytest-xdist; nothing of
coverage's may be left behind in the tree or the temporary folders. Then the same
across two hosts in network namespaces that see the code only as a snapshot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from coverage import CoverageData
from helpers import WorkerProcess, farm_env, run_farm
from netns_hosts import Host, Network, namespaces_unavailable

pytestmark = pytest.mark.integration

CALC = """\
def add(a, b):
    return a + b


def sign(x):
    if x > 0:
        return 1
    return -1


def never():
    y = 1
    return y * 2


def clamp(x, top):
    if x > top:
        x = top
    return x
"""
TESTS = {
    "test_add.py": "from pkg.calc import add\n\n"
    "def test_add():\n    assert add(1, 2) == 3\n\n"
    "def test_add_zero():\n    assert add(0, 0) == 0\n",
    "test_sign.py": "from pkg.calc import sign\n\ndef test_positive():\n    assert sign(5) == 1\n",
    "test_clamp.py": "from pkg.calc import clamp\n\n"
    "def test_clamped():\n    assert clamp(9, 3) == 3\n\n"
    "def test_kept():\n    assert clamp(1, 3) == 1\n",
}
# A test process that dies: its coverage data is never saved.
CRASH = "import os\n\ndef test_dies():\n    os._exit(3)\n"

# Options every run gets: the shuffling plugins installed in this venv off, and one
# terminal width for pytest's rules and farm's.
QUIET = ("-p", "no:randomly", "-p", "no:random_order")


def make_suite(folder: Path, *, extra: dict[str, str] | None = None) -> Path:
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "calc.py").write_text(CALC)
    (folder / "pkg" / "unused.py").write_text("def nope():\n    return 3\n")
    (folder / "tests").mkdir()
    for name, text in {**TESTS, **(extra or {})}.items():
        (folder / "tests" / name).write_text(text)
    # rootdir here, and tests import pkg as under the pytest command
    (folder / "conftest.py").write_text("")
    return folder


def env(tmp: Path) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return farm_env(COLUMNS="80", TMPDIR=str(tmp))


def pytest_run(suite: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "pytest"), *QUIET, *args, "tests"],
        cwd=suite, env=env(suite.parent / "tmp-pytest"), capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def farm_run(suite: Path, *args: str, broker: str = "") -> subprocess.CompletedProcess[str]:
    where = ("--broker", broker, "-n", "2") if broker else ("-n", "2")
    state = suite.parent / f"{suite.name}-state"
    done = run_farm(
        "run", "tests", *where, "--state-dir", str(state), "--", *QUIET, *args,
        cwd=suite, env=env(suite.parent / f"{suite.name}-tmp"),
    )  # fmt: skip
    return done


def coverage_part(output: str) -> list[str]:
    """The lines from the ``tests coverage`` rule to the next ``=`` rule."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if " tests coverage " in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return lines[start:end]


def xml_classes(path: Path) -> list[tuple[str, ...]]:
    """Each file's ``<class>``: its name, file, rates and every line's hits."""
    root = ET.parse(path).getroot()
    classes = []
    for cls in root.iter("class"):
        lines = tuple(
            f"{line.get('number')}:{line.get('hits')}:{line.get('branch', '')}"
            f":{line.get('condition-coverage', '')}"
            for line in cls.iter("line")
        )
        attributes = (cls.get(k, "") for k in ("name", "filename", "line-rate", "branch-rate"))
        classes.append((*attributes, *lines))
    rates = tuple(root.get(k, "") for k in ("line-rate", "branch-rate", "lines-covered"))
    return [*sorted(classes), rates]


def data_lines(suite: Path) -> dict[str, list[int]]:
    data = CoverageData(basename=str(suite / ".coverage"))
    data.read()
    root = os.path.realpath(suite)
    return {
        os.path.relpath(path, root): sorted(data.lines(path) or [])
        for path in data.measured_files()
    }


def leftovers(*folders: Path) -> list[str]:
    """Coverage's files and farm's coverage folders anywhere under ``folders``; the
    data file pytest-cov leaves in the invocation folder is not one."""
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            name = path.name
            ours = name.startswith((".coverage.", "farm-cov-", "farm-coverage", "coverage-"))
            if ours or (name == ".coverage" and path.parent != folder):
                found.append(str(path))
    return found


def copies(tmp_path: Path, *names: str, extra: dict[str, str] | None = None) -> list[Path]:
    return [make_suite(tmp_path / name, extra=extra) for name in names]


def test_terminal_table_and_xml_are_pytest_covs_serial_and_distributed(tmp_path: Path) -> None:
    serial, xdist, farm = copies(tmp_path, "serial", "xdist", "farm")
    args = ("--cov=pkg", "--cov-report=term", "--cov-report=xml")
    by_pytest = pytest_run(serial, *args)
    by_xdist = pytest_run(xdist, "-n", "2", *args)
    by_farm = farm_run(farm, *args)
    assert by_pytest.returncode == by_xdist.returncode == by_farm.returncode == 0, by_farm
    table = coverage_part(by_pytest.stdout)
    assert "Coverage XML written to file coverage.xml" in table
    assert any(line.startswith("pkg/unused.py") and line.endswith("0%") for line in table)
    assert coverage_part(by_xdist.stdout) == table
    assert coverage_part(by_farm.stdout) == table
    expected = xml_classes(serial / "coverage.xml")
    assert xml_classes(xdist / "coverage.xml") == expected
    assert xml_classes(farm / "coverage.xml") == expected
    assert data_lines(farm) == data_lines(serial)
    assert leftovers(farm, tmp_path / "farm-tmp", tmp_path / "farm-state") == []
    assert not list(farm.glob(".coverage.*"))


def test_a_suite_that_makes_warnings_errors_measures_as_under_pytest(tmp_path: Path) -> None:
    # python-dateutil's suite runs with filterwarnings = error: any warning pytest
    # raises while loading farm's plugins into the test process would fail every test.
    serial, farm = copies(tmp_path, "serial", "farm")
    for suite in (serial, farm):
        (suite / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    by_pytest = pytest_run(serial, "--cov=pkg", "--cov-report=term")
    by_farm = farm_run(farm, "--cov=pkg", "--cov-report=term")
    assert by_pytest.returncode == by_farm.returncode == 0, by_farm.stdout + by_farm.stderr
    assert coverage_part(by_farm.stdout) == coverage_part(by_pytest.stdout)
    assert " 5 passed in " in by_farm.stdout.splitlines()[-1], by_farm.stdout


def test_term_missing_with_branches_and_skip_covered(tmp_path: Path) -> None:
    serial, farm = copies(tmp_path, "serial", "farm")
    args = ("--cov=pkg", "--cov-branch", "--cov-report=term-missing:skip-covered")
    by_pytest = pytest_run(serial, *args)
    by_farm = farm_run(farm, *args)
    assert by_pytest.returncode == by_farm.returncode == 0, by_farm
    table = coverage_part(by_pytest.stdout)
    assert any("Branch" in line and "Missing" in line for line in table), table
    assert coverage_part(by_farm.stdout) == table


def test_fail_under_met_and_missed_give_pytest_covs_exit_code_and_lines(tmp_path: Path) -> None:
    met_serial, met_farm, missed_serial, missed_farm = copies(
        tmp_path, "met-serial", "met-farm", "missed-serial", "missed-farm"
    )
    met = ("--cov=pkg", "--cov-fail-under=50")
    by_pytest, by_farm = pytest_run(met_serial, *met), farm_run(met_farm, *met)
    assert by_pytest.returncode == by_farm.returncode == 0, by_farm
    assert coverage_part(by_farm.stdout) == coverage_part(by_pytest.stdout)
    assert "Required test coverage of 50% reached." in by_farm.stdout
    # The requirement from the ini file's addopts, as a suite's CI sets it.
    for suite in (missed_serial, missed_farm):
        (suite / "pytest.ini").write_text("[pytest]\naddopts = --cov=pkg --cov-fail-under=90\n")
    by_pytest, by_farm = pytest_run(missed_serial), farm_run(missed_farm)
    assert by_pytest.returncode == by_farm.returncode == 1, by_farm
    for line in (
        "ERROR: Coverage failure: total of 67 is less than fail-under=90",
        "FAIL Required test coverage of 90% not reached. Total coverage: 66.67%",
    ):
        assert line in by_pytest.stdout.splitlines(), by_pytest.stdout
        assert line in by_farm.stdout.splitlines(), by_farm.stdout
    assert coverage_part(by_farm.stdout) == coverage_part(by_pytest.stdout)
    assert "verdict FAILED" in by_farm.stdout


def test_html_and_json_reports_are_written_as_pytest_cov_writes_them(tmp_path: Path) -> None:
    serial, farm = copies(tmp_path, "serial", "farm")
    args = ("--cov=pkg", "--cov-report=html:cov_html", "--cov-report=json:out/cov.json")
    report = tmp_path / "farm.json"
    by_pytest = pytest_run(serial, *args)
    by_farm = farm_run(farm, "--cov=pkg", *args[1:])
    assert by_pytest.returncode == by_farm.returncode == 0, by_farm
    assert coverage_part(by_farm.stdout) == coverage_part(by_pytest.stdout)
    assert (farm / "cov_html" / "index.html").is_file()
    ours = json.loads((farm / "out" / "cov.json").read_text())
    theirs = json.loads((serial / "out" / "cov.json").read_text())
    assert ours["totals"] == theirs["totals"]
    assert {f: v["summary"] for f, v in ours["files"].items()} == {
        f: v["summary"] for f, v in theirs["files"].items()
    }
    # farm's own JSON report names the total and what was written.
    again = run_farm(
        "run", "tests", "-n", "2", "--state-dir", str(tmp_path / "farm-state"),
        "--json", str(report), "--", *QUIET, *args,
        cwd=farm, env=env(tmp_path / "farm-tmp"),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    coverage = json.loads(report.read_text())["coverage"]
    assert coverage["total"] == pytest.approx(theirs["totals"]["percent_covered"])
    assert coverage["reports"] == ["cov_html", "out/cov.json"]
    assert coverage["incomplete"] == ""
    assert leftovers(farm, tmp_path / "farm-tmp", tmp_path / "farm-state") == []


def test_a_crashed_test_process_makes_coverage_incomplete_and_fails_a_requirement(
    tmp_path: Path,
) -> None:
    (farm,) = copies(tmp_path, "farm", extra={"test_crash.py": CRASH})
    by_farm = farm_run(farm, "--cov=pkg", "--cov-fail-under=10")
    assert by_farm.returncode == 1
    part = coverage_part(by_farm.stdout)
    assert part[1].startswith("coverage incomplete: shard "), part
    assert "no total is shown" in part[1]
    assert not any("TOTAL" in line or "Required" in line for line in by_farm.stdout.splitlines())
    assert not (farm / ".coverage").exists()  # no partial data passed off as the run's
    assert leftovers(farm, tmp_path / "farm-tmp", tmp_path / "farm-state") == []


UNAVAILABLE = namespaces_unavailable()


def start_worker(host: Host, home: Path, broker_url: str, hide: Path) -> WorkerProcess:
    home.mkdir()
    return WorkerProcess(
        home / "worker.log", "-c", "2", "--cache", str(home / "cache"), "--name", host.name,
        cwd=home, env=farm_env(FARM_BROKER_URL=broker_url, TMPDIR=str(home)), host=host,
        hide=[hide],
    )  # fmt: skip


@pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
def test_hosts_that_see_only_a_snapshot_report_pytest_covs_coverage(tmp_path: Path) -> None:
    serial = make_suite(tmp_path / "serial")
    submitter = tmp_path / "submitter"
    farm = make_suite(submitter / "suite")
    args = ("--cov=pkg", "--cov-branch", "--cov-report=term-missing", "--cov-report=xml")
    by_pytest = pytest_run(serial, *args)
    with Network(2) as net:
        homes = [tmp_path / host.name for host in net.hosts]
        workers = [
            start_worker(host, home, net.broker_url, hide=submitter)
            for host, home in zip(net.hosts, homes, strict=True)
        ]
        try:
            by_farm = farm_run(farm, *args, broker=net.broker_url)
        finally:
            for worker in workers:
                worker.kill()
    assert by_pytest.returncode == by_farm.returncode == 0, by_farm.stdout + by_farm.stderr
    assert coverage_part(by_farm.stdout) == coverage_part(by_pytest.stdout)
    assert xml_classes(farm / "coverage.xml") == xml_classes(serial / "coverage.xml")
    # The hosts measured files in their own trees: the data names the submitter's.
    assert data_lines(farm) == data_lines(serial)
    assert "tests by machine:" in by_farm.stdout, by_farm.stdout
    assert leftovers(farm, submitter / "suite-tmp", submitter / "suite-state") == []
    # Nothing of coverage's was written into the hosts' unpacked trees either.
    trees = [home / "cache" / "trees" for home in homes]
    assert [p for tree in trees for p in tree.rglob(".coverage*")] == []


def test_a_farm_without_coverage_py_stops_before_any_work(tmp_path: Path) -> None:
    (suite,) = copies(tmp_path, "farm")
    # coverage.py out of farm's reach, as in an environment without the extra.
    blocked = "import sys; sys.modules['coverage'] = None; from farm.cli.main import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", blocked, "run", "tests", "-n", "1", "--", "--cov=pkg"],
        cwd=suite, env=env(tmp_path / "tmp"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 4
    assert done.stderr.splitlines() == [
        "farm: error: --cov needs coverage.py where farm runs: pip install 'pytest-farm[coverage]'"
    ]
    assert not (suite / ".farm").exists()  # no broker, no state folder: nothing was done
