"""Code snapshots: one deterministic archive of the tree to test, named by its sha256.

:func:`pack` writes a gzip'd tar with sorted entries and no times, owners or user
names, so the same tree gives the same digest on every machine with the same zlib.
Only regular files and symlinks are stored (no directories: they follow from the
paths). :func:`unpack` verifies the digest first and extracts into a temporary
sibling of ``dest``, checking every entry itself (not only tarfile's ``data``
filter, which some 3.10 patch releases lack), and renames it into place at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from farm.core import defaults
from farm.core.errors import InfrastructureError, UsageError

_CHUNK = 1 << 20
_SKIP_NAMES = frozenset(
    {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)


class SnapshotError(InfrastructureError):
    """Raised when a snapshot cannot be packed, or an archive fails its checks on unpacking."""


@dataclass(frozen=True)
class Snapshot:
    """One packed archive: ``path`` is ``<out_dir>/<digest>.tar.gz``."""

    digest: str
    path: Path
    size_bytes: int
    files: int


class _HashingWriter(io.RawIOBase):
    """A file wrapper that hashes and counts what is written through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


def pack(
    root: Path, out_dir: Path, *, rev: str | None = None, state_dir_name: str = defaults.STATE_DIR
) -> Snapshot:
    """Pack ``root`` (the working tree, or commit ``rev`` of its git repository)."""
    root = root.resolve()
    if not root.is_dir():
        raise UsageError(f"cannot snapshot {root}: not a directory")
    in_git = _git(root, "rev-parse", "--is-inside-work-tree", check=False) == b"true\n"
    if rev is not None and not in_git:
        raise UsageError(f"cannot snapshot revision {rev!r}: {root} is not in a git work tree")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".snapshot-", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = _HashingWriter(raw)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=writer, mtime=0)
            with gz, tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                if rev is not None:
                    entries = _add_revision(tar, root, rev)
                else:
                    names = _git_files(root) if in_git else _walk_files(root)
                    skip = [state_dir_name]
                    if out_dir.resolve().is_relative_to(root) and out_dir.resolve() != root:
                        skip.append(out_dir.resolve().relative_to(root).as_posix())
                    names = [n for n in names if not any(_under(n, d) for d in skip)]
                    entries = _add_from_disk(tar, root, sorted(set(names)))
        digest = writer.sha.hexdigest()
        path = out_dir / f"{digest}.tar.gz"
        os.replace(tmp_name, path)
    except OSError as exc:
        raise SnapshotError(f"cannot pack {root}: {exc}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return Snapshot(digest=digest, path=path, size_bytes=writer.size, files=entries)


def git_toplevel(path: Path) -> Path | None:
    """The root of the git work tree holding ``path``, or None outside one."""
    out = _git(path, "rev-parse", "--show-toplevel", check=False).strip()
    return Path(out.decode("utf-8", "surrogateescape")).resolve() if out else None


def _under(name: str, folder: str) -> bool:
    return name == folder or name.startswith(folder + "/")


def _git(root: Path, *args: str, check: bool = True) -> bytes:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    except FileNotFoundError:  # no git installed: not a git work tree either
        if check:
            raise SnapshotError("git is not installed") from None
        return b""
    if check and proc.returncode != 0:
        raise SnapshotError(f"git {args[0]} failed in {root}: {proc.stderr.decode().strip()}")
    return proc.stdout if proc.returncode == 0 else b""


def _git_files(root: Path) -> list[str]:
    out = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def _walk_files(root: Path) -> list[str]:
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        kept = []
        for d in dirnames:
            if d in _SKIP_NAMES:
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                names.append(prefix + d)  # a symlink to a folder is stored, not followed
            else:
                kept.append(d)
        dirnames[:] = kept
        names.extend(prefix + f for f in filenames if not f.endswith(".pyc"))
    return names


def _file_info(name: str, *, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_from_disk(tar: tarfile.TarFile, root: Path, names: list[str]) -> int:
    count = 0
    for name in names:
        full = root / name
        try:
            st = full.lstat()
        except FileNotFoundError:
            continue  # tracked but deleted in the working tree
        info = _file_info(name, executable=bool(st.st_mode & 0o111))
        if stat.S_ISLNK(st.st_mode):
            info.type, info.mode = tarfile.SYMTYPE, 0o777
            info.linkname = os.readlink(full)
            tar.addfile(info)
        elif stat.S_ISREG(st.st_mode):
            info.size = st.st_size
            with open(full, "rb") as f:
                tar.addfile(info, f)
        else:
            continue  # folders (submodules), sockets, fifos: not code
        count += 1
    return count


def _add_revision(tar: tarfile.TarFile, root: Path, rev: str) -> int:
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if not commit:
        raise UsageError(f"unknown git revision {rev!r} in {root}")
    listing = _git(root, "ls-tree", "-r", "-z", commit.decode().strip())
    entries: list[tuple[str, str, str]] = []
    for line in listing.decode("utf-8", "surrogateescape").split("\0"):
        if line:
            meta, name = line.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind == "blob":  # commits are submodules: not stored
                entries.append((name, mode, sha))
    entries.sort()
    with subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        for name, mode, data in _blobs(proc.stdin, proc.stdout, entries):
            info = _file_info(name, executable=mode == "100755")
            if mode == "120000":
                info.type, info.mode = tarfile.SYMTYPE, 0o777
                info.linkname = data.decode("utf-8", "surrogateescape")
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        proc.stdin.close()
    return len(entries)


def _blobs(
    stdin: IO[bytes], stdout: IO[bytes], entries: list[tuple[str, str, str]]
) -> Iterator[tuple[str, str, bytes]]:
    for name, mode, sha in entries:
        stdin.write(sha.encode() + b"\n")
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise SnapshotError(f"git cat-file could not read {name}")
        data = stdout.read(int(header[2]))
        stdout.read(1)  # the newline after each object
        yield name, mode, data


def file_digest(path: Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def unpack(archive: Path, dest: Path, *, expected_digest: str, max_bytes: int) -> None:
    """Verify ``archive`` against ``expected_digest`` and extract it as the new folder ``dest``."""
    try:
        with open(archive, "rb") as f:
            sha = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
            if sha.hexdigest() != expected_digest.lower():
                raise SnapshotError(
                    f"snapshot {archive} has digest {sha.hexdigest()}, expected {expected_digest}"
                )
            if os.path.lexists(dest):
                raise SnapshotError(f"cannot unpack snapshot into {dest}: it already exists")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
            try:
                f.seek(0)
                _extract(f, tmp, max_bytes)
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise SnapshotError(f"cannot unpack snapshot {archive}: {exc}") from exc


def _clean_name(name: str, what: str) -> str:
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise SnapshotError(f"refused snapshot entry {what!r}: absolute or unsafe path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise SnapshotError(f"refused snapshot entry {what!r}: path leaves the snapshot")
    return "/".join(parts)


def _inside(root: Path, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def _parent_dir(tmp: Path, name: str) -> Path:
    """Create the folders of ``name`` under ``tmp``, refusing to pass through a symlink."""
    parent = tmp
    for part in name.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise SnapshotError(f"refused snapshot entry {name!r}: its path goes through a link")
        parent.mkdir(exist_ok=True)
    return parent


def _extract(f: IO[bytes], tmp: Path, max_bytes: int) -> None:
    total = 0
    links: list[tuple[str, Path]] = []
    with tarfile.open(fileobj=f, mode="r|gz") as tar:
        for member in tar:
            name = _clean_name(member.name, member.name)
            target = _parent_dir(tmp, name) / name.rsplit("/", 1)[-1]
            if os.path.lexists(target):
                raise SnapshotError(f"refused snapshot entry {name!r}: it appears twice")
            if member.isdir():
                target.mkdir(mode=0o755)
            elif member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                if total + member.size > max_bytes:
                    raise SnapshotError(
                        f"refused snapshot entry {name!r}: the snapshot is over {max_bytes} bytes"
                    )
                total += _write_file(tar, member, target)
            elif member.issym():
                link = member.linkname
                if link.startswith("/") or not _inside(tmp, str(target.parent / link)):
                    raise SnapshotError(f"refused snapshot entry {name!r}: link leaves snapshot")
                os.symlink(link, target)
                links.append((name, target))
            elif member.islnk():
                source = tmp / _clean_name(member.linkname, name)
                if not _inside(tmp, str(source)) or not stat.S_ISREG(source.lstat().st_mode):
                    raise SnapshotError(f"refused snapshot entry {name!r}: bad hard link")
                os.link(source, target, follow_symlinks=False)
            else:
                raise SnapshotError(f"refused snapshot entry {name!r}: not a file or link")
    for name, target in links:  # a chain of links can leave although each step looked inside
        if not _inside(tmp, str(target)):
            raise SnapshotError(f"refused snapshot entry {name!r}: link leaves snapshot")


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> int:
    source = tar.extractfile(member)
    assert source is not None
    mode = 0o755 if member.mode & 0o111 else 0o644
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while written < member.size:
            chunk = source.read(min(_CHUNK, member.size - written))
            if not chunk:
                raise SnapshotError(f"snapshot entry {member.name!r} is truncated")
            out.write(chunk)
            written += len(chunk)
    return written
