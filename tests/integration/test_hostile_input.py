"""Hostile and broken input: farm refuses it, contains it, or stores it as plain text.

Each test starts a real ``farm worker`` (broker URL in its environment, cache under
``tmp_path``) and submits with ``farm run --broker``, as a farm elsewhere is used.
The hostile input arrives where an attacker or a broken test would put it: on the
Celery queue, in the test process's environment, in test output and node ids, and
on a run's results stream.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import WorkerProcess, farm_env, run_farm

from farm.core.broker import redis_py_url
from farm.core.domain import TestResult
from farm.report.junit import junit_names, xml_safe
from farm.store import ResultStore

pytestmark = pytest.mark.integration

QUEUE = "q"
LIMIT_BYTES = 4096


@contextmanager
def farm_worker(tmp: Path, env: dict[str, str], *, name: str = "hostile") -> Iterator[Path]:
    """A one-slot ``farm worker`` for the duration of the block; yields its log file."""
    home = tmp / f"home-{name}"
    home.mkdir()
    worker = WorkerProcess(
        tmp / f"worker-{name}.log", "-c", "1", "--name", name,
        "--cache", str(tmp / f"cache-{name}"), cwd=home, env=env,
    )  # fmt: skip
    try:
        yield worker.log_path
        # Hostile input must not have taken the worker down with it.
        assert worker.process.poll() is None, worker.log_path.read_text(errors="replace")[-4000:]
    finally:
        worker.kill()


def farm_envs(
    key_prefix: str, redis_url: str, **worker_extra: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Environments of the submitter and of the worker, sharing one key prefix and queue."""
    submitter = farm_env(FARM_KEY_PREFIX=key_prefix, FARM_QUEUE=QUEUE)
    worker = {**submitter, "FARM_BROKER_URL": redis_url, **worker_extra}
    return submitter, worker


def write_suite(root: Path, source: str, ini: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text(f"[pytest]\n{ini}")
    (root / "test_hostile.py").write_text(source)
    return root


def submit(
    suite: Path, redis_url: str, env: dict[str, str], tmp: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp / "report.json"
    done = run_farm(
        "run", "--broker", redis_url, "-n", "1", "--state-dir", str(tmp / "state"),
        "--json", str(report), *args, cwd=suite, env=env, timeout_s=120,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    return done, data


def client_for(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_py_url(redis_url))


class _OpensAFile:
    """Unpickling this creates ``path``: proof that a pickle was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.path, "w")


def pickled_task_message(marker: Path, queue: str) -> bytes:
    """A kombu Redis-transport envelope for ``farm.run_shard`` with a pickled body.

    The shape is what kombu's virtual channel writes (``prepare_message`` plus
    ``_inplace_augment_message``), with Celery's task protocol 2 headers; the body is
    ``(args, kwargs, embed)`` as protocol 2 has it, with the payload in ``args``.
    """
    task_id = str(uuid.uuid4())
    body = pickle.dumps(((_OpensAFile(str(marker)),), {}, {"callbacks": None, "errbacks": None}))
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "binary",
        "content-type": "application/x-python-serialize",
        "headers": {
            "lang": "py", "task": "farm.run_shard", "id": task_id, "root_id": task_id,
            "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
            "timelimit": [None, None], "argsrepr": "(...)", "kwargsrepr": "{}",
            "origin": "attacker@nowhere", "ignore_result": True,
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2, "priority": 0,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }  # fmt: skip
    return json.dumps(envelope).encode()


def test_a_pickled_task_on_the_queue_is_refused_not_executed(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    # The payload is armed: unpickled here, it makes its file.
    armed = tmp_path / "armed"
    body = base64.b64decode(json.loads(pickled_task_message(armed, QUEUE))["body"])
    pickle.loads(body)[0][0].close()
    assert armed.exists()

    marker = tmp_path / "pwned"
    submitter, worker_env = farm_envs(key_prefix, redis_url)
    client = client_for(redis_url)
    queue_key = key_prefix + QUEUE  # kombu's list, under its global_keyprefix
    try:
        with farm_worker(tmp_path, worker_env) as log_path:
            client.lpush(queue_key, pickled_task_message(marker, QUEUE))
            deadline = time.monotonic() + 60
            while client.llen(queue_key) or client.hlen(key_prefix + "unacked"):
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.2)

            # The same worker, on the same queue, still runs honest shards.
            suite = write_suite(tmp_path / "suite", "def test_fine():\n    pass\n")
            done, report = submit(suite, redis_url, submitter, tmp_path)
            assert done.returncode == 0, done.stdout + done.stderr
            assert [t["outcome"] for t in report["tests"]] == ["passed"]
    finally:
        client.close()
    assert not marker.exists()
    assert "Refusing to deserialize untrusted content" in log_path.read_text(errors="replace")


def test_test_processes_never_see_broker_or_database_credentials(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    probe = f"probe-{uuid.uuid4().hex}"
    database = f"sqlite:///{tmp_path / f'results-{probe}.db'}"
    submitter, worker_env = farm_envs(
        key_prefix, redis_url, FARM_SECRET_PROBE=probe + "-farm", CELERY_PROBE=probe + "-celery"
    )
    submitter["FARM_DATABASE_URL"] = database
    suite = write_suite(
        tmp_path / "suite",
        "import os\n\n"
        "def test_show_the_environment():\n"
        "    for key, value in sorted(os.environ.items()):\n"
        "        print(f'env {key}={value}')\n"
        "    with open('/proc/self/environ', 'rb') as f:\n"
        "        print('proc', f.read().replace(b'\\0', b'\\n').decode(errors='replace'))\n"
        "    assert False, 'fail, so that the output is kept'\n",
    )
    with farm_worker(tmp_path, worker_env):
        done, report = submit(suite, redis_url, submitter, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    (test,) = report["tests"]
    seen = test["output"] + test["longrepr"]
    assert "env PATH=" in seen and "proc " in seen  # it did print its environment
    for secret in (redis_url, redis_py_url(redis_url), database, probe, "FARM_", "CELERY_"):
        assert secret not in seen


def test_oversized_output_and_tracebacks_are_truncated_with_a_marker(
    tmp_path: Path, redis_url: str, key_prefix: str, db_url: str
) -> None:
    submitter, worker_env = farm_envs(key_prefix, redis_url)
    submitter["FARM_RESULT_LIMIT_BYTES"] = str(LIMIT_BYTES)
    suite = write_suite(
        tmp_path / "suite",
        "import sys\n\n"
        "def test_floods_and_fails():\n"
        "    sys.stdout.write('o' * (1 << 20))\n"
        "    raise AssertionError('m' * (1 << 20))\n\n"
        "def test_floods_and_passes():\n"
        "    sys.stdout.write('p' * (1 << 20))\n",
    )
    with farm_worker(tmp_path, worker_env):
        done, report = submit(suite, redis_url, submitter, tmp_path, "--db", db_url)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr
    assert report["verdict"] == "failed"
    with ResultStore.open(db_url) as store:
        stored = store.final_results(report["run_id"])
    failed = "test_hostile.py::test_floods_and_fails"
    assert {t["node_id"]: t["outcome"] for t in report["tests"]} == {
        failed: "failed",
        "test_hostile.py::test_floods_and_passes": "passed",
    }
    texts = [r.output for r in stored.values()] + [t["output"] for t in report["tests"]]
    texts += [stored[failed].longrepr, report["tests"][0]["longrepr"]]
    for text in texts:
        assert "[farm: truncated" in text
        assert len(text.encode()) <= 2 * LIMIT_BYTES


# C0 control characters, a terminal-clearing escape and markup, as test ids and output.
# NUL is apart: it is the one a database may refuse (see the test after this one).
HOSTILE_TEXTS = [
    "ctl" + "".join(chr(c) for c in range(1, 32)),
    "clear\x1b[2Jscreen",
    "<script>alert(1)</script>",
]


def run_hostile_suite(
    tmp: Path, redis_url: str, key_prefix: str, db_url: str, texts: list[str]
) -> tuple[dict[str, Any], dict[str, TestResult], bytes]:
    """Run one failing test per text, with the text as its id and in its output.

    Returns the JSON report, the final results read back from the database and the
    raw JUnit XML.
    """
    submitter, worker_env = farm_envs(key_prefix, redis_url)
    # Without this option pytest escapes ids to ASCII itself, and farm would never
    # see a control character in a node id.
    ini = "disable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    suite = write_suite(
        tmp / "suite",
        "import os, sys, pytest\n\n"
        f"TEXTS = {texts!r}\n\n"
        "@pytest.mark.parametrize('text', TEXTS, ids=TEXTS)\n"
        "def test_hostile(text):\n"
        "    sys.stdout.write('\\x00'.join(('NUL', text)) + '\\n')\n"
        "    sys.stdout.flush()\n"
        "    os.write(1, b'bytes \\xff\\xfe\\xc3( not utf-8\\n')\n"
        "    assert False, text\n",
        ini,
    )
    junit = tmp / "junit.xml"
    with farm_worker(tmp, worker_env):
        done, report = submit(
            suite, redis_url, submitter, tmp, "--db", db_url, "--junit-xml", str(junit)
        )
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr
    with ResultStore.open(db_url) as store:
        stored = store.final_results(report["run_id"])
    return report, stored, junit.read_bytes()


def test_hostile_node_ids_and_output_are_stored_and_reported_as_text(
    tmp_path: Path, redis_url: str, key_prefix: str, db_url: str
) -> None:
    report, stored, raw = run_hostile_suite(tmp_path, redis_url, key_prefix, db_url, HOSTILE_TEXTS)
    expected = {f"test_hostile.py::test_hostile[{text}]": text for text in HOSTILE_TEXTS}
    reported = {t["node_id"]: t for t in report["tests"]}
    assert set(reported) == set(stored) == set(expected)
    assert all(t["outcome"] == "failed" for t in reported.values())
    for node_id, text in expected.items():
        assert f"NUL\x00{text}" in reported[node_id]["output"]
        # NUL is the one character a database may not hold: the store escapes it.
        output = stored[node_id].output
        assert f"NUL\\x00{text}" in output and "\ufffd" in output and "not utf-8" in output
        # pytest prefixes each line of an assertion message with "E   ".
        assert text.rsplit("\n", 1)[-1] in stored[node_id].longrepr

    assert b"<script>" not in raw and b"&lt;script&gt;" in raw
    root = ET.fromstring(raw)
    assert not list(root.iter("script"))
    cases = {(c.get("classname"), c.get("name")) for c in root.iter("testcase")}
    assert cases == {tuple(xml_safe(part) for part in junit_names(n)) for n in reported}
    assert len(root.findall(".//failure")) == len(expected)


def test_a_nul_in_a_node_id_is_stored(
    tmp_path: Path, redis_url: str, key_prefix: str, db_url: str
) -> None:
    # PostgreSQL refuses NUL in text: the store escapes it in node ids, reversibly.
    report, stored, _ = run_hostile_suite(tmp_path, redis_url, key_prefix, db_url, ["nul\x00id"])
    assert [t["node_id"] for t in report["tests"]] == ["test_hostile.py::test_hostile[nul\x00id]"]
    assert list(stored) == ["test_hostile.py::test_hostile[nul\x00id]"]


def test_malformed_stream_entries_are_skipped_and_the_run_goes_on(
    tmp_path: Path, redis_url: str, key_prefix: str, db_url: str
) -> None:
    submitter, worker_env = farm_envs(key_prefix, redis_url)
    suite = write_suite(
        tmp_path / "suite",
        "import time\n\n"
        + "".join(f"def test_slow_{i}():\n    time.sleep(0.5)\n\n" for i in range(8)),
    )
    report = tmp_path / "report.json"
    client = client_for(redis_url)
    with farm_worker(tmp_path, worker_env):
        run = subprocess.Popen(
            [sys.executable, "-m", "farm", "run", "--broker", redis_url, "-n", "1",
             "--db", db_url, "--state-dir", str(tmp_path / "state"), "--json", str(report)],
            cwd=suite, env=submitter, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (streams := list(client.scan_iter(match=f"{key_prefix}run:*:events"))):
                assert run.poll() is None and time.monotonic() < deadline, "no run started"
                time.sleep(0.05)
            (stream,) = streams
            run_id = stream.decode()[len(f"{key_prefix}run:") : -len(":events")]
            for fields in malformed_entries(run_id):
                client.xadd(stream, fields)  # type: ignore[arg-type]
            out, err = run.communicate(timeout=120)
        finally:
            with suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
            client.close()
    assert run.returncode == 0, out + err
    data = json.loads(report.read_text())
    assert data["run_id"] == run_id and data["verdict"] == "passed"
    assert sorted(t["node_id"] for t in data["tests"]) == [
        f"test_hostile.py::test_slow_{i}" for i in range(8)
    ]
    with ResultStore.open(db_url) as store:
        assert len(store.final_results(run_id)) == 8
    # farm run configures no logging: Python's last-resort handler prints warnings.
    assert err.count("skipped malformed event") == 6, err
    assert err.count(f"ignored an event of run {run_id}") == 2, err


def malformed_entries(run_id: str) -> list[dict[str, str | bytes]]:
    """Stream entries that must each be logged and skipped, never stop ingestion."""
    result = {
        "type": "result", "run_id": run_id, "shard_id": 0, "lease": 1,
        "node_id": "test_hostile.py::test_slow_0", "outcome": "failed", "duration_s": 0.1,
        "module_setup_s": 0.0, "worker": "forged:1", "attempt": 1, "longrepr": "forged",
        "output": "", "started_at": 1.0, "finished_at": 2.0,
    }  # fmt: skip
    shard_end = {
        "type": "shard_end", "run_id": run_id, "shard_id": "0", "lease": 1,
        "worker": "forged:1", "at": 2.0, "exit_code": 1, "message": "forged", "fatal": True,
    }  # fmt: skip
    as_entry = [
        "{not json",
        "[1, 2, 3]",
        {"type": "no_such_type", "run_id": run_id},
        {**result, "duration_s": "slow", "attempt": "1"},  # wrong field types
        {**result, "run_id": "another-run"},
        {**result, "shard_id": 99999},  # a shard the run never planned
        shard_end,  # a string shard id
    ]
    entries: list[dict[str, str | bytes]] = [
        {"m": e if isinstance(e, str) else json.dumps(e)} for e in as_entry
    ]
    entries.append({"x": b"\xff\xfe no 'm' field"})
    return entries
