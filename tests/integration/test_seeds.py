"""pytest-randomly and pytest-random-order under farm, against plain pytest: one seed
per run, shown and kept, every shard in the plugin's order with the plugin's draws.

Each test of the suites writes what it saw to a file of its own: its process, its
place in that process's order and a number it drew from ``random``. A shard's tests
are those of one process.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import NO_RANDOMLY, farm_env
from oracle import Outcome, compare, run_farm, run_pytest

pytestmark = pytest.mark.integration

CONFTEST = """
import itertools, json, os, random
import pytest

_seq = itertools.count()

@pytest.fixture
def note(request):
    def write():
        record = {
            "node_id": request.node.nodeid, "pid": os.getpid(), "seq": next(_seq),
            "draw": random.random(),
        }
        name = "".join(c if c.isalnum() else "_" for c in request.node.nodeid)
        with open(os.path.join(os.environ["ORDER_DIR"], name + ".json"), "w") as f:
            json.dump(record, f)
    return write
"""
MODULE = """
import os, sys
import pytest

with open(os.environ["IMPORT_LOG"], "a") as log:  # who imports the test modules
    log.write(" ".join(sys.argv) + "\\n")

def test_1(note): note()
def test_2(note): note()
def test_3(note): note()

class TestK:
    def test_4(self, note): note()
    def test_5(self, note): note()

@pytest.mark.parametrize("x", range(3))
def test_p(note, x): note()
"""
SEED = re.compile(r"^Using (--random(?:ly|-order)-seed)=(\S+)$", re.MULTILINE)


def make_suite(folder: Path, modules: int) -> Path:
    folder.mkdir()
    (folder / "conftest.py").write_text(CONFTEST)
    for name in "abcd"[:modules]:
        (folder / f"test_{name}.py").write_text(MODULE)
    return folder


class Runs:
    """Runs of one suite, each with a folder of its tests' records."""

    def __init__(self, tmp_path: Path, suite: Path, *, randomly: bool) -> None:
        self.tmp_path, self.suite, self.count = tmp_path, suite, 0
        self.env = farm_env(IMPORT_LOG=str(tmp_path / "imports.log"))
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"
        if randomly:  # farm's own tests keep the plugin off in every subprocess
            addopts = self.env.get("PYTEST_ADDOPTS", "").replace(NO_RANDOMLY, "")
            self.env["PYTEST_ADDOPTS"] = addopts.strip()

    def _records(self) -> tuple[Path, dict[str, str]]:
        self.count += 1
        records = self.tmp_path / f"records-{self.count}"
        records.mkdir()
        (self.tmp_path / "imports.log").write_text("")
        return records, {**self.env, "ORDER_DIR": str(records)}

    def pytest(self, *args: str) -> tuple[Outcome, list[dict[str, Any]]]:
        records, env = self._records()
        done = run_pytest(self.suite, ["-p", "no:cacheprovider", *args], env, timeout_s=60)
        assert done.exit_code == 0, done.output[-2000:]
        return done, read(records)

    def farm(
        self, *args: str, farm_args: tuple[str, ...] = ()
    ) -> tuple[Outcome, list[dict[str, Any]], dict[str, str]]:
        records, env = self._records()
        state = self.tmp_path / "state"
        done = run_farm(self.suite, list(args), env, state, 3, timeout_s=90, farm_args=farm_args)
        assert done.exit_code == 0, done.output[-3000:]
        return done, read(records), dict(SEED.findall(done.output))

    def collected_whole_suite(self) -> bool:
        """Whether the last run imported the suite in a ``--collect-only`` (a cold run)."""
        return "--collect-only" in (self.tmp_path / "imports.log").read_text()


def read(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in folder.glob("*.json")]


def by_process(records: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Each process's tests, in the order they ran."""
    orders: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        orders.setdefault(record["pid"], []).append(record)
    return {
        pid: [r["node_id"] for r in sorted(rs, key=lambda r: r["seq"])]
        for pid, rs in orders.items()
    }


def assert_shards_follow(plain: list[dict[str, Any]], farmed: list[dict[str, Any]]) -> None:
    """Every shard ran in plain pytest's order, restricted to its own tests."""
    (order,) = by_process(plain).values()
    shards = by_process(farmed)
    assert len(shards) > 1  # the suite was really split
    assert sorted(n for shard in shards.values() for n in shard) == sorted(order)
    for shard in shards.values():
        assert shard == [node_id for node_id in order if node_id in set(shard)]


def draws(records: list[dict[str, Any]]) -> dict[str, float]:
    return {r["node_id"]: r["draw"] for r in records}


def test_pytest_randomly_shards_run_in_plain_pytests_order_and_draw_its_numbers(
    tmp_path: Path,
) -> None:
    runs = Runs(tmp_path, make_suite(tmp_path / "suite", 4), randomly=True)
    expected, plain = runs.pytest("-p", "randomly", "--randomly-seed=1234")
    assert "Using --randomly-seed=1234" in expected.output
    got, farmed, seeds = runs.farm("-p", "randomly", "--randomly-seed=1234")
    assert compare(expected, got) == []
    assert seeds == {"--randomly-seed": "1234"}
    assert_shards_follow(plain, farmed)
    assert draws(farmed) == draws(plain)
    # Another seed, another order: the plugin's, not the plan's.
    other = runs.pytest("--randomly-seed=99")[1]
    assert by_process(other) != by_process(plain)


def test_the_seed_farm_chooses_is_shown_kept_and_makes_the_run_again(tmp_path: Path) -> None:
    runs = Runs(tmp_path, make_suite(tmp_path / "suite", 4), randomly=True)
    got, farmed, seeds = runs.farm(farm_args=("--json", str(tmp_path / "r.json")))
    assert runs.collected_whole_suite()
    seed = seeds["--randomly-seed"]
    assert json.loads((tmp_path / "r.json").read_text())["seeds"] == seeds
    # Plain pytest with that seed runs each shard's order and draws the same numbers.
    expected, plain = runs.pytest(f"--randomly-seed={seed}")
    assert compare(expected, got) == []
    assert_shards_follow(plain, farmed)
    assert draws(farmed) == draws(plain)

    # The same request again is warm: the seed farm added is no part of its key. It
    # gets a seed of its own, and its shards the order that seed gives.
    _, farmed, seeds = runs.farm()
    assert not runs.collected_whole_suite()
    assert seeds["--randomly-seed"] != seed
    assert_shards_follow(runs.pytest(f"--randomly-seed={seeds['--randomly-seed']}")[1], farmed)

    # pytest-randomly's last: the seed of the project's previous run, from farm's store.
    _, farmed, last = runs.farm("--randomly-seed=last")
    assert last == seeds
    assert draws(farmed) == draws(runs.pytest(f"--randomly-seed={seeds['--randomly-seed']}")[1])


def test_pytest_random_order_shards_run_in_its_order(tmp_path: Path) -> None:
    # One module, split between shards: each shard's process collects what plain
    # pytest collects, so the plugin's shuffle is the same (with several modules it
    # is the plugin's over each shard's own modules: see docs/architecture.md).
    runs = Runs(tmp_path, make_suite(tmp_path / "suite", 1), randomly=False)
    expected, plain = runs.pytest("--random-order-seed=99")
    got, farmed, seeds = runs.farm("--random-order-seed=99")
    assert compare(expected, got) == []
    assert seeds == {"--random-order-seed": "99"}
    assert_shards_follow(plain, farmed)

    _, farmed, seeds = runs.farm("--random-order")
    assert set(seeds) == {"--random-order-seed"} and seeds["--random-order-seed"] != "99"
    assert_shards_follow(
        runs.pytest(f"--random-order-seed={seeds['--random-order-seed']}")[1], farmed
    )
