"""Stored trees, the form caches and artifacts keep files in: a selection of a workspace
saved as private copies under a manifest that seals it, checked before it is handed on.

A stored tree is <dir>/data/... plus <dir>/manifest.json, written last: a directory without a
readable manifest is never used. Files enter a tree as private copies of the finished job's
files and leave it as private copies (reflinks where the file system shares blocks, see
file_copies.clone_file): a stored file never shares an inode with a workspace or with anything
outside, so no job can change what another job or a later run receives. The manifest records
each file's inode, size, mtime and mode, so a file changed after saving is detected
(verify_tree) instead of being handed on. Small text files containing the saving workspace's
path are rewritten for the restoring one (tree_restore.py)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localci.execute.file_copies import copy_and_read, copy_file, in_threads
from localci.execute.path_selection import safe_relative
from localci.execute.process import process_alive
from localci.files import atomic_write_json, remove_tree

FILE, LINK, DIR = "f", "l", "d"
MANIFEST = "manifest.json"
DATA = "data"
FORMAT = 1
#: Files up to this size are hashed and scanned for the workspace path when saved.
SMALL_FILE = 1 << 20
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One path of a stored tree; `ino` is the stored file's inode, `reloc` marks a text file
    that contains the saving workspace's path."""

    path: str
    kind: str
    mode: int
    size: int = 0
    mtime_ns: int = 0
    ino: int = 0
    digest: str = ""
    reloc: bool = False
    target: str = ""

    def as_json(self) -> list[object]:
        return [
            self.path,
            self.kind,
            self.mode,
            self.size,
            self.mtime_ns,
            self.ino,
            self.digest,
            int(self.reloc),
            self.target,
        ]

    @classmethod
    def from_json(cls, raw: list[Any]) -> TreeEntry:
        path, kind, mode, size, mtime, ino, digest, reloc, target = raw
        return cls(
            str(path), str(kind), int(mode), int(size), int(mtime), int(ino), str(digest),
            bool(reloc), str(target),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Manifest:
    """The seal of a stored tree: where it was saved from and every path in it."""

    id: str
    project_dir: str
    builds_dir: str
    entries: tuple[TreeEntry, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries if e.kind == FILE)

    @property
    def size_bytes(self) -> int:
        return sum(e.size for e in self.entries if e.kind == FILE)

    def as_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "id": self.id,
            "project_dir": self.project_dir,
            "builds_dir": self.builds_dir,
            "meta": dict(self.meta),
            "entries": [e.as_json() for e in self.entries],
        }


def new_id() -> str:
    return os.urandom(8).hex()


def read_manifest(tree_dir: Path) -> Manifest | None:
    """The manifest of a stored tree; None when it is missing or damaged (never trusted)."""
    try:
        raw = json.loads((tree_dir / MANIFEST).read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            return None
        entries = tuple(TreeEntry.from_json(item) for item in raw["entries"])
        manifest = Manifest(
            str(raw["id"]),
            str(raw["project_dir"]),
            str(raw["builds_dir"]),
            entries,
            dict(raw.get("meta") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(safe_relative(e.path) and e.kind in (FILE, LINK, DIR) for e in entries):
        return None
    return manifest


def seal(tree_dir: Path, manifest: Manifest, *, durable: bool = True) -> None:
    """Write the manifest, the last step that makes a stored tree usable."""
    atomic_write_json(tree_dir / MANIFEST, manifest.as_json(), durable=durable)


def reloc_marker(project_dir: Path, builds_dir: Path | None) -> bytes:
    """What a file must contain to need rewriting when restored elsewhere."""
    if builds_dir is not None and builds_dir in project_dir.parents:
        return os.fsencode(str(builds_dir))
    return os.fsencode(str(project_dir))


def write_tree(
    src_root: Path,
    paths: Sequence[str],
    data_dir: Path,
    *,
    marker: bytes,
    known: Mapping[str, TreeEntry],
) -> list[TreeEntry]:
    """Store copies of `paths` of `src_root` below `data_dir`.

    `known` holds entries of an earlier tree of the same paths: a file with the same inode,
    size and mtime keeps its digest and relocation flag without being read again.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    made: set[str] = {""}
    entries: list[TreeEntry | None] = []
    files: list[tuple[int, str, os.stat_result]] = []  # (position in entries, path, stat)
    for rel in paths:
        src = f"{src_root}/{rel}"
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            continue
        _make_parents(data_dir, rel, made)
        dst = f"{data_dir}/{rel}"
        if stat.S_ISDIR(st.st_mode):
            if rel not in made:
                Path(dst).mkdir(0o700)
                made.add(rel)
            entries.append(TreeEntry(rel, DIR, stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns))
        elif stat.S_ISLNK(st.st_mode):
            target = read_link(src)
            Path(dst).symlink_to(target)
            entries.append(TreeEntry(rel, LINK, 0o777, target=target))
        elif stat.S_ISREG(st.st_mode):
            files.append((len(entries), rel, st))
            entries.append(None)
    stored = in_threads(
        lambda f: _store_file(
            f[1], f"{src_root}/{f[1]}", f"{data_dir}/{f[1]}", f[2], marker, known.get(f[1])
        ),
        files,
    )
    for (position, _, _), entry in zip(files, stored, strict=True):
        entries[position] = entry
    return [entry for entry in entries if entry is not None]


def read_link(path: str) -> str:
    # Path.readlink() would normalise the target ("a/./b/" -> "a/b"); links must stay exact.
    return os.readlink(path)  # noqa: PTH115


def _make_parents(data_dir: Path, rel: str, made: set[str]) -> None:
    parent = rel.rpartition("/")[0]
    if parent in made:
        return
    missing: list[str] = []
    while parent not in made:
        missing.append(parent)
        parent = parent.rpartition("/")[0]
    for directory in reversed(missing):
        Path(f"{data_dir}/{directory}").mkdir(0o700)
        made.add(directory)


def _store_file(
    rel: str,
    src: str,
    dst: str,
    st: os.stat_result,
    marker: bytes,
    old: TreeEntry | None,
) -> TreeEntry | None:
    """None when `src` stopped being a regular file (a job's leftover process swapped it)."""
    mode = stat.S_IMODE(st.st_mode)
    reuse = (
        old is not None
        and old.kind == FILE
        and (old.ino, old.size, old.mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    )
    digest, reloc = (old.digest, old.reloc) if old is not None and reuse else ("", False)
    if reuse or st.st_size > SMALL_FILE:
        stored = copy_file(src, dst, mode, st.st_mtime_ns)
    else:
        copied = copy_and_read(src, dst, mode, st.st_mtime_ns, limit=SMALL_FILE + 1)
        stored = copied[0] if copied is not None else None
        if copied is not None and len(copied[1]) <= SMALL_FILE:
            digest, reloc = _describe(copied[1], marker)
    if stored is None:
        return None
    return TreeEntry(
        rel,
        FILE,
        mode,
        stored.st_size,  # the copy's: the file may have changed since it was listed
        st.st_mtime_ns,
        stored.st_ino,
        digest,
        reloc,
    )


def _describe(data: bytes, marker: bytes) -> tuple[str, bool]:
    """The digest of a small file's bytes, and whether it holds `marker` (and is text)."""
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return digest, bool(marker) and marker in data and b"\0" not in data


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as handle:  # noqa: PTH123 - hot loop over many small files
            data = handle.read(SMALL_FILE + 1)
    except OSError:
        return ""
    return _describe(data, b"")[0]


def verify_tree(tree_dir: Path, manifest: Manifest) -> str | None:
    """The first path whose stored content no longer is what the manifest says, else None.

    A file whose stat changed still passes when its content and mode are unchanged (a tool
    that rewrote a stored file with the same bytes).
    """
    data = f"{tree_dir}/{DATA}"
    for entry in manifest.entries:
        path = f"{data}/{entry.path}"
        try:
            st = os.lstat(path)
        except OSError:
            return entry.path
        if entry.kind == FILE:
            if not _file_matches(path, st, entry):
                return entry.path
        elif entry.kind == LINK:
            if not stat.S_ISLNK(st.st_mode) or read_link(path) != entry.target:
                return entry.path
        elif not stat.S_ISDIR(st.st_mode):
            return entry.path
    return None


def _file_matches(path: str, st: os.stat_result, entry: TreeEntry) -> bool:
    if not stat.S_ISREG(st.st_mode) or st.st_ino != entry.ino:
        return False
    if (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)) == (
        entry.size,
        entry.mtime_ns,
        entry.mode,
    ):
        return True
    same_shape = st.st_size == entry.size and stat.S_IMODE(st.st_mode) == entry.mode
    return same_shape and bool(entry.digest) and _digest(path) == entry.digest


# ------------------------------------------------------------------------ temp and stale trees


def temp_dir(parent: Path) -> Path:
    """A fresh hidden directory for building a tree; the pid lets cleanup spot dead writers."""
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    path.mkdir()
    return path


def retire(path: Path) -> Path:
    """Move a tree out of the way (under the caller's lock) so it can be deleted unlocked."""
    old = path.parent / f"{OLD_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
    path.rename(old)
    return old


def clean_stale(parent: Path) -> None:
    """Remove temp and retired trees whose writer process is gone."""
    try:
        items = list(os.scandir(parent))
    except OSError:
        return
    for item in items:
        for prefix in (TMP_PREFIX, OLD_PREFIX):
            if not item.name.startswith(prefix):
                continue
            pid = item.name[len(prefix) :].partition("-")[0]
            if not pid.isdigit() or not _alive(int(pid)):
                remove_tree(Path(item.path))


def _alive(pid: int) -> bool:
    return pid == os.getpid() or process_alive(pid)
