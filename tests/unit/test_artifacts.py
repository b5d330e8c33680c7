"""Artifact locations and the folder store: round trips, refusals, nothing half-written."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from farm.artifacts import (
    ArtifactError,
    ArtifactMissing,
    check_location,
    open_artifacts,
)
from farm.artifacts.dir_store import DirArtifacts
from farm.core.errors import SettingsError


def artifact(folder: Path, data: bytes) -> tuple[str, Path]:
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"{digest}.tar.gz"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest, path


@pytest.fixture
def store(tmp_path: Path) -> DirArtifacts:
    return DirArtifacts(tmp_path / "store")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "archive"


@pytest.mark.parametrize(
    ("location", "normal"),
    [
        ("redis", "redis"),
        (" Redis ", "redis"),
        ("/srv/artifacts", "/srv/artifacts"),
        ("/srv/artifacts/", "/srv/artifacts"),
        ("/srv/./x/../artifacts", "/srv/artifacts"),
        ("file:///srv/artifacts", "/srv/artifacts"),
        ("file://localhost/srv/my%20artifacts", "/srv/my artifacts"),
        ("s3://bucket", "s3://bucket"),
        ("s3://my-bucket.example/", "s3://my-bucket.example"),
        ("s3://bucket/farm/snapshots/", "s3://bucket/farm/snapshots"),
        ("S3://bucket//a//b", "s3://bucket/a/b"),
    ],
)
def test_good_locations_are_normalised(location: str, normal: str) -> None:
    assert check_location(location) == normal


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("", "it is empty"),
        ("relative/dir", "absolute"),
        ("~/artifacts", "absolute"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("redis://localhost:6379/0", "unknown scheme 'redis'"),
        ("file://otherhost/srv/x", "on this machine"),
        ("file://relative", "on this machine"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("s3://Bucket_Name/x", "not a valid bucket name"),
        ("s3://bucket:9000/x", "not a valid bucket name"),
        ("s3://bucket/x?token=abc", "query"),
        ("s3://AKIAKEY:secretpass@bucket/x", "credentials"),
        ("s3://tokenonly@bucket/x", "credentials"),
        ("file://user:secretpass@localhost/srv", "credentials"),
    ],
)
def test_bad_locations_are_refused_in_one_line_without_secrets(location: str, reason: str) -> None:
    with pytest.raises(SettingsError, match="artifacts location") as caught:
        check_location(location)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message
    for secret in ("secretpass", "AKIAKEY", "tokenonly", "abc"):
        assert secret not in message


def test_s3_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed

    with pytest.raises(SettingsError, match=r'pip install "pytest-farm\[s3\]"'):
        check_location("s3://bucket/x")
    with pytest.raises(ArtifactError, match=r'pip install "pytest-farm\[s3\]"'):
        open_artifacts("s3://bucket/x")


def test_open_artifacts_picks_the_store_by_location(tmp_path: Path) -> None:
    opened = open_artifacts(f"file://{tmp_path}/a/")
    assert isinstance(opened, DirArtifacts)
    assert opened.location == f"{tmp_path}/a"
    assert not (tmp_path / "a").exists()  # made on the first upload, not on opening
    with pytest.raises(ArtifactError, match="needs a Redis client"):
        open_artifacts("redis")
    with pytest.raises(ArtifactError, match="bad artifacts location 'ftp://x'"):
        open_artifacts("ftp://x")


def test_round_trip(store: DirArtifacts, tmp_path: Path, dest: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 123)  # several read chunks and a partial one
    digest, path = artifact(tmp_path / "src", data)
    assert not store.has(digest)

    assert store.put(digest, path) == len(data)

    assert store.has(digest)
    stored = store.root / digest[:2] / f"{digest}.tar.gz"
    assert stored.read_bytes() == data
    assert store.fetch(digest, dest, max_bytes=len(data)) == len(data)
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["archive"]  # no temporary file left
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]


def test_second_put_uploads_nothing(store: DirArtifacts, tmp_path: Path) -> None:
    digest, path = artifact(tmp_path / "src", b"snapshot bytes")
    assert store.put(digest, path) == len(b"snapshot bytes")
    assert store.put(digest, path) == 0


def test_has_refreshes_the_mtime_for_clean_up_by_age(store: DirArtifacts, tmp_path: Path) -> None:
    digest, path = artifact(tmp_path / "src", b"old snapshot")
    store.put(digest, path)
    stored = store.path_for(digest)
    os.utime(stored, (1_000_000, 1_000_000))

    assert store.has(digest)

    assert stored.stat().st_mtime > 1_000_000


def test_put_refuses_a_file_that_is_not_the_digest(store: DirArtifacts, tmp_path: Path) -> None:
    digest, _ = artifact(tmp_path / "src", b"the real thing")
    _, other = artifact(tmp_path / "src", b"something else")

    with pytest.raises(ArtifactError, match="refused to upload"):
        store.put(digest, other)

    assert not store.has(digest)
    assert list((store.root / digest[:2]).iterdir()) == []


def test_tampered_artifact_is_refused_and_leaves_no_dest(
    store: DirArtifacts, tmp_path: Path, dest: Path
) -> None:
    digest, path = artifact(tmp_path / "src", b"genuine snapshot")
    store.put(digest, path)
    store.path_for(digest).write_bytes(b"genuine snapshoT")

    with pytest.raises(ArtifactError, match=f"{digest} arrived damaged"):
        store.fetch(digest, dest, max_bytes=1 << 20)

    assert os.listdir(dest.parent) == []


def test_oversize_artifact_is_refused_and_leaves_no_dest(
    store: DirArtifacts, tmp_path: Path, dest: Path
) -> None:
    data = os.urandom(2 * (1 << 20))
    digest, path = artifact(tmp_path / "src", data)
    store.put(digest, path)

    with pytest.raises(ArtifactError, match="over the limit of 1048577 bytes"):
        store.fetch(digest, dest, max_bytes=(1 << 20) + 1)

    assert os.listdir(dest.parent) == []
    assert store.fetch(digest, dest, max_bytes=len(data)) == len(data)  # exactly at the limit


def test_a_failed_fetch_removes_an_earlier_file_at_dest(
    store: DirArtifacts, tmp_path: Path, dest: Path
) -> None:
    dest.write_bytes(b"stale")
    digest = hashlib.sha256(b"never uploaded").hexdigest()

    with pytest.raises(ArtifactMissing, match=f"has no {digest}"):
        store.fetch(digest, dest, max_bytes=100)

    assert os.listdir(dest.parent) == []


@pytest.mark.parametrize(
    "digest",
    ["../" * 10 + "etc/passwd", "A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 64 + "\n", ""],
)
def test_bad_digests_are_refused_everywhere(
    store: DirArtifacts, tmp_path: Path, dest: Path, digest: str
) -> None:
    _, path = artifact(tmp_path / "src", b"x")
    calls: tuple[Callable[[], object], ...] = (
        lambda: store.has(digest),
        lambda: store.put(digest, path),
        lambda: store.fetch(digest, dest, max_bytes=100),
    )
    for call in calls:
        with pytest.raises(ArtifactError, match="not a sha256 digest"):
            call()
    assert not store.root.exists()
    assert os.listdir(dest.parent) == []


def test_missing_artifact(store: DirArtifacts, dest: Path) -> None:
    digest = hashlib.sha256(b"nobody uploaded this").hexdigest()
    assert not store.has(digest)
    with pytest.raises(ArtifactMissing):
        store.fetch(digest, dest, max_bytes=100)
    assert not dest.exists()
