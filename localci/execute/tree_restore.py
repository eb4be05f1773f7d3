"""Restoring a stored tree (stored_trees.py) into a workspace: private copies, never written
through a symlink, with the saving workspace's paths rewritten for the restoring one."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localci.execute.file_copies import copy_file, in_threads
from localci.execute.stored_trees import DATA, DIR, FILE, LINK, Manifest, TreeEntry
from localci.files import remove_tree


@dataclass(frozen=True)
class Relocator:
    """Rewrites the saving workspace's paths into the restoring workspace's."""

    pattern: re.Pattern[bytes]
    mapping: Mapping[bytes, bytes]

    def __call__(self, data: bytes) -> bytes:
        return self.pattern.sub(lambda m: self.mapping[m.group(0)], data)

    def target(self, text: str) -> str:
        return os.fsdecode(self(os.fsencode(text)))


def relocator(manifest: Manifest, project_dir: Path, builds_dir: Path | None) -> Relocator | None:
    """None when the tree is restored where it was saved from."""
    pairs: dict[bytes, bytes] = {}
    if manifest.project_dir and manifest.project_dir != str(project_dir):
        pairs[os.fsencode(manifest.project_dir)] = os.fsencode(str(project_dir))
    if manifest.builds_dir and builds_dir is not None and manifest.builds_dir != str(builds_dir):
        pairs[os.fsencode(manifest.builds_dir)] = os.fsencode(str(builds_dir))
    if not pairs:
        return None
    # Longest first, and never inside a longer name (slot 1 must not match in slot 10).
    alternatives = b"|".join(re.escape(old) for old in sorted(pairs, key=len, reverse=True))
    return Relocator(re.compile(b"(?:" + alternatives + rb")(?![A-Za-z0-9_])"), pairs)


@dataclass(frozen=True, slots=True)
class Restored:
    """What restore_tree did: how many files it wrote, how many of them relocated."""

    files: int
    relocated: int


def restore_tree(
    tree_dir: Path,
    manifest: Manifest,
    dest: Path,
    *,
    relocate: Relocator | None = None,
) -> Restored:
    """Put private copies of a stored tree into `dest`, replacing what is there; never writes
    through a symlink. Files that contain the saving workspace's path are relocated when
    `relocate` is given."""
    data = f"{tree_dir}/{DATA}"
    dest.mkdir(parents=True, exist_ok=True)
    _restore_dirs(dest, manifest.entries)
    files = [e for e in manifest.entries if e.kind == FILE]
    moved = [e for e in files if e.reloc and relocate is not None]
    for entry in moved:
        assert relocate is not None
        _write_relocated(f"{data}/{entry.path}", f"{dest}/{entry.path}", entry, relocate)
    plain = [e for e in files if not (e.reloc and relocate is not None)]
    in_threads(lambda e: _restore_copy(f"{data}/{e.path}", f"{dest}/{e.path}", e), plain)
    for entry in manifest.entries:
        if entry.kind == LINK:
            dst = f"{dest}/{entry.path}"
            _replace(dst)
            Path(dst).symlink_to(relocate.target(entry.target) if relocate else entry.target)
    _apply_dir_modes(dest, manifest.entries)
    return Restored(len(files), len(moved))


def _restore_copy(src: str, dst: str, entry: TreeEntry) -> None:
    _replace(dst)
    if copy_file(src, dst, entry.mode, entry.mtime_ns) is None:
        raise OSError(errno.EIO, "a stored file is no longer a regular file", src)


def _restore_dirs(dest: Path, entries: Sequence[TreeEntry]) -> None:
    needed: set[str] = set()
    for entry in entries:
        parent = entry.path if entry.kind == DIR else entry.path.rpartition("/")[0]
        while parent and parent not in needed:
            needed.add(parent)
            parent = parent.rpartition("/")[0]
    # Parents first, each checked once: nothing below a replaced symlink is ever reached.
    for rel in sorted(needed, key=lambda p: (p.count("/"), p)):
        _ensure_dir(f"{dest}/{rel}")


def _ensure_dir(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        Path(path).mkdir()
        return
    if stat.S_ISDIR(st.st_mode):
        if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            Path(path).chmod(stat.S_IMODE(st.st_mode) | 0o700)
        return
    Path(path).unlink()
    Path(path).mkdir()


def _apply_dir_modes(dest: Path, entries: Sequence[TreeEntry]) -> None:
    dirs = [e for e in entries if e.kind == DIR]
    for entry in sorted(dirs, key=lambda e: e.path.count("/"), reverse=True):
        path = f"{dest}/{entry.path}"
        with contextlib.suppress(OSError):
            if stat.S_IMODE(os.lstat(path).st_mode) != entry.mode:
                Path(path).chmod(entry.mode)


def _write_relocated(src: str, dst: str, entry: TreeEntry, relocate: Relocator) -> None:
    with open(src, "rb") as handle:  # noqa: PTH123 - same style as the other file loops
        data = relocate(handle.read())
    _replace(dst)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(dst, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
        os.fchmod(out, entry.mode)
        os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns))
    finally:
        os.close(out)


def _replace(path: str) -> None:
    """Make room at `path` (a file, a symlink, or a whole directory)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(Path(path))
    else:
        Path(path).unlink()
