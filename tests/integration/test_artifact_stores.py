"""The Redis and S3 artifact stores against real servers: chunking, expiry, races, refusals.

Redis is the session's server under a key prefix of the test's own; S3 is moto's
HTTP server on a free port, reached through boto3's standard environment, as a
MinIO or AWS endpoint would be.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from farm.artifacts import ArtifactError, ArtifactMissing, ArtifactStore, open_artifacts
from farm.artifacts.redis_store import RedisArtifacts

pytestmark = pytest.mark.integration

MIB = 1 << 20


def artifact(folder: Path, data: bytes) -> tuple[str, Path]:
    digest = hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.tar.gz"
    path.write_bytes(data)
    return digest, path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "archive"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def store(client: redis.Redis, key_prefix: str) -> RedisArtifacts:
    opened = open_artifacts("redis", redis_client=client, key_prefix=key_prefix, ttl_s=600)
    assert isinstance(opened, RedisArtifacts)
    return opened


def keys_under(client: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000)}


def test_redis_round_trip_of_a_multi_chunk_file(
    store: RedisArtifacts, client: redis.Redis, key_prefix: str, tmp_path: Path, dest: Path
) -> None:
    data = os.urandom(5 * MIB // 2)
    digest, path = artifact(tmp_path / "src", data)
    assert not store.has(digest)

    assert store.put(digest, path) == len(data)

    key = f"{key_prefix}snapshot:{digest}"
    assert keys_under(client, key_prefix) == {key}  # no upload key left behind
    assert client.hmget(key, ["size", "chunks"]) == [str(len(data)).encode(), b"3"]
    assert max(len(client.hget(key, str(i)) or b"") for i in range(3)) == MIB
    assert 0 < client.ttl(key) <= 600
    assert store.fetch(digest, dest, max_bytes=len(data)) == len(data)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["archive"]
    assert store.put(digest, path) == 0


def test_redis_has_and_fetch_refresh_the_expiry(
    store: RedisArtifacts, client: redis.Redis, key_prefix: str, tmp_path: Path, dest: Path
) -> None:
    digest, path = artifact(tmp_path / "src", b"a snapshot reused by a later run")
    store.put(digest, path)
    key = f"{key_prefix}snapshot:{digest}"

    client.expire(key, 5)
    assert store.has(digest)
    assert client.ttl(key) > 500

    client.expire(key, 5)
    store.fetch(digest, dest, max_bytes=MIB)
    assert client.ttl(key) > 500


def test_redis_tampered_chunk_is_refused_and_leaves_no_dest(
    store: RedisArtifacts, client: redis.Redis, key_prefix: str, tmp_path: Path, dest: Path
) -> None:
    data = os.urandom(2 * MIB + 10)
    digest, path = artifact(tmp_path / "src", data)
    store.put(digest, path)
    key = f"{key_prefix}snapshot:{digest}"
    client.hset(key, "1", os.urandom(MIB))

    with pytest.raises(ArtifactError, match=f"{digest} arrived damaged"):
        store.fetch(digest, dest, max_bytes=10 * MIB)
    assert os.listdir(dest.parent) == []

    client.hdel(key, "2")
    with pytest.raises(ArtifactError, match="lost chunk 2 of 3"):
        store.fetch(digest, dest, max_bytes=10 * MIB)
    assert os.listdir(dest.parent) == []


def test_redis_limit_is_enforced_even_when_the_header_lies(
    store: RedisArtifacts, client: redis.Redis, key_prefix: str, tmp_path: Path, dest: Path
) -> None:
    data = os.urandom(2 * MIB)
    digest, path = artifact(tmp_path / "src", data)
    store.put(digest, path)

    with pytest.raises(ArtifactError, match=f"its {2 * MIB} bytes are over the limit of {MIB}"):
        store.fetch(digest, dest, max_bytes=MIB)  # refused on the header, before any chunk
    assert os.listdir(dest.parent) == []

    client.hset(f"{key_prefix}snapshot:{digest}", "size", "10")
    with pytest.raises(ArtifactError, match=f"over the limit of {MIB + 1} bytes"):
        store.fetch(digest, dest, max_bytes=MIB + 1)
    assert os.listdir(dest.parent) == []


def test_redis_concurrent_puts_of_one_digest_make_one_artifact(
    client: redis.Redis, key_prefix: str, redis_url: str, tmp_path: Path, dest: Path
) -> None:
    data = os.urandom(3 * MIB)
    digest, path = artifact(tmp_path / "src", data)
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def upload() -> None:
        own = redis.Redis.from_url(redis_url)
        try:
            barrier.wait()
            results.append(RedisArtifacts(own, key_prefix, 600).put(digest, path))
        except BaseException as e:
            errors.append(e)
        finally:
            own.close()

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(results) == 4 and all(r in (0, len(data)) for r in results)
    assert keys_under(client, key_prefix) == {f"{key_prefix}snapshot:{digest}"}
    store = RedisArtifacts(client, key_prefix, 600)
    assert store.fetch(digest, dest, max_bytes=len(data)) == len(data)
    assert dest.read_bytes() == data


def test_redis_an_expired_upload_is_never_published(
    store: RedisArtifacts, client: redis.Redis, key_prefix: str
) -> None:
    digest = hashlib.sha256(b"stalled").hexdigest()
    key = f"{key_prefix}snapshot:{digest}"
    tmp = f"{key}:upload:stalled"
    client.hset(tmp, "2", b"the last chunk, sent after the first two expired")

    assert store._publish(keys=[tmp, key], args=[3 * MIB, 3, 600]) == -1

    assert keys_under(client, key_prefix) == set()


def test_redis_refusals(
    store: RedisArtifacts, client: redis.Redis, key_prefix: str, tmp_path: Path, dest: Path
) -> None:
    digest, _ = artifact(tmp_path / "src", b"the real thing")
    _, other = artifact(tmp_path / "src", b"something else")
    with pytest.raises(ArtifactError, match="refused to upload"):
        store.put(digest, other)
    assert keys_under(client, key_prefix) == set()

    with pytest.raises(ArtifactMissing, match=f"redis has no {digest}"):
        store.fetch(digest, dest, max_bytes=MIB)
    assert not dest.exists()
    with pytest.raises(ArtifactError, match="not a sha256 digest"):
        store.has("*")
    with pytest.raises(ArtifactError, match="returns bytes"):
        RedisArtifacts(redis.Redis(decode_responses=True), key_prefix, 600)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto is not installed (pip install 'moto[server]'): no S3 server to test")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    """boto3's standard environment, cut off from this machine's own AWS configuration."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def s3(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[ArtifactStore, Any, str]:
    """A store on a new bucket, a plain boto3 client, and the bucket's name."""
    import boto3

    s3_env(monkeypatch, tmp_path, s3_endpoint)
    bucket = f"farm-test-{uuid.uuid4().hex[:12]}"
    plain = boto3.session.Session().client("s3")
    plain.create_bucket(Bucket=bucket)
    return open_artifacts(f"s3://{bucket}/snapshots/"), plain, bucket


def test_s3_round_trip(s3: tuple[ArtifactStore, Any, str], tmp_path: Path, dest: Path) -> None:
    store, plain, bucket = s3
    data = os.urandom(5 * MIB // 2)
    digest, path = artifact(tmp_path / "src", data)
    assert store.location == f"s3://{bucket}/snapshots"
    assert not store.has(digest)

    assert store.put(digest, path) == len(data)

    listed = plain.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [(f"snapshots/{digest}.tar.gz", len(data))]
    assert store.has(digest)
    assert store.put(digest, path) == 0
    assert store.fetch(digest, dest, max_bytes=len(data)) == len(data)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["archive"]


def test_s3_missing(s3: tuple[ArtifactStore, Any, str], dest: Path) -> None:
    store, _, bucket = s3
    digest = hashlib.sha256(b"never uploaded").hexdigest()
    assert not store.has(digest)
    with pytest.raises(ArtifactMissing, match=f"s3://{bucket}/snapshots has no {digest}"):
        store.fetch(digest, dest, max_bytes=MIB)
    assert not dest.exists()


def test_s3_tampered_object_is_refused_and_leaves_no_dest(
    s3: tuple[ArtifactStore, Any, str], tmp_path: Path, dest: Path
) -> None:
    store, plain, bucket = s3
    digest, path = artifact(tmp_path / "src", os.urandom(MIB + 1))
    store.put(digest, path)
    plain.put_object(Bucket=bucket, Key=f"snapshots/{digest}.tar.gz", Body=os.urandom(MIB + 1))

    with pytest.raises(ArtifactError, match=f"{digest} arrived damaged"):
        store.fetch(digest, dest, max_bytes=10 * MIB)
    assert os.listdir(dest.parent) == []


def test_s3_limit_is_enforced(
    s3: tuple[ArtifactStore, Any, str], tmp_path: Path, dest: Path
) -> None:
    store, _, _ = s3
    data = os.urandom(2 * MIB)
    digest, path = artifact(tmp_path / "src", data)
    store.put(digest, path)

    with pytest.raises(ArtifactError, match=f"over the limit of {MIB} bytes"):
        store.fetch(digest, dest, max_bytes=MIB)
    assert os.listdir(dest.parent) == []


def test_s3_refuses_a_file_that_is_not_the_digest(
    s3: tuple[ArtifactStore, Any, str], tmp_path: Path
) -> None:
    store, plain, bucket = s3
    digest, _ = artifact(tmp_path / "src", b"the real thing")
    _, other = artifact(tmp_path / "src", b"something else")
    with pytest.raises(ArtifactError, match="refused to upload"):
        store.put(digest, other)
    assert "Contents" not in plain.list_objects_v2(Bucket=bucket)


def test_s3_errors_are_one_line(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dest: Path
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    s3_env(monkeypatch, tmp_path, f"http://127.0.0.1:{closed}")
    store = open_artifacts("s3://no-server/x")
    digest = hashlib.sha256(b"x").hexdigest()

    with pytest.raises(ArtifactError, match=f"s3://no-server/x: cannot look up {digest}") as e:
        store.has(digest)
    assert "\n" not in str(e.value)

    s3_env(monkeypatch, tmp_path, s3_endpoint)
    store = open_artifacts("s3://no-such-bucket-here")
    with pytest.raises(ArtifactError, match="NoSuchBucket") as e:
        store.fetch(digest, dest, max_bytes=MIB)
    assert "\n" not in str(e.value)
    assert not dest.exists()
