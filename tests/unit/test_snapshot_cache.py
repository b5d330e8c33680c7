"""The worker's snapshot cache: placing trees, LRU eviction, racing adds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from farm.artifacts.snapshot import Snapshot, SnapshotError, pack, unpack
from farm.worker import cache as cache_module
from farm.worker.cache import SnapshotCache

MAX = 1 << 20


def snapshot(tmp_path: Path, name: str, size: int) -> Snapshot:
    root = tmp_path / "src" / name
    root.mkdir(parents=True)
    (root / "data.bin").write_bytes(name.encode()[:1] * size)
    return pack(root, tmp_path / "archives")


def test_add_then_path_for(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, "a", 100)
    cache = SnapshotCache(tmp_path / "cache", max_bytes=1000)
    assert cache.path_for(snap.digest) is None

    path = cache.add(snap.digest, snap.path, MAX)

    assert path == tmp_path / "cache" / snap.digest
    assert (path / "data.bin").read_bytes() == b"a" * 100
    assert cache.path_for(snap.digest) == path
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["trees"][snap.digest]["size"] == 100
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {".lock", "index.json", snap.digest}


def test_least_recently_used_trees_are_evicted_first(tmp_path: Path) -> None:
    a, b, c, d = (snapshot(tmp_path, n, 100) for n in "abcd")
    cache = SnapshotCache(tmp_path / "cache", max_bytes=300)
    for snap in (a, b, c):
        cache.add(snap.digest, snap.path, MAX)
    assert cache.path_for(a.digest) is not None  # a is now newer than b and c

    cache.add(d.digest, d.path, MAX)

    assert cache.path_for(b.digest) is None
    assert not (tmp_path / "cache" / b.digest).exists()
    assert all(cache.path_for(s.digest) is not None for s in (a, c, d))
    e = snapshot(tmp_path, "e", 100)
    cache.add(e.digest, e.path, MAX)  # a, c, d were just used in that order: a goes
    assert cache.path_for(a.digest) is None
    assert all(cache.path_for(s.digest) is not None for s in (c, d, e))


def test_the_tree_just_added_is_never_evicted(tmp_path: Path) -> None:
    small, big = snapshot(tmp_path, "s", 10), snapshot(tmp_path, "b", 500)
    cache = SnapshotCache(tmp_path / "cache", max_bytes=100)
    cache.add(small.digest, small.path, MAX)
    path = cache.add(big.digest, big.path, MAX)
    assert (path / "data.bin").stat().st_size == 500
    assert cache.path_for(small.digest) is None


def test_a_second_add_of_the_same_digest_keeps_the_first_tree(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, "a", 100)
    cache = SnapshotCache(tmp_path / "cache", max_bytes=1000)
    first = cache.add(snap.digest, snap.path, MAX)
    marker = first / "data.bin"
    inode = marker.stat().st_ino
    other = SnapshotCache(tmp_path / "cache", max_bytes=1000)  # another process

    assert other.add(snap.digest, snap.path, MAX) == first
    assert marker.stat().st_ino == inode
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".add-")]


def test_losing_a_rename_race_discards_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = snapshot(tmp_path, "a", 100)
    cache = SnapshotCache(tmp_path / "cache", max_bytes=1000)
    winner = tmp_path / "cache" / snap.digest

    def unpack_while_another_process_wins(archive: Path, dest: Path, **kw: Any) -> None:
        unpack(archive, dest, **kw)
        unpack(archive, winner, **kw)  # the racing process renames its copy in first
        (winner / "winner").write_text("")

    monkeypatch.setattr(cache_module, "unpack", unpack_while_another_process_wins)
    path = cache.add(snap.digest, snap.path, MAX)

    assert path == winner
    assert (winner / "winner").exists()
    assert (winner / "data.bin").read_bytes() == b"a" * 100
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {".lock", "index.json", snap.digest}


def test_bad_archive_or_digest_leaves_the_cache_clean(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, "a", 100)
    cache = SnapshotCache(tmp_path / "cache", max_bytes=1000)
    with pytest.raises(SnapshotError, match="expected"):
        cache.add("f" * 64, snap.path, MAX)
    with pytest.raises(SnapshotError, match="not a snapshot digest"):
        cache.add("../escape", snap.path, MAX)
    with pytest.raises(SnapshotError, match="over 10 bytes"):
        cache.add(snap.digest, snap.path, 10)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_a_damaged_index_is_rebuilt(tmp_path: Path) -> None:
    snap = snapshot(tmp_path, "a", 100)
    cache = SnapshotCache(tmp_path / "cache", max_bytes=1000)
    cache.add(snap.digest, snap.path, MAX)
    (tmp_path / "cache" / "index.json").write_text("{not json")
    assert cache.path_for(snap.digest) == tmp_path / "cache" / snap.digest
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["trees"][snap.digest]["size"] == 100
