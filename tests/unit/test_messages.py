import json

import pytest

from farm.core.broker import celery_url, redis_py_url
from farm.core.domain import Outcome, TestResult
from farm.core.errors import SettingsError
from farm.core.messages import (
    CollectFailed,
    ModuleCollected,
    ShardEnd,
    ShardStart,
    decode_event,
    encode_event,
)
from farm.core.shard_task import ShardTask
from farm.core.wire_fields import MessageError


def result(**overrides: object) -> TestResult:
    fields: dict[str, object] = dict(
        run_id="r", shard_id=2, lease=1, node_id="t.py::a[\x00<b>é]", outcome=Outcome.FAILED,
        duration_s=1.5, module_setup_s=0.2, worker="h:1", longrepr="E boom", output="\x1b[2J",
        started_at=10.0, finished_at=11.5,
    )  # fmt: skip
    fields.update(overrides)
    return TestResult(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "event",
    [
        result(),
        ShardStart("r", 1, 1, "h:1", 3.0),
        ShardStart("r", 1, 1, "h:1", 3.0, "host-a"),
        ShardEnd("r", 1, 2, "h:1", 4.0, 1, "boom"),
        ShardEnd("r", 1, 2, "h:1", 4.0, 1, "refused entry 'x'", fatal=True),
        ModuleCollected("r", 1, 1, "t.py", ("t.py::a", "t.py::b[1]")),
        CollectFailed("r", 1, 1, "t.py", "SyntaxError"),
    ],
)
def test_events_round_trip(event: object) -> None:
    assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]


def test_shard_task_round_trip() -> None:
    task = ShardTask("r", 3, 1, "/src", ("a.py::x", "b.py::y"), ("-x",), "/src/pytest.ini", 99)
    assert ShardTask.from_json(json.loads(json.dumps(task.to_json()))) == task


def test_shard_task_with_a_snapshot_round_trip() -> None:
    task = ShardTask(
        "r", 3, 1, "sub", ("a.py::x",), (), "sub/pytest.ini", 99, snapshot="ab" * 32,
        artifacts="redis", snapshot_max_bytes=1234, setup_command="pip install -e .",
        setup_files=("pyproject.toml", "requirements*.txt"),
    )  # fmt: skip
    assert ShardTask.from_json(json.loads(json.dumps(task.to_json()))) == task


def test_a_shard_task_of_an_older_submitter_runs_on_the_shared_disk() -> None:
    data = ShardTask("r", 3, 1, "/src", ("a.py::x",)).to_json()
    for field in ("snapshot", "artifacts", "snapshot_max_bytes", "setup_command", "setup_files"):
        del data[field]
    task = ShardTask.from_json(data)
    assert task.snapshot == "" and task.setup_files == ()


def test_a_shard_start_of_an_older_worker_names_its_machine_host() -> None:
    raw = encode_event(ShardStart("r", 1, 1, "w:1", 3.0, "box")).replace('"machine"', '"host"')
    assert '"host":"box"' in raw
    assert decode_event(raw) == ShardStart("r", 1, 1, "w:1", 3.0, "box")


def test_a_fatal_flag_must_be_true_itself_to_count() -> None:
    raw = encode_event(ShardEnd("r", 1, 1, "w", 1.0, 0)).replace('"fatal":false', '"fatal":"yes"')
    end = decode_event(raw)
    assert isinstance(end, ShardEnd) and not end.fatal


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\x80\x81", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "nope"}', "unknown event type"),
        ('{"type": "shard_start", "run_id": "r"}', "lacks field"),
        ('{"type": "shard_end", "run_id": "r", "shard_id": "1", "lease": 1, "worker": "w", '
         '"at": 1, "exit_code": 0}', "must be an integer"),
        (encode_event(result()).replace('"failed"', '"exploded"'), "unknown outcome"),
        (encode_event(result()).replace('"duration_s":1.5', '"duration_s":NaN'), "finite"),
    ],
)  # fmt: skip
def test_malformed_events_raise_message_error(raw: str | bytes, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        decode_event(raw)


def test_shard_task_rejects_wrong_types() -> None:
    with pytest.raises(MessageError):
        ShardTask.from_json(
            {
                "run_id": "r",
                "shard_id": 1,
                "lease": 1,
                "rootdir": "/",
                "node_ids": [1],
                "pytest_args": [],
                "result_limit_bytes": 1,
            }
        )


def test_socket_urls_in_each_library_spelling() -> None:
    assert celery_url("unix:///tmp/r.sock") == "redis+socket:///tmp/r.sock"
    assert redis_py_url("redis+socket:///tmp/r.sock") == "unix:///tmp/r.sock"
    with pytest.raises(SettingsError, match="not a Redis URL"):
        celery_url("amqp://guest:pw@host//")
