"""Packing trees into deterministic archives and unpacking hostile ones safely."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from farm.artifacts.snapshot import SnapshotError, file_digest, pack, unpack
from farm.core.errors import UsageError

MAX = 1 << 20


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    write(repo / "src" / "app.py", "print('committed')\n")
    write(repo / "tests" / "test_app.py", "def test_a():\n    pass\n")
    write(repo / ".gitignore", "*.log\nbuild/\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    os.symlink("src/app.py", repo / "link.py")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_working_tree_has_tracked_and_untracked_but_not_ignored_files(
    repo: Path, tmp_path: Path
) -> None:
    write(repo / "new.py", "x = 1\n")
    write(repo / "debug.log", "ignored\n")
    write(repo / "build" / "out.py", "ignored\n")
    write(repo / ".farm" / "state.db", "state\n")
    (repo / "tests" / "test_app.py").unlink()  # tracked, deleted: skipped
    write(repo / "src" / "app.py", "print('edited')\n")

    snap = pack(repo, tmp_path / "out")

    names = members(snap.path)
    assert sorted(names) == [".gitignore", "link.py", "new.py", "run.sh", "src/app.py"]
    assert snap.files == 5
    assert read(snap.path, "src/app.py") == b"print('edited')\n"
    assert names["link.py"].issym() and names["link.py"].linkname == "src/app.py"
    assert names["run.sh"].mode == 0o755 and names["new.py"].mode == 0o644
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in names.values())
    assert snap.path == tmp_path / "out" / f"{snap.digest}.tar.gz"
    assert snap.digest == hashlib.sha256(snap.path.read_bytes()).hexdigest()
    assert snap.size_bytes == snap.path.stat().st_size


def test_same_tree_gives_same_digest(repo: Path, tmp_path: Path) -> None:
    first = pack(repo, tmp_path / "a")
    os.utime(repo / "src" / "app.py", (1, 1))  # times are not part of a snapshot
    second = pack(repo, tmp_path / "b")
    assert first.digest == second.digest
    assert first.path.read_bytes() == second.path.read_bytes()
    write(repo / "src" / "app.py", "print('changed')\n")
    assert pack(repo, tmp_path / "c").digest != first.digest


def test_rev_packs_the_commit_not_the_working_tree(repo: Path, tmp_path: Path) -> None:
    clean = pack(repo, tmp_path / "clean")
    write(repo / "src" / "app.py", "print('edited')\n")
    write(repo / "new.py", "x = 1\n")

    snap = pack(repo, tmp_path / "out", rev="HEAD")

    assert read(snap.path, "src/app.py") == b"print('committed')\n"
    assert "new.py" not in members(snap.path)
    assert members(snap.path)["link.py"].linkname == "src/app.py"
    assert snap.digest == clean.digest  # the same content packs the same either way


def test_bad_rev_is_a_usage_error_naming_it(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no-such-branch"):
        pack(repo, tmp_path / "out", rev="no-such-branch")
    assert not any((tmp_path / "out").iterdir())


def test_plain_folder_skips_caches_and_state(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    skipped = ["pkg/__pycache__/b.pyc", "c.pyc", ".venv/x.py", ".git/HEAD", ".pytest_cache/v"]
    for name in ["a.py", "pkg/b.py", ".farm/redis.pid", "sub/.farm/kept.py", *skipped]:
        write(root / name, name)
    os.symlink("pkg", root / "pkglink")

    snap = pack(root, tmp_path / "out")

    names = members(snap.path)
    assert sorted(names) == ["a.py", "pkg/b.py", "pkglink", "sub/.farm/kept.py"]
    assert names["pkglink"].issym()


def test_round_trip(repo: Path, tmp_path: Path) -> None:
    snap = pack(repo, tmp_path / "out")
    dest = tmp_path / "dest"
    unpack(snap.path, dest, expected_digest=snap.digest, max_bytes=MAX)
    assert (dest / "src" / "app.py").read_text() == "print('committed')\n"
    assert os.readlink(dest / "link.py") == "src/app.py"
    assert os.access(dest / "run.sh", os.X_OK)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_digest_mismatch_is_refused_before_extracting(repo: Path, tmp_path: Path) -> None:
    snap = pack(repo, tmp_path / "out")
    with pytest.raises(SnapshotError, match="expected"):
        unpack(snap.path, tmp_path / "dest", expected_digest="0" * 64, max_bytes=MAX)
    assert not (tmp_path / "dest").exists()


def test_existing_dest_is_refused(repo: Path, tmp_path: Path) -> None:
    snap = pack(repo, tmp_path / "out")
    (tmp_path / "dest").mkdir()
    with pytest.raises(SnapshotError, match="already exists"):
        unpack(snap.path, tmp_path / "dest", expected_digest=snap.digest, max_bytes=MAX)


def hostile(path: Path, *entries: tuple[tarfile.TarInfo, bytes | None]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return file_digest(path)


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


OK = (entry("ok.py"), b"fine\n")

HOSTILE: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "absolute": [OK, (entry("/tmp/farm-evil.py"), b"x")],
    "dotdot": [OK, (entry("../evil.py"), b"x")],
    "dotdot-inside": [OK, (entry("pkg/../../evil.py"), b"x")],
    "symlink-etc": [OK, (entry("etc", tarfile.SYMTYPE, "/etc"), None)],
    "symlink-up": [OK, (entry("up", tarfile.SYMTYPE, "../.."), None)],
    "symlink-chain": [
        OK,
        (entry("here", tarfile.SYMTYPE, "."), None),
        (entry("out", tarfile.SYMTYPE, "here/.."), None),
    ],
    "write-through-link": [
        (entry("d", tarfile.SYMTYPE, "."), None),
        (entry("d/evil.py"), b"x"),
    ],
    "hardlink-outside": [OK, (entry("hard", tarfile.LNKTYPE, "../outside.txt"), None)],
    "hardlink-absolute": [OK, (entry("hard", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "device": [OK, (entry("dev", tarfile.CHRTYPE), None)],
    "fifo": [OK, (entry("fifo", tarfile.FIFOTYPE), None)],
    "oversize": [OK, (entry("big.bin"), b"y" * (MAX + 1 - len(b"fine\n")))],
    "duplicate": [OK, OK],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_leave_nothing(tmp_path: Path, case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "outside.txt").write_text("secret\n")
    archive = tmp_path / "evil.tar.gz"
    digest = hostile(archive, *HOSTILE[case])
    before = sorted(p for p in tmp_path.rglob("*"))

    with pytest.raises(SnapshotError, match="refused snapshot entry"):
        unpack(archive, work / "dest", expected_digest=digest, max_bytes=MAX)

    assert not (work / "dest").exists()
    assert list(work.iterdir()) == []  # the temporary sibling is gone too
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "outside.txt").read_text() == "secret\n"
    assert not Path("/tmp/farm-evil.py").exists()


def test_size_limit_is_exact(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    digest = hostile(archive, OK, (entry("b.bin"), b"y" * 10))
    unpack(archive, tmp_path / "dest", expected_digest=digest, max_bytes=len(b"fine\n") + 10)
    assert (tmp_path / "dest" / "b.bin").read_bytes() == b"y" * 10


def test_links_inside_the_snapshot_are_kept(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    digest = hostile(
        archive,
        (entry("pkg/mod.py"), b"x = 1\n"),
        (entry("alias.py", tarfile.SYMTYPE, "pkg/mod.py"), None),
        (entry("pkg/self", tarfile.SYMTYPE, ".."), None),
        (entry("copy.py", tarfile.LNKTYPE, "pkg/mod.py"), None),
    )
    dest = tmp_path / "dest"
    unpack(archive, dest, expected_digest=digest, max_bytes=MAX)
    assert (dest / "alias.py").read_text() == "x = 1\n"
    assert (dest / "copy.py").read_text() == "x = 1\n"
    assert os.readlink(dest / "pkg" / "self") == ".."


def test_a_subfolder_of_a_repository_packs_only_its_files(repo: Path, tmp_path: Path) -> None:
    write(repo / "src" / "extra.py", "y = 2\n")
    snap = pack(repo / "src", tmp_path / "out")
    assert sorted(members(snap.path)) == ["app.py", "extra.py"]
    committed = pack(repo / "src", tmp_path / "rev", rev="HEAD")
    assert sorted(members(committed.path)) == ["app.py"]


def test_an_output_folder_inside_the_tree_is_not_packed(repo: Path) -> None:
    first = pack(repo, repo / "snapshots")
    second = pack(repo, repo / "snapshots")
    assert "snapshots" not in {n.split("/")[0] for n in members(second.path)}
    assert first.digest == second.digest
