"""pytest as the oracle for farm: run both on one suite and say where they differ.

Terms:

* a **test key** is ``classname::name`` as pytest's JUnit XML writes a test case
  (``tests.test_x.TestA::test_b[1]``); a module skipped at collection time has the
  classname ``""`` and its dotted path as name (``::tests.test_x``);
* a **test outcome** is one of ``passed``, ``failed``, ``error``, ``skipped`` and
  ``xfailed`` (JUnit has no way to tell an xpass from a pass, nor a strict xpass from
  a failure, so neither has an outcome of its own);
* **counts** are the numbers of pytest's last summary line keyed by singular word
  (``{"failed": 3, "passed": 1997, "error": 2, "warning": 1}``); two-word
  items keep both words (``"subtests passed"``).

Everything here is plain functions over files and text, plus two subprocess helpers
with a bound on their time: a run past it is killed with everything it started and
reported as hung rather than waited for.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RUN_TIMEOUT_S = 300.0
# farm stops its embedded Redis and workers on Ctrl-C; this long is left for that
# before the harness kills them itself.
INTERRUPT_GRACE_S = 15.0
# Shown per kind of difference; a suite broken as a whole differs on every test.
MAX_LISTED = 15

# The worse outcome wins when pytest writes two test cases for one test (a call that
# failed and a teardown that raised).
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "error": 3, "failed": 4}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A summary line: counts (or "no tests ran"), " in 1.23s", anything after (farm's
# plan and verdict), between rules of "=" except under pytest -q, which drops them;
# the counts are matched whole so that no other line ending in a duration passes.
_ITEM = r"\d+ [a-z][a-z ]*?"
_SUMMARY = re.compile(
    rf"^(?:=+ )?(?P<counts>{_ITEM}(?:, {_ITEM})*|no tests ran) in \d+(?:\.\d+)?s\b.*?(?: =+)?$"
)
_COUNT = re.compile(r"^(?P<n>\d+) (?P<word>[a-z][a-z ]*)$")
_PLURALS = {"errors": "error", "warnings": "warning", "reruns": "rerun"}


@dataclass(frozen=True)
class Outcome:
    """One finished (or killed) command: what it printed, returned and reported.

    ``exit_code`` is None when the command was killed for running past its bound
    (``hung``); ``tests`` maps test key to test outcome from its JUnit XML (empty
    when none was written); ``counts`` is its last summary line.
    """

    command: tuple[str, ...]
    exit_code: int | None
    tests: dict[str, str]
    counts: dict[str, int]
    output: str
    wall_s: float
    hung: bool = False
    timeout_s: float = RUN_TIMEOUT_S


def junit_outcomes(path: Path | str) -> dict[str, str]:
    """Test outcome per test key in the JUnit XML file at ``path``."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        found = _case_outcome(case)
        previous = outcomes.get(key)
        if previous is None or _RANK[found] > _RANK[previous]:
            outcomes[key] = found
    return outcomes


def _case_outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "failure" in tags:
        return "failed"
    if "error" in tags:
        return "error"
    skipped = case.find("skipped")
    if skipped is not None:
        return "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
    return "passed"


def summary_counts(text: str) -> dict[str, int]:
    """The counts of the last summary line in ``text`` (pytest's or farm's).

    Empty when there is no such line or it counts nothing (``no tests ran``).
    """
    for line in reversed(_ANSI.sub("", text).splitlines()):
        found = _SUMMARY.match(line.strip())
        if found:
            return _parse_counts(found.group("counts"))
    return {}


def _parse_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in text.split(", "):
        found = _COUNT.match(item.strip())
        if found is None:
            continue
        words = found.group("word").split()
        words[-1] = _PLURALS.get(words[-1], words[-1])
        word = " ".join(words)
        counts[word] = counts.get(word, 0) + int(found.group("n"))
    return counts


def run_pytest(
    suite_dir: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout_s: float = RUN_TIMEOUT_S,
) -> Outcome:
    """Run ``pytest ARGS`` in ``suite_dir`` with ``env`` (its PATH finds pytest)."""
    with tempfile.TemporaryDirectory(prefix="oracle-") as scratch:
        junit = Path(scratch) / "junit.xml"
        command = [_executable("pytest", env), *args, f"--junitxml={junit}"]
        return _run(command, suite_dir, env, junit, timeout_s)


def run_farm(
    suite_dir: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    state_dir: Path,
    workers: int,
    *,
    timeout_s: float = RUN_TIMEOUT_S,
    farm_args: Sequence[str] = (),
) -> Outcome:
    """Run ``farm run PATHS -n WORKERS --state-dir STATE_DIR FARM_ARGS -- OPTIONS`` in
    ``suite_dir``.

    ``args`` are written as for pytest, paths first: the leading items that are not
    options become farm's PATHS, the rest from the first ``-`` on go after ``--``.
    """
    paths, options = split_args(args)
    with tempfile.TemporaryDirectory(prefix="oracle-") as scratch:
        junit = Path(scratch) / "junit.xml"
        command = [
            _executable("farm", env),
            "run",
            *paths,
            "-n",
            str(workers),
            "--state-dir",
            str(state_dir),
            "--junit-xml",
            str(junit),
            "--json",
            str(Path(scratch) / "report.json"),
            *farm_args,
        ]
        if options:
            command += ["--", *options]
        return _run(command, suite_dir, env, junit, timeout_s)


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(paths, options)``: ``args`` before and from the first item starting with -."""
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            return list(args[:i]), list(args[i:])
    return list(args), []


def compare(pytest_outcome: Outcome, farm_outcome: Outcome) -> list[str]:
    """What farm reported differently from pytest, one sentence each; empty if nothing."""
    if farm_outcome.hung:
        return [f"farm hung: killed after {farm_outcome.timeout_s:.0f}s"]
    if pytest_outcome.hung:
        return [f"pytest hung: killed after {pytest_outcome.timeout_s:.0f}s"]
    differences: list[str] = []
    if pytest_outcome.exit_code != farm_outcome.exit_code:
        differences.append(
            f"exit code: pytest {pytest_outcome.exit_code}, farm {farm_outcome.exit_code}"
        )
    for word in sorted(pytest_outcome.counts.keys() | farm_outcome.counts.keys()):
        expected = pytest_outcome.counts.get(word, 0)
        got = farm_outcome.counts.get(word, 0)
        if expected != got:
            differences.append(f"count {word!r}: pytest {expected}, farm {got}")
    differences += _test_differences(pytest_outcome.tests, farm_outcome.tests)
    return differences


def _test_differences(expected: Mapping[str, str], got: Mapping[str, str]) -> list[str]:
    missing = sorted(expected.keys() - got.keys())
    extra = sorted(got.keys() - expected.keys())
    changed = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
    lines = [f"only in pytest: {k} ({expected[k]})" for k in missing[:MAX_LISTED]]
    lines += [f"only in farm: {k} ({got[k]})" for k in extra[:MAX_LISTED]]
    lines += [f"{k}: pytest {expected[k]}, farm {got[k]}" for k in changed[:MAX_LISTED]]
    for what, keys in (("only in pytest", missing), ("only in farm", extra), ("changed", changed)):
        if len(keys) > MAX_LISTED:
            lines.append(f"... {len(keys) - MAX_LISTED} more {what}")
    return lines


def _executable(name: str, env: Mapping[str, str]) -> str:
    found = shutil.which(name, path=env.get("PATH"))
    if found is None:
        raise FileNotFoundError(f"no {name!r} on the PATH given: {env.get('PATH')!r}")
    return found


def _run(
    command: list[str], cwd: Path, env: Mapping[str, str], junit: Path, timeout_s: float
) -> Outcome:
    # Output goes to a file, not a pipe: a child that outlives a kill must not block
    # on a full pipe nobody reads, and the file keeps what was printed before a hang.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        start = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        hung = False
        try:
            exit_code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            hung = True
            exit_code = None
            _stop(process)
        wall_s = time.monotonic() - start
        log.seek(0)
        output = log.read()
    tests = junit_outcomes(junit) if junit.exists() else {}
    return Outcome(
        command=tuple(command),
        exit_code=exit_code,
        tests=tests,
        counts=summary_counts(output),
        output=output,
        wall_s=wall_s,
        hung=hung,
        timeout_s=timeout_s,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt ``process`` as Ctrl-C would, then kill what it started and is left.

    farm starts its Redis and workers in sessions of their own, so killing the
    command's process group alone would leave them running; they are found by
    parentage before the interrupt, while they are still the command's children.
    """
    started = _descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=INTERRUPT_GRACE_S)
    for pid in [process.pid, *started]:
        with contextlib.suppress(ProcessLookupError):
            # A child that leads a group of its own took its helpers into it.
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    process.wait()


def _descendants(root: int) -> list[int]:
    """Pids of every live process under ``root``, from the parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces; the fields after it don't.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found
