"""``farm run`` end to end, as a user runs it: real Redis, Celery workers, pytest, database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis
from helpers import farm_env, make_suite, run_farm

pytestmark = pytest.mark.integration


def farm_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (a per-test folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmdline or marker in environ:
            found.append(cmdline)
    return found


def test_embedded_run_names_exactly_the_failing_tests(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    expected = make_suite(
        suite, "--tests", "120", "--modules", "6", "--fail", "3", "--scale", "0.05"
    )
    state = tmp_path / "state"
    done = run_farm(
        "run", "-n", "4", "--state-dir", str(state), "--json", str(tmp_path / "r.json"),
        "--junit-xml", str(tmp_path / "junit.xml"), cwd=suite,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "failed"
    failed = sorted(t["node_id"] for t in report["tests"] if t["outcome"] == "failed")
    assert failed == sorted(expected["fail"])
    assert len(report["tests"]) == 120
    assert "3 failed, 117 passed" in done.stdout
    for node_id in expected["fail"]:
        assert node_id in done.stdout
    suite_xml = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite_xml.find(".//testsuite") is not None or suite_xml.tag == "testsuite"
    assert len(suite_xml.findall(".//failure")) == 3
    # Everything the run started is gone: redis-server, workers, pytest processes.
    assert farm_processes(str(state)) == []
    # The history learned from the run: a second plan knows the durations.
    plan = run_farm("plan", "-n", "4", "--state-dir", str(state), "--json", cwd=suite)
    assert plan.returncode == 0, plan.stderr
    assert len(json.loads(plan.stdout)["shards"]) >= 4


def test_external_broker_with_farm_worker_and_database_url(
    tmp_path: Path, redis_url: str, key_prefix: str, db_url: str
) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "40", "--modules", "4", "--fail", "1", "--scale", "0.02")
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=key_prefix + "q")
    worker = subprocess.Popen(
        [sys.executable, "-m", "farm", "worker", "--broker", redis_url, "-c", "2",
         "--cache", str(tmp_path / "cache"), "--test-user", "self"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        done = run_farm(
            "run", "--broker", redis_url, "--db", db_url, "-n", "2", "--project", key_prefix,
            "--json", str(tmp_path / "r.json"), cwd=suite, env=env,
        )  # fmt: skip
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert sum(t["outcome"] == "failed" for t in report["tests"]) == 1
    assert len({t["worker"] for t in report["tests"]}) >= 1
    client = redis.Redis.from_url(redis_url.replace("redis+socket://", "unix://"))
    try:
        leftovers = [k for k in client.scan_iter(match=f"{key_prefix}run:*")]
        # The events stream is trimmed as it is stored; only its expiring key may remain.
        for key in leftovers:
            assert client.ttl(key) > 0
    finally:
        client.close()


def test_ctrl_c_stops_everything_and_exits_2(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "20", "--modules", "2", "--median", "5", "--sigma", "0")
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "farm", "run", "-n", "2", "--state-dir", str(state)],
        cwd=suite, env=farm_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (state / "workers.log").exists() or "pytest" not in " ".join(
        farm_processes(str(suite))
    ):
        assert time.monotonic() < deadline, "tests never started"
        time.sleep(0.2)
    proc.send_signal(2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, out + err
    assert "interrupted" in (out + err).lower()
    time.sleep(0.5)
    assert farm_processes(str(state)) == []


def test_a_broker_without_workers_ends_in_an_error_not_a_hang(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    suite = tmp_path / "suite"
    make_suite(suite, "--tests", "4", "--modules", "1", "--scale", "0.01")
    env = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_WORKER_START_TIMEOUT_S="2")
    started = time.monotonic()
    done = run_farm("run", "--broker", redis_url, "--state-dir", str(tmp_path / "s"), cwd=suite,
                    env=env)  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no shard was taken by workers on the broker within 2s" in done.stdout
    assert "4 lost" in done.stdout
    assert time.monotonic() - started < 30
