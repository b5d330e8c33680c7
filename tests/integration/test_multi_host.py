"""Three worker hosts in network namespaces, a submitter outside them.

Each host reaches Redis only over its veth link, runs ``farm worker`` with a cache
and a working folder of its own, and cannot see the submitter's folder at all (an
empty tmpfs covers it in the host's mount namespace): the code can only arrive as
a snapshot. Skips, saying why, where namespaces cannot be made (not root).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from helpers import WorkerProcess, farm_env, make_suite, run_farm
from netns_hosts import Host, Network, namespaces_unavailable
from sqlalchemy import create_engine, text

UNAVAILABLE = namespaces_unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]


def start_worker(host: Host, home: Path, broker_url: str, hide: Path) -> WorkerProcess:
    home.mkdir()
    return WorkerProcess(
        home / "worker.log", "-c", "2", "--cache", str(home / "cache"), "--name", host.name,
        cwd=home, env=farm_env(FARM_BROKER_URL=broker_url), host=host, hide=[hide],
    )  # fmt: skip


def attempts_per_test(state: Path, run_id: str) -> Counter[str]:
    engine = create_engine(f"sqlite:///{state / 'farm.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT node_id FROM attempts WHERE run_id = :run"), {"run": run_id}
            )
            return Counter(row[0] for row in rows)
    finally:
        engine.dispose()


def test_a_suite_runs_once_across_hosts_that_never_see_the_submitters_disk(
    tmp_path: Path,
) -> None:
    submitter = tmp_path / "submitter"
    suite = submitter / "suite"
    make_suite(suite, "--tests", "60", "--modules", "6")
    durations = json.loads((suite / "durations.json").read_text())
    # The suite checks for itself that it runs from a snapshot and that the
    # submitter's folder is out of sight.
    (suite / "test_where.py").write_text(
        "import os\n\n"
        f"SUBMITTER = {str(submitter)!r}\n\n"
        "def test_the_submitters_folder_is_out_of_sight():\n"
        "    assert not os.path.realpath(__file__).startswith(SUBMITTER)\n"
        "    assert os.listdir(SUBMITTER) == []\n"
    )
    state = tmp_path / "state"
    with Network(3) as net:
        workers = {
            host.name: start_worker(host, tmp_path / host.name, net.broker_url, hide=submitter)
            for host in net.hosts
        }
        hidden = net.hosts[0].run(
            ["ls", "-A", str(submitter)], cwd=Path("/"), env=farm_env(), hide=[submitter]
        )
        assert hidden.returncode == 0 and hidden.stdout == b""

        def submit() -> dict[str, object]:
            report = tmp_path / "report.json"
            done = run_farm(
                "run", "--broker", net.broker_url, "-n", "6", "--state-dir", str(state),
                "--json", str(report), cwd=suite, env=farm_env(),
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            data: dict[str, object] = json.loads(report.read_text())
            return data

        first = submit()
        fetched = {name: len(w.events("snapshot.fetched")) for name, w in workers.items()}
        second = submit()
        fetched_again = {name: len(w.events("snapshot.fetched")) for name, w in workers.items()}

    tests = first["tests"]
    assert isinstance(tests, list)
    all_ids = {*durations, "test_where.py::test_the_submitters_folder_is_out_of_sight"}
    assert sorted(t["node_id"] for t in tests) == sorted(all_ids)
    attempts = attempts_per_test(state, str(first["run_id"]))
    assert set(attempts) == all_ids and set(attempts.values()) == {1}  # each test ran once

    ran_on = Counter(str(t["worker"]).split(":")[0] for t in tests)
    assert len(ran_on) >= 2, ran_on
    # Each host that ran the first run fetched its snapshot then, and only then.
    for name in ran_on:
        assert fetched[name] == 1, fetched
        assert fetched_again[name] == 1, fetched_again
    assert second["verdict"] == "passed"
    assert second["snapshot"]["uploaded_bytes"] == 0  # type: ignore[index]
