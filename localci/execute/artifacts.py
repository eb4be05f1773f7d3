"""Artifacts (docs/SEMANTICS.md §14) and the file trees caches share with them: selecting paths as
gitlab-runner's archiver does, storing a selection as a manifest-sealed tree, restoring it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from localci.errors import ConfigError, GitError, Problem, StateError, UsageError
from localci.files import atomic_write_json, remove_tree, state_error
from localci.git import run_git
from localci.globs import doublestar_match, glob_tree, project_relative_pattern
from localci.plan.variables import expand_runner
from localci.state import Store

FILE, LINK, DIR = "f", "l", "d"
MANIFEST = "manifest.json"
DATA = "data"
REPORTS = "reports"
FORMAT = 1
#: Files up to this size are hashed and scanned for the workspace path when saved.
SMALL_FILE = 1 << 20
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
_CHUNK = 1 << 20
_T = TypeVar("_T")
_R = TypeVar("_R")


class TransferError(ConfigError):
    """A cache or artifacts definition the job cannot use (bad key, path outside the project)."""


def transfer_error(job: str, message: str, hint: str | None = None) -> TransferError:
    return TransferError(Problem(message, job=job, hint=hint))


# ------------------------------------------------------------------------------------ selection


@dataclass(frozen=True, slots=True)
class Selection:
    """Relative paths (files, symlinks, directories) chosen from a workspace, sorted."""

    paths: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def select_paths(
    root: Path,
    patterns: Sequence[str],
    env: Mapping[str, str],
    *,
    job: str,
    what: str,
    untracked: bool = False,
    exclude: Sequence[str] = (),
) -> Selection:
    """What gitlab-runner's archiver takes for `paths`/`untracked`/`exclude` (§13, §14).

    Patterns are runner-expanded with `env`, may name `$CI_PROJECT_DIR/...`, and are doublestar
    globs; a matched directory is taken recursively, symlinks are taken as links and never
    followed. `exclude` patterns drop the paths they match (not what lies below them).
    TransferError (naming `job` and `what`) when a pattern leaves the project directory.
    """
    found: set[str] = set()
    warnings: list[str] = []
    for raw in patterns:
        pattern = _project_pattern(root, raw, env, job=job, what=what)
        if pattern is None:
            continue
        matches = _glob(root, pattern)
        if not matches:
            warnings.append(f"{raw}: no matching files")
        for match in matches:
            found.update(_expand_match(root, match))
    if untracked:
        listed, problem = _untracked(root)
        warnings.extend(problem)
        for path in listed:
            found.update(_expand_match(root, path))
    drop = [p for p in (_exclude_pattern(root, e, env) for e in exclude) if p]
    kept = sorted(
        p
        for p in found
        if p not in (".", ".git")
        and not p.startswith(".git/")
        and not any(doublestar_match(e, p) for e in drop)
    )
    return Selection(tuple(kept), tuple(warnings))


def check_patterns(
    root: Path, patterns: Sequence[str], env: Mapping[str, str], *, job: str, what: str
) -> None:
    """Refuse patterns that leave the project (before the job runs, so it fails fast)."""
    for raw in patterns:
        _project_pattern(root, raw, env, job=job, what=what)


def _project_pattern(
    root: Path, raw: str, env: Mapping[str, str], *, job: str, what: str
) -> str | None:
    expanded = expand_runner(raw, env)
    if not expanded.strip():
        return None
    try:
        pattern = project_relative_pattern(root, expanded)
    except ValueError:
        raise transfer_error(
            job,
            f"{what} path {raw!r} is outside the project directory",
            "paths are relative to $CI_PROJECT_DIR and may not leave it",
        ) from None
    _refuse_symlink_escape(root, pattern, raw, job=job, what=what)
    return pattern


def _refuse_symlink_escape(root: Path, pattern: str, raw: str, *, job: str, what: str) -> None:
    """A literal directory of the pattern that is a symlink leading out of the project."""
    if pattern == ".":
        return
    current = root
    for segment in pattern.split("/"):
        if any(c in segment for c in "*?[{\\"):
            return
        current = current / segment
        if not current.is_symlink():
            if not current.is_dir():
                return
            continue
        target = Path(os.path.realpath(current))
        if not _inside(target, root):
            raise transfer_error(
                job,
                f"{what} path {raw!r} goes through symlink {current.relative_to(root)} "
                f"to {target}, outside the project directory",
            )
        return


def _inside(path: Path, root: Path) -> bool:
    real_root = Path(os.path.realpath(root))
    return path == real_root or real_root in path.parents


def _exclude_pattern(root: Path, raw: str, env: Mapping[str, str]) -> str | None:
    try:
        return project_relative_pattern(root, expand_runner(raw, env))
    except ValueError:
        return None  # an exclude outside the project can exclude nothing


def _glob(root: Path, pattern: str) -> list[str]:
    try:
        return glob_tree(root, pattern)
    except ValueError:
        return []  # a malformed pattern matches nothing, as in the runner


def _expand_match(root: Path, rel: str) -> list[str]:
    if rel == ".":
        return _walk(root, "")
    try:
        st = os.lstat(root / rel)
    except OSError:
        return []
    if stat.S_ISDIR(st.st_mode):
        return [rel, *_walk(root, rel)]
    return [rel]


def _walk(root: Path, rel: str) -> list[str]:
    found: list[str] = []
    pending = [rel]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(f"{root}/{current}" if current else root) as scan:
                items = list(scan)
        except OSError:
            continue
        for item in items:
            path = f"{current}/{item.name}" if current else item.name
            found.append(path)
            if item.is_dir(follow_symlinks=False):
                pending.append(path)
    return found


def _untracked(root: Path) -> tuple[list[str], list[str]]:
    """`git ls-files -o` as the runner runs it: ignored files are included."""
    try:
        proc = run_git(root, "ls-files", "-o", "-z")
    except GitError as exc:
        return [], [f"untracked files cannot be listed: {exc}"]
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        return [], [f"untracked files cannot be listed: {detail}"]
    paths = (os.fsdecode(raw).rstrip("/") for raw in proc.stdout.split(b"\0") if raw)
    return [p for p in paths if _safe_rel(p)], []


# ---------------------------------------------------------------------------------- stored trees
#
# A stored tree is <dir>/data/... plus <dir>/manifest.json, written last: a directory without a
# readable manifest is never used. Files enter a tree as private copies of the finished job's
# files and leave it as private copies (reflinks where the file system shares blocks, see
# clone_file): a stored file never shares an inode with a workspace or with anything outside,
# so no job can change what another job or a later run receives. The manifest records each
# file's inode, size, mtime and mode, so a file changed after saving is detected (verify_tree)
# instead of being handed on. Small text files containing the saving workspace's path are
# rewritten for the restoring one.


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
    if not all(_safe_rel(e.path) and e.kind in (FILE, LINK, DIR) for e in entries):
        return None
    return manifest


def _safe_rel(path: str) -> bool:
    if not path or path.startswith("/") or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


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
            target = _readlink(src)
            Path(dst).symlink_to(target)
            entries.append(TreeEntry(rel, LINK, 0o777, target=target))
        elif stat.S_ISREG(st.st_mode):
            files.append((len(entries), rel, st))
            entries.append(None)
    stored = _in_threads(
        lambda f: _store_file(
            f[1], f"{src_root}/{f[1]}", f"{data_dir}/{f[1]}", f[2], marker, known.get(f[1])
        ),
        files,
    )
    for (position, _, _), entry in zip(files, stored, strict=True):
        entries[position] = entry
    return [entry for entry in entries if entry is not None]


def _readlink(path: str) -> str:
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
        stored = _copy_file(src, dst, mode, st.st_mtime_ns)
    else:
        copied = _copy_and_read(src, dst, mode, st.st_mtime_ns)
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


_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _copy_file(src: str, dst: str, mode: int, mtime_ns: int) -> os.stat_result | None:
    """A private copy of regular file `src` at new path `dst`; None if `src` is not one."""
    with _regular_source(src) as source:
        if source is None:
            return None
        return _new_copy(dst, mode, mtime_ns, lambda out: clone_file(source, out))


def _copy_and_read(
    src: str, dst: str, mode: int, mtime_ns: int
) -> tuple[os.stat_result, bytes] | None:
    """_copy_file that also returns the first SMALL_FILE + 1 bytes: one open for both."""
    with _regular_source(src) as source:
        if source is None:
            return None
        head = _read_up_to(source, SMALL_FILE + 1)

        def fill(out: int) -> None:
            _write_all(out, head)
            _copy_rest(source, out)  # a file that grew since it was listed

        return _new_copy(dst, mode, mtime_ns, fill), head


@contextmanager
def _regular_source(src: str) -> Iterator[int | None]:
    """`src` opened for reading, or None when it is not a regular file. O_NOFOLLOW and
    O_NONBLOCK: a symlink or fifo swapped in for the file is never followed or waited on."""
    try:
        source = os.open(src, _READ_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            yield None
            return
        raise
    try:
        yield source if stat.S_ISREG(os.fstat(source).st_mode) else None
    finally:
        os.close(source)


def _new_copy(dst: str, mode: int, mtime_ns: int, fill: Callable[[int], None]) -> os.stat_result:
    out = os.open(dst, _NEW_FLAGS, 0o600)
    try:
        fill(out)
        os.fchmod(out, mode)
        os.utime(out, ns=(mtime_ns, mtime_ns))
        return os.fstat(out)
    finally:
        os.close(out)


def _read_up_to(fd: int, limit: int) -> bytes:
    parts: list[bytes] = []
    left = limit
    while left > 0 and (chunk := os.read(fd, min(left, _CHUNK))):
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)


def clone_file(src: int, out: int) -> None:
    """Copy `src` into the empty `out`: a reflink where the file system has them (btrfs, XFS,
    bcachefs: instant, blocks shared copy-on-write, so still private), else copy_file_range
    (in-kernel), else reads and writes."""
    # A refused ioctl costs about a microsecond; trying per file keeps mixed mounts right.
    with contextlib.suppress(OSError):
        fcntl.ioctl(out, _FICLONE, src)
        return
    _copy_rest(src, out)


def _copy_rest(src: int, out: int) -> None:
    """Copy from both files' current offsets to the end of `src`."""
    try:
        while os.copy_file_range(src, out, _CHUNK):
            pass
    except OSError:  # no copy_file_range here: plain reads from where it stopped
        while chunk := os.read(src, _CHUNK):
            _write_all(out, chunk)


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
            if not stat.S_ISLNK(st.st_mode) or _readlink(path) != entry.target:
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
    _in_threads(lambda e: _restore_copy(f"{data}/{e.path}", f"{dest}/{e.path}", e), plain)
    for entry in manifest.entries:
        if entry.kind == LINK:
            dst = f"{dest}/{entry.path}"
            _replace(dst)
            Path(dst).symlink_to(relocate.target(entry.target) if relocate else entry.target)
    _apply_dir_modes(dest, manifest.entries)
    return Restored(len(files), len(moved))


def _restore_copy(src: str, dst: str, entry: TreeEntry) -> None:
    _replace(dst)
    if _copy_file(src, dst, entry.mode, entry.mtime_ns) is None:
        raise OSError(errno.EIO, "a stored file is no longer a regular file", src)


def _in_threads(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`[fn(item) for item in items]` in 4 threads (in order; the first error is raised)."""
    # Creating files dominates (~150 us each on a VM's ext4); the syscalls overlap in threads.
    if len(items) < 64:
        return [fn(item) for item in items]
    batches = [items[i : i + 64] for i in range(0, len(items), 64)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda batch: [fn(item) for item in batch], batches)
        return [result for batch in done for result in batch]


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
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------------------- artifacts


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """One job's artifacts in one pipeline, for `localci artifacts`."""

    pipeline_id: int
    job: str
    name: str
    files: int
    size_bytes: int
    created_at: str
    expire_at: str | None
    expired: bool
    reports: tuple[str, ...]
    path: Path


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A job's stored artifacts record: its archive (maybe none), reports and dotenv."""

    pipeline_id: int
    path: Path
    manifest: Manifest

    @property
    def job(self) -> str:
        return str(self.manifest.meta.get("job", ""))

    @property
    def has_archive(self) -> bool:
        return bool(self.manifest.meta.get("archive")) and bool(self.manifest.entries)

    @property
    def dotenv(self) -> dict[str, str]:
        raw = self.manifest.meta.get("dotenv") or {}
        return {str(k): str(v) for k, v in raw.items()}

    def expired(self, now: float | None = None) -> bool:
        expire_at = self.manifest.meta.get("expire_at")
        return expire_at is not None and float(expire_at) <= (now or time.time())

    def info(self) -> ArtifactInfo:
        meta = self.manifest.meta
        expire_at = meta.get("expire_at")
        reports = meta.get("reports") or {}
        return ArtifactInfo(
            pipeline_id=self.pipeline_id,
            job=self.job,
            name=str(meta.get("name") or "artifacts"),
            files=self.manifest.files if self.has_archive else 0,
            size_bytes=self.manifest.size_bytes if self.has_archive else 0,
            created_at=str(meta.get("created_at", "")),
            expire_at=None if expire_at is None else iso_time(float(expire_at)),
            expired=self.expired(),
            reports=tuple(f"{kind}: {path}" for kind, paths in reports.items() for path in paths),
            path=self.path / DATA,
        )


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_dir_name(job: str) -> str:
    """The directory of a job's artifacts: its name made file-safe, disambiguated if changed."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job).strip("_.") or "job"
    if safe == job:
        return safe
    return f"{safe[:100]}-{hashlib.sha1(job.encode()).hexdigest()[:8]}"  # noqa: S324 - a name


def artifacts_root(store: Store, pipeline_id: int) -> Path:
    return store.pipeline_dir(pipeline_id) / "artifacts"


def _lock(pipeline_id: int) -> str:
    return f"artifacts-{pipeline_id}"


@dataclass(frozen=True, slots=True)
class ArtifactUpload:
    """What a finished job hands to save_artifacts."""

    job: str
    project_dir: Path
    builds_dir: Path | None
    archive: Sequence[str] | None  # selected paths, None when artifacts:when did not match
    reports: Mapping[str, Sequence[str]]  # report type -> paths relative to project_dir
    meta: Mapping[str, Any]


def save_artifacts(store: Store, pipeline_id: int, upload: ArtifactUpload) -> Manifest:
    """Store a job's artifacts record for this pipeline atomically (a retry replaces it)."""
    root = artifacts_root(store, pipeline_id)
    try:
        clean_stale(root)
        tmp = temp_dir(root)
        manifest = _build_record(tmp, upload)
        _swap(store, _lock(pipeline_id), tmp, root / job_dir_name(upload.job))
    except OSError as exc:
        raise state_error(Path(exc.filename or root), exc, "store artifacts in") from exc
    return manifest


def _build_record(tmp: Path, upload: ArtifactUpload) -> Manifest:
    marker = reloc_marker(upload.project_dir, upload.builds_dir)
    entries: list[TreeEntry] = []
    if upload.archive is not None:
        entries = write_tree(
            upload.project_dir, upload.archive, tmp / DATA, marker=marker, known={}
        )
    for kind, paths in upload.reports.items():
        for rel in paths:
            _copy_report(upload.project_dir / rel, tmp / REPORTS / job_dir_name(kind) / rel)
    meta = {
        **upload.meta,
        "job": upload.job,
        "archive": upload.archive is not None,
        "reports": {kind: list(paths) for kind, paths in upload.reports.items()},
    }
    manifest = Manifest(
        new_id(),
        str(upload.project_dir),
        str(upload.builds_dir or ""),
        tuple(entries),
        meta,
    )
    # A record of no files is only a marker, cheaper to lose in a crash than to fsync per job.
    seal(tmp, manifest, durable=bool(entries or upload.reports))
    return manifest


def _copy_report(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode) and not dst.exists():
        _copy_file(str(src), str(dst), 0o644, st.st_mtime_ns)


def _swap(store: Store, lock: str, tmp: Path, dest: Path) -> None:
    old = None
    with store.lock(lock):
        if dest.exists() or dest.is_symlink():
            old = retire(dest)
        tmp.rename(dest)
    if old is not None:
        remove_tree(old)


@contextmanager
def reading(store: Store, pipeline_id: int) -> Iterator[None]:
    """Hold the pipeline's artifacts lock shared while a record is read or restored."""
    with store.lock(_lock(pipeline_id), shared=True):
        yield


def read_record(store: Store, pipeline_id: int, job: str) -> ArtifactRecord | None:
    """The job's artifacts record in one pipeline (None if it did not run there)."""
    path = artifacts_root(store, pipeline_id) / job_dir_name(job)
    manifest = read_manifest(path)
    if manifest is None or manifest.meta.get("job") != job:
        return None
    return ArtifactRecord(pipeline_id, path, manifest)


def find_record(
    store: Store, pipeline_id: int, job: str, *, previous: bool
) -> ArtifactRecord | None:
    """This pipeline's record of `job`, else (when `previous`) the latest earlier one."""
    record = read_record(store, pipeline_id, job)
    if record is not None or not previous:
        return record
    for earlier in sorted((i for i in pipeline_ids(store) if i < pipeline_id), reverse=True):
        record = read_record(store, earlier, job)
        if record is not None:
            return record
    return None


def pipeline_ids(store: Store) -> list[int]:
    try:
        names = [p.name for p in store.path("pipelines").iterdir()]
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def _records(store: Store, pipeline_id: int) -> list[ArtifactRecord]:
    root = artifacts_root(store, pipeline_id)
    try:
        dirs = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    records = []
    for path in dirs:
        manifest = read_manifest(path)
        if manifest is not None and (manifest.entries or manifest.meta.get("reports")):
            records.append(ArtifactRecord(pipeline_id, path, manifest))
    return records


def list_artifacts(store: Store, pipeline_id: int | None, job: str | None) -> list[ArtifactInfo]:
    """Artifacts of one pipeline (None: the latest pipeline that has any), maybe one job's."""
    ids = [pipeline_id] if pipeline_id is not None else sorted(pipeline_ids(store), reverse=True)
    for candidate in ids:
        records = [r for r in _records(store, candidate) if job is None or r.job == job]
        if records or pipeline_id is not None:
            return [r.info() for r in records]
    return []


def copy_artifacts(store: Store, pipeline_id: int | None, job: str, dest: Path) -> list[Path]:
    """Copy a job's artifact files into `dest` (plain copies); the paths written."""
    infos = list_artifacts(store, pipeline_id, job)
    if not infos or not infos[0].files:
        where = f"pipeline #{pipeline_id}" if pipeline_id is not None else "any pipeline"
        raise UsageError(f"no artifacts of job {job!r} in {where}")
    record = read_record(store, infos[0].pipeline_id, job)
    if record is None:
        raise UsageError(f"the artifacts of job {job!r} were removed meanwhile")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with reading(store, record.pipeline_id):
            if verify_tree(record.path, record.manifest) is not None:
                raise StateError(f"the stored artifacts of {job!r} were changed after saving")
            restore_tree(record.path, record.manifest, dest)
    except OSError as exc:
        raise state_error(Path(exc.filename or dest), exc, "copy artifacts to") from exc
    return [dest / e.path for e in record.manifest.entries if e.kind != DIR]


def expire_at(expire_in: str | None, now: float) -> float | None:
    """When artifacts expire; None for `never`, no `expire_in`, or an unreadable one."""
    from localci.execute.durations import parse_duration

    seconds = parse_duration(expire_in) if expire_in else None
    return None if seconds is None else now + seconds


def report_files(
    root: Path, patterns: Sequence[str], env: Mapping[str, str], job: str
) -> Selection:
    """Files named by an `artifacts:reports:*` entry (directories are not reports)."""
    selection = select_paths(root, patterns, env, job=job, what="artifacts:reports")
    files = tuple(
        p for p in selection.paths if (root / p).is_file() and not (root / p).is_symlink()
    )
    return Selection(files, selection.warnings)
