"""Job workspaces: a per-pipeline snapshot of the working tree and reusable slots restored from it.

A snapshot is a manifest plus content-addressed blobs in .localci/objects; a workspace is a
plain copy of it with its own .git that borrows the user's objects through `alternates`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from localci.errors import GitError, StateError
from localci.files import (
    TMP_SUFFIX,
    LockBusy,
    atomic_write_json,
    remove_tree,
    state_error,
    temp_path_for,
    tree_fingerprint,
)
from localci.state import Store, project_builds_root

FILE, LINK, DIR = "f", "l", "d"
# A snapshot file's content: a blob of the store, or "git:<id>", a blob of the user's repository.
_GIT_BLOB = "git:"
_FORMAT = 1
# A cached digest is trusted only for files whose ctime is this much older than the snapshot
# that recorded it: coarse filesystem clocks could otherwise hide a same-size rewrite.
_RACY_NS = 2_000_000_000
_CHUNK = 1 << 20
_BIG_BLOB = 8 << 20
# Git refuses an invalid gitfile instead of searching further up, so a job that deleted its
# workspace's .git can never reach the user's repository above .localci/.
_FENCE = "localci: not a repository (a job's .git was removed; localci restores it)\n"
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a snapshot: a regular file (blob digest), a symlink (target) or a directory."""

    path: str
    kind: str
    mode: int
    size: int = 0
    mtime_ns: int = 0
    data: str = ""


@dataclass(frozen=True, slots=True)
class GitRef:
    """A ref of the user's repository; `peeled` is the commit an annotated tag points to."""

    name: str
    sha: str
    peeled: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The working tree of `root` at pipeline start; jobs of that pipeline see only this."""

    root: Path
    files: tuple[str, ...]
    sha: str
    pipeline_id: int
    entries: tuple[Entry, ...]
    objects_dir: Path
    refs: tuple[GitRef, ...] = ()
    by_path: Mapping[str, Entry] = field(default_factory=dict, repr=False, compare=False)

    def blob_path(self, path: str) -> Path | None:
        """Where the snapshot content of regular file `path` is stored (None if not a file, or
        a file whose content is a blob of the user's git repository)."""
        entry = self.by_path.get(path)
        if entry is None or entry.kind != FILE or entry.data.startswith(_GIT_BLOB):
            return None
        return _blob_path(self.objects_dir, entry.data)


@dataclass(frozen=True, slots=True)
class Workspace:
    """A slot's build directory; `project_dir` is the job's CI_PROJECT_DIR."""

    slot: int
    builds_dir: Path
    project_dir: Path
    state_dir: Path


# --------------------------------------------------------------------------- git plumbing


def _git(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> bytes:
    from localci.git import git_output

    return git_output(cwd, *args, env=env, stdin=stdin)


def _list_paths(project_dir: Path) -> list[str]:
    out = _git(project_dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    # Unmerged paths appear once per stage; nested repositories appear as "dir/".
    paths = dict.fromkeys(os.fsdecode(raw).rstrip("/") for raw in out.split(b"\0") if raw)
    return sorted(p for p in paths if p != ".localci" and not p.startswith(".localci/"))


def _list_refs(project_dir: Path) -> tuple[GitRef, ...]:
    fmt = "--format=%(objectname)%00%(*objectname)%00%(refname)"
    out = _git(project_dir, "for-each-ref", fmt, "refs/heads", "refs/tags")
    refs = []
    for line in out.decode(errors="surrogateescape").splitlines():
        sha, peeled, name = line.split("\0")
        refs.append(GitRef(name, sha, peeled))
    return tuple(refs)


# Checks that must not be weakened by the user's configuration when asking git which tracked
# files are unchanged since they were staged.
_STRICT_STAT = ("-c", "core.checkStat=default", "-c", "core.trustctime=true")
_CONVERTING_ATTRS = ("filter", "ident", "eol", "working-tree-encoding")


def _index_blobs(project_dir: Path) -> dict[str, str]:
    """Tracked files whose working-tree bytes are exactly their staged blob, as "git:<id>".

    git's index already knows them (their stat data matches what it recorded, racy entries
    are compared by content), so the snapshot need not read or store them: a workspace gets
    them from the user's object database. Left out, and read like untracked files: files git
    reports changed, assume-unchanged and skip-worktree entries (git does not look at those),
    conflicts, symlinks and submodules, and any file that a filter, `ident`, an `eol` or a
    working-tree encoding converts between blob and working tree.
    """
    if _converts_line_endings(project_dir):
        return {}
    out = _git(project_dir, "ls-files", "-z", "--stage", "-v")
    blobs: dict[str, str] = {}
    for record in out.split(b"\0"):
        meta, _, raw = record.partition(b"\t")
        fields = meta.split()
        regular = len(fields) == 4 and fields[1] in (b"100644", b"100755")
        if regular and fields[0] == b"H" and fields[3] == b"0":  # H: tracked, looked at, merged
            blobs[os.fsdecode(raw)] = _GIT_BLOB + fields[2].decode()
    changed = _git(project_dir, *_STRICT_STAT, "diff-files", "--name-only", "-z")
    for raw in changed.split(b"\0"):
        blobs.pop(os.fsdecode(raw), None)
    for path in _converted_paths(project_dir, list(blobs)):
        blobs.pop(path, None)
    return blobs


def _converts_line_endings(project_dir: Path) -> bool:
    from localci.git import run_git

    out = run_git(project_dir, "config", "--get-regexp", r"^core\.(autocrlf|eol)$").stdout
    values = dict(line.split(" ", 1) for line in out.decode().lower().splitlines() if " " in line)
    return values.get("core.autocrlf", "false") not in ("false", "0", "no", "off") or (
        values.get("core.eol") == "crlf"
    )


def _converted_paths(project_dir: Path, paths: list[str]) -> set[str]:
    if not paths:
        return set()
    stdin = b"".join(os.fsencode(p) + b"\0" for p in paths)
    out = _git(project_dir, "check-attr", "-z", "--stdin", *_CONVERTING_ATTRS, stdin=stdin)
    fields = out.split(b"\0")
    converted = set()
    for i in range(0, len(fields) - 2, 3):
        if fields[i + 2] != b"unspecified":
            converted.add(os.fsdecode(fields[i]))
    return converted


# --------------------------------------------------------------------------- blob store


def _blob_path(objects_dir: Path, digest: str) -> Path:
    return objects_dir / digest[:2] / digest[2:]


class _Blobs:
    """Writes file contents into the content-addressed store (no fsync: see has())."""

    def __init__(self, objects_dir: Path) -> None:
        self.dir = objects_dir
        self.tmp_dir = objects_dir / "tmp"
        self._fans: set[str] = set()

    def has(self, digest: str, size: int) -> bool:
        # A crash can leave a renamed-but-unflushed blob empty; its size gives it away.
        try:
            return os.lstat(f"{self.dir}/{digest[:2]}/{digest[2:]}").st_size == size
        except OSError:
            return False

    def add_file(self, fd: int, size_hint: int) -> tuple[str, int]:
        if size_hint <= _CHUNK:
            data = _read_all(fd)
            digest = hashlib.sha256(data).hexdigest()
            if not self.has(digest, len(data)):
                self._publish(digest, self._write_temp([data]))
            return digest, len(data)
        return self._add_stream(fd)

    def _add_stream(self, fd: int) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0

        def chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := os.read(fd, _CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        tmp = self._write_temp(chunks())
        digest = hasher.hexdigest()
        if self.has(digest, size):
            tmp.unlink()
        else:
            self._publish(digest, tmp)
        return digest, size

    def _write_temp(self, chunks: Iterable[bytes]) -> Path:
        tmp = temp_path_for(self.tmp_dir / "blob")
        try:
            # Created read-only: blobs are never modified in place, only replaced.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise state_error(tmp, exc) from exc
        return tmp

    def _publish(self, digest: str, tmp: Path) -> None:
        final = _blob_path(self.dir, digest)
        try:
            if digest[:2] not in self._fans:
                final.parent.mkdir(exist_ok=True)
                self._fans.add(digest[:2])
            tmp.replace(final)
        except OSError as exc:
            raise state_error(final, exc) from exc


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, _CHUNK):
        parts.append(chunk)
    return b"".join(parts)


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class _Seen:
    """Stat of a user file when its digest was computed (the snapshot's stat cache)."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    digest: str


def _stat_cache_path(store: Store) -> Path:
    return store.path("snapshots", "statcache.json")


def _load_stat_cache(store: Store) -> dict[str, _Seen]:
    try:
        raw = json.loads(_stat_cache_path(store).read_text())
        if raw.get("version") != _FORMAT:
            return {}
        horizon = int(raw["taken_ns"]) - _RACY_NS
        return {
            path: _Seen(*values)
            for path, values in raw["files"].items()
            if values[3] < horizon  # ctime_ns: see _RACY_NS
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # the cache only saves time; a damaged one is ignored


_Scanned = tuple[Entry, "_Seen | None"]


def _scan(
    project_dir: Path,
    paths: list[str],
    cache: Mapping[str, _Seen],
    blobs: _Blobs,
    in_git: Mapping[str, str],
) -> list[_Scanned]:
    """Stat every path; read (and store) only files neither git's index (`in_git`, see
    _index_blobs) nor the stat cache can vouch for."""
    found: dict[str, _Scanned] = {}
    to_hash: list[str] = []
    for rel in paths:
        # Plain strings, not Path objects: this loop runs once per file of the project.
        full = f"{project_dir}/{rel}"
        try:
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = Entry(rel, LINK, 0o777, data=_link_target(full)), None
        except (FileNotFoundError, NotADirectoryError):
            continue  # deleted in the working tree but still in the index
        if stat.S_ISDIR(st.st_mode):
            found[rel] = Entry(rel, DIR, 0o755), None
        elif stat.S_ISREG(st.st_mode):  # sockets and fifos are skipped, as git does
            seen = cache.get(rel)
            if rel in in_git:
                entry = Entry(rel, FILE, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns)
                found[rel] = dataclasses.replace(entry, data=in_git[rel]), None
            elif seen is not None and _same_stat(seen, st) and blobs.has(seen.digest, st.st_size):
                found[rel] = _file_entry(rel, st.st_mode, seen), seen
            else:
                to_hash.append(rel)
    hashed = _parallel(lambda rel: _hash_file(f"{project_dir}/{rel}", blobs), to_hash)
    for rel, (mode, seen) in zip(to_hash, hashed, strict=True):
        if seen is not None:
            found[rel] = _file_entry(rel, mode, seen), seen
    return [found[rel] for rel in paths if rel in found]


def _parallel(fn: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    # File creation dominates (~150 us each on a VM's ext4); the syscalls overlap in threads.
    if len(items) < 64:
        return [fn(item) for item in items]
    batches = [items[i : i + 64] for i in range(0, len(items), 64)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda batch: [fn(item) for item in batch], batches)
        return [result for batch in done for result in batch]


def _file_entry(rel: str, mode: int, seen: _Seen) -> Entry:
    return Entry(rel, FILE, stat.S_IMODE(mode), seen.size, seen.mtime_ns, seen.digest)


def _same_stat(seen: _Seen, st: os.stat_result) -> bool:
    return (seen.size, seen.mtime_ns, seen.ino, seen.ctime_ns) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        st.st_ctime_ns,
    )


def _link_target(path: str) -> str:
    # Path.readlink() normalises ("dir/" -> "dir", "a//b" -> "a/b"); the link must stay exact.
    return os.readlink(path)  # noqa: PTH115


def _hash_file(full: str, blobs: _Blobs) -> tuple[int, _Seen | None]:
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return 0, None
    except OSError as exc:
        raise StateError(f"cannot read {full} for the job workspace snapshot: {exc}") from exc
    try:
        # The stat taken before reading keys the cache: a later edit changes it.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0, None
        digest, size = blobs.add_file(fd, st.st_size)
    finally:
        os.close(fd)
    return st.st_mode, _Seen(size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, digest)


def _manifest_path(store: Store, pipeline_id: int) -> Path:
    return store.path("snapshots", f"{pipeline_id}.json")


def take_snapshot(project_dir: Path, store: Store, *, pipeline_id: int, sha: str) -> Snapshot:
    """Record the working tree (tracked + untracked-not-ignored files) for pipeline `pipeline_id`.

    The caller holds `store.lock(f"pipeline-{pipeline_id}")` while the pipeline runs, so that
    remove_stale() in another process keeps this snapshot's blobs.
    """
    store.ensure()
    project_dir = project_dir.resolve()
    started_ns = time.time_ns()
    paths = _list_paths(project_dir)
    refs = _list_refs(project_dir)
    cache = _load_stat_cache(store)
    in_git = _index_blobs(project_dir)
    blobs = _Blobs(store.path("objects"))
    with store.lock("objects", shared=True):
        blobs.tmp_dir.mkdir(exist_ok=True)
        scanned = _scan(project_dir, paths, cache, blobs, in_git)
        entries = tuple(entry for entry, _ in scanned)
        snapshot = _make_snapshot(
            project_dir, blobs.dir, sha=sha, pipeline_id=pipeline_id, entries=entries, refs=refs
        )
        atomic_write_json(_manifest_path(store, pipeline_id), _manifest_json(snapshot))
        files = {e.path: _seen_json(s) for e, s in scanned if s is not None}
        doc = {"version": _FORMAT, "taken_ns": started_ns, "files": files}
        atomic_write_json(_stat_cache_path(store), doc)
    return snapshot


def _seen_json(seen: _Seen) -> list[object]:
    return [seen.size, seen.mtime_ns, seen.ino, seen.ctime_ns, seen.digest]


def _make_snapshot(
    root: Path,
    objects_dir: Path,
    *,
    sha: str,
    pipeline_id: int,
    entries: tuple[Entry, ...],
    refs: tuple[GitRef, ...],
) -> Snapshot:
    return Snapshot(
        root=root,
        files=tuple(e.path for e in entries if e.kind != DIR),
        sha=sha,
        pipeline_id=pipeline_id,
        entries=entries,
        objects_dir=objects_dir,
        refs=refs,
        by_path={e.path: e for e in entries},
    )


def _manifest_json(snapshot: Snapshot) -> dict[str, object]:
    return {
        "version": _FORMAT,
        "root": str(snapshot.root),
        "sha": snapshot.sha,
        "refs": [[r.name, r.sha, r.peeled] for r in snapshot.refs],
        "entries": [[e.path, e.kind, e.mode, e.size, e.mtime_ns, e.data] for e in snapshot.entries],
    }


def load_snapshot(store: Store, pipeline_id: int) -> Snapshot:
    """Read back the snapshot taken for `pipeline_id` (StateError if missing or damaged)."""
    path = _manifest_path(store, pipeline_id)
    try:
        raw = json.loads(path.read_text())
        if raw["version"] != _FORMAT:
            raise ValueError(f"unknown snapshot format {raw['version']!r}")
        entries = tuple(Entry(*values) for values in raw["entries"])
        refs = tuple(GitRef(*values) for values in raw["refs"])
        root, sha = Path(raw["root"]), raw["sha"]
    except OSError as exc:
        raise state_error(path, exc, "read") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"damaged snapshot {path}: {exc}; run the pipeline again") from exc
    objects = store.path("objects")
    return _make_snapshot(
        root, objects, sha=sha, pipeline_id=pipeline_id, entries=entries, refs=refs
    )


# --------------------------------------------------------------------------- pool


class WorkspacePool:
    """Slots <builds_root>/<n>/<project> (see store.project_builds_root); each is flock-ed
    (a lock in .localci/locks) while a job uses it; each slot's records are in
    .localci/slots/<n>."""

    def __init__(self, store: Store, project_name: str, builds_root: Path | None = None) -> None:
        if project_name in ("", ".", "..", ".git") or "/" in project_name:
            raise ValueError(f"invalid project name {project_name!r}")
        self._store = store
        self._name = project_name
        self._root = builds_root or project_builds_root(store.project_dir)

    def workspace(self, slot: int) -> Workspace:
        """The (stable) paths of slot `slot`."""
        builds = self._root / str(slot)
        state = self._store.path("slots", str(slot))
        return Workspace(slot, builds, builds / self._name, state)

    @contextmanager
    def acquire(self) -> Iterator[Workspace]:
        """Lock the lowest free slot (across threads and processes) until the block exits."""
        self._store.ensure()
        _describe_builds_root(self._root, self._store.project_dir)
        with ExitStack() as stack:
            for slot in itertools.count():
                try:
                    stack.enter_context(self._store.lock(f"slot-{slot}", blocking=False))
                except LockBusy:
                    continue
                break
            yield self.workspace(slot)


def _describe_builds_root(root: Path, project_dir: Path) -> None:
    """Name the project in its builds folder, so a look into the user cache tells them apart."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise state_error(root, exc, "create") from exc
    note = root / "PROJECT"
    if not note.is_file():
        atomic_write_json(note, {"project_dir": str(project_dir)}, durable=False)


# --------------------------------------------------------------------------- prepare


@dataclass(frozen=True, slots=True)
class _Placed:
    """Stat of a workspace file right after localci wrote or verified it."""

    ino: int
    ctime_ns: int
    size: int
    mtime_ns: int
    mode: int
    data: str

    @classmethod
    def of(cls, st: os.stat_result, data: str) -> _Placed:
        return cls(st.st_ino, st.st_ctime_ns, st.st_size, st.st_mtime_ns, st.st_mode, data)


def prepare_workspace(
    ws: Workspace,
    snapshot: Snapshot,
    *,
    ref: str,
    ref_is_tag: bool,
    user_git_dir: Path | None,
    git_files_extra: Mapping[str, str] | None = None,
    clean: bool = True,
) -> None:
    """Bring `ws` back to `snapshot` (checkout + `git clean -ffdx`), rewriting only what differs.

    `user_git_dir` is the user's `git rev-parse --git-dir` (None when the project has no
    repository); its objects are borrowed read-only, nothing is ever written there.
    `git_files_extra` replaces or adds files of the workspace .git (a shallow history).
    Without `clean` (GIT_CLEAN_FLAGS: none) files the snapshot does not have are left alone.
    """
    try:
        _ensure_real_dirs(ws)
        state = _load_state(ws.state_dir)
        dirs = _needed_dirs(snapshot.entries)
        kept = _clean_tree(ws.project_dir, snapshot.by_path, dirs, clean=clean)
        placed, rewrote = _restore_entries(ws.project_dir, snapshot, dirs, kept, state.placed)
        git_files = _git_dir_files(
            snapshot, ref=ref, ref_is_tag=ref_is_tag, user_git_dir=user_git_dir
        )
        git_files.update(git_files_extra or {})
        git_key = _digest_of(git_files)
        git_dir = ws.project_dir / ".git"
        # An untouched .git (and index) of the same content is as good as a new one.
        git_state = state.git
        if rewrote or git_state is None or git_state != (git_key, tree_fingerprint(git_dir)):
            _write_git_dir(git_dir, git_files)
            _prepare_index(ws, snapshot.sha, refresh=rewrote)
            fingerprint = tree_fingerprint(git_dir)
            git_state = (git_key, fingerprint) if fingerprint else None
    except OSError as exc:
        raise state_error(Path(exc.filename or ws.project_dir), exc, "prepare workspace") from exc
    _save_state(ws.state_dir, _SlotState(placed, git_state))


def clear_workspace(ws: Workspace) -> None:
    """An empty project directory (GIT_STRATEGY none/empty): no files, no .git."""
    try:
        _ensure_real_dirs(ws)
        for item in os.scandir(ws.project_dir):
            _remove(Path(item.path))
        # The slot's record no longer matches: the next prepare rewrites everything.
        (ws.state_dir / "state.json").unlink(missing_ok=True)
    except OSError as exc:
        raise state_error(Path(exc.filename or ws.project_dir), exc, "clear workspace") from exc


def ensure_slot_dirs(ws: Workspace) -> None:
    """Make the slot's directories real directories again (a job may have replaced one by a
    symlink): before anything is written into the slot, also its venv."""
    try:
        _ensure_real_dirs(ws)
    except OSError as exc:
        raise state_error(Path(exc.filename or ws.builds_dir), exc, "prepare workspace") from exc


def _ensure_real_dirs(ws: Workspace) -> None:
    # A job may have replaced any of these by a symlink; writing through it would escape.
    for path in (ws.builds_dir.parent, ws.builds_dir, ws.project_dir, ws.state_dir):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            path.mkdir(parents=True)
            continue
        if not stat.S_ISDIR(st.st_mode):
            path.unlink()
            path.mkdir()
        else:
            _ensure_owner_rwx(path, st)
    fence = ws.builds_dir.parent / ".git"
    if fence.is_symlink() or not fence.is_file() or fence.read_text() != _FENCE:
        _remove(fence)
        fence.write_text(_FENCE)


def _needed_dirs(entries: Iterable[Entry]) -> set[str]:
    dirs = set()
    for entry in entries:
        if entry.kind == DIR:
            dirs.add(entry.path)
        parent = entry.path.rpartition("/")[0]
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return dirs


def _clean_tree(
    root: Path, wanted: Mapping[str, Entry], dirs: set[str], *, clean: bool = True
) -> dict[str, os.stat_result]:
    """Delete everything that is not in the snapshot (only what is in the way of the snapshot
    without `clean`); return the stat of what may be kept."""
    kept: dict[str, os.stat_result] = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(root / rel_dir) as scan:
            items = list(scan)
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if rel == ".git":
                continue
            st = item.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) and rel in dirs:
                _ensure_owner_rwx(Path(item.path), st)
                pending.append(rel)
            elif rel in wanted and _same_kind(wanted[rel].kind, st.st_mode):
                kept[rel] = st
            elif not clean and rel not in wanted and rel not in dirs:
                continue
            else:
                _remove(Path(item.path))
    return kept


def _ensure_owner_rwx(path: Path, st: os.stat_result) -> None:
    if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
        path.chmod(stat.S_IMODE(st.st_mode) | 0o700)


def _same_kind(kind: str, mode: int) -> bool:
    return (kind == FILE and stat.S_ISREG(mode)) or (kind == LINK and stat.S_ISLNK(mode))


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        path.unlink()
        return
    remove_tree(path)


def _restore_entries(
    root: Path,
    snapshot: Snapshot,
    dirs: set[str],
    kept: Mapping[str, os.stat_result],
    placed: Mapping[str, _Placed],
) -> tuple[dict[str, _Placed], bool]:
    """The placed files, and whether any had to be written."""
    for rel in sorted(dirs):
        (root / rel).mkdir(exist_ok=True)
    result: dict[str, _Placed] = {}
    to_write: list[Entry] = []
    for entry in snapshot.entries:
        if entry.kind == DIR:
            continue
        # Plain strings, not Path objects: this loop runs once per file of the project.
        full = f"{root}/{entry.path}"
        st = kept.get(entry.path)
        if st is not None and _unchanged(entry, st, placed.get(entry.path), full):
            result[entry.path] = _Placed.of(st, entry.data)
            continue
        if st is not None:
            Path(full).unlink()
        to_write.append(entry)
    from_git = [e for e in to_write if e.data.startswith(_GIT_BLOB)]
    from_store = [e for e in to_write if not e.data.startswith(_GIT_BLOB)]
    written = _parallel(
        lambda e: _write_entry(e, f"{root}/{e.path}", snapshot.objects_dir), from_store
    )
    written += _write_from_git(str(root), from_git, snapshot.root)
    for entry, st in zip([*from_store, *from_git], written, strict=True):
        result[entry.path] = _Placed.of(st, entry.data)
    return result, bool(to_write)


def _unchanged(entry: Entry, st: os.stat_result, placed: _Placed | None, full: str) -> bool:
    if entry.kind == LINK:
        return _link_target(full) == entry.data
    # ino + ctime cannot be reset by a job, so a match means localci's own copy is untouched.
    return (
        placed is not None
        and placed == _Placed.of(st, entry.data)
        and (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
        == (entry.size, entry.mtime_ns, entry.mode)
    )


def _write_entry(entry: Entry, full: str, objects_dir: Path) -> os.stat_result:
    if entry.kind == LINK:
        Path(full).symlink_to(entry.data)
        return os.lstat(full)
    blob = _blob_path(objects_dir, entry.data)

    def fill(out: int) -> None:
        if entry.size:
            _copy_blob(blob, out, entry.size)

    return _write_file(entry, full, fill)


def _write_file(entry: Entry, full: str, fill: Callable[[int], None]) -> os.stat_result:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(full, flags, 0o600)
    try:
        fill(out)
        os.fchmod(out, entry.mode)
        os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns))
        return os.fstat(out)
    finally:
        os.close(out)


def _copy_blob(blob: Path, out: int, size: int) -> None:
    with blob.open("rb") as src:
        try:
            copied = _copy_range(src.fileno(), out, size)
        except (AttributeError, OSError):  # no copy_file_range (macOS, old kernels)
            copied = os.lseek(out, 0, os.SEEK_CUR)
            while chunk := src.read(_CHUNK):
                copied += os.write(out, chunk)
    if copied != size:
        raise StateError(
            f"snapshot blob {blob} is damaged (expected {size} bytes, found {copied})\n"
            "    hint: delete .localci/objects and .localci/snapshots, then run again"
        )


def _write_from_git(root: str, entries: list[Entry], repo: Path) -> list[os.stat_result]:
    """Write `entries` (contents "git:<blob id>") from the user's object database: one
    `git cat-file --batch` streams the blobs, a few threads create the files."""
    if not entries:
        return []
    from localci.git import git_process

    proc = git_process(repo, "cat-file", "--batch")
    assert proc.stdin is not None and proc.stdout is not None
    requests = "".join(e.data.removeprefix(_GIT_BLOB) + "\n" for e in entries).encode()
    feeder = threading.Thread(target=_feed, args=(proc.stdin, requests), daemon=True)
    feeder.start()
    in_flight = threading.BoundedSemaphore(64)  # blobs read but not yet written

    def write(entry: Entry, data: bytes) -> os.stat_result:
        try:
            return _write_file(entry, f"{root}/{entry.path}", lambda out: _write_all(out, data))
        finally:
            in_flight.release()

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures: list[Future[os.stat_result]] = []
            for entry in entries:
                size = _read_git_header(proc.stdout, entry, repo)
                if size > _BIG_BLOB:  # streamed here rather than held in memory
                    done: Future[os.stat_result] = Future()
                    full = f"{root}/{entry.path}"
                    fill = functools.partial(_copy_stream, proc.stdout, size=size)
                    done.set_result(_write_file(entry, full, fill))
                    futures.append(done)
                else:
                    data = proc.stdout.read(size)
                    in_flight.acquire()
                    futures.append(pool.submit(write, entry, data))
                proc.stdout.read(1)  # each blob ends with a newline
            return [future.result() for future in futures]
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
        feeder.join()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):  # git ended early: the reader reports why
        pipe.write(data)
        pipe.close()


def _read_git_header(stream: IO[bytes], entry: Entry, repo: Path) -> int:
    header = stream.readline().split()
    if len(header) != 3 or header[1] != b"blob":
        raise StateError(
            f"blob {entry.data.removeprefix(_GIT_BLOB)} of {entry.path} is no longer in the "
            f"git repository {repo} (the pipeline's snapshot needs it); run the pipeline again"
        )
    # A size other than entry.size: the file was edited between git's look and localci's
    # stat; the blob is what the snapshot saw, and the slot's record will not match it.
    return int(header[2])


def _copy_stream(stream: IO[bytes], out: int, *, size: int) -> None:
    while size > 0:
        chunk = stream.read(min(size, _CHUNK))
        if not chunk:
            raise StateError("git cat-file ended early while writing a job workspace")
        _write_all(out, chunk)
        size -= len(chunk)


def _write_all(out: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]


def _copy_range(src: int, out: int, size: int) -> int:
    # copy_file_range lets reflink-capable filesystems (btrfs, XFS) share the blocks.
    copied = 0
    while copied < size:
        n = os.copy_file_range(src, out, size - copied)
        if n == 0:
            break
        copied += n
    return copied


# --------------------------------------------------------------------------- slot state


@dataclass(frozen=True, slots=True)
class _SlotState:
    """What localci left in a slot: each file's stat, the .git's content key and fingerprint."""

    placed: Mapping[str, _Placed]
    git: tuple[str, str] | None


def _load_state(state_dir: Path) -> _SlotState:
    try:
        raw = json.loads((state_dir / "state.json").read_text())
        if raw.get("version") != _FORMAT:
            return _SlotState({}, None)
        placed = {path: _Placed(*values) for path, values in raw["files"].items()}
        git = raw.get("git")
        return _SlotState(placed, (str(git[0]), str(git[1])) if git else None)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        # Without a record every file and the .git are rewritten, which is always correct.
        return _SlotState({}, None)


def _save_state(state_dir: Path, state: _SlotState) -> None:
    files = {
        path: [p.ino, p.ctime_ns, p.size, p.mtime_ns, p.mode, p.data]
        for path, p in state.placed.items()
    }
    doc = {"version": _FORMAT, "git": state.git, "files": files}
    atomic_write_json(state_dir / "state.json", doc, durable=False)  # lost = all rewritten


# --------------------------------------------------------------------------- the workspace .git


def _is_unborn(sha: str) -> bool:
    return not sha.strip("0")


_BAD_REF = re.compile(r"(^|/)\.|\.\.|[\x00-\x20\x7f~^:?*\[\\]|@\{|//|/$|\.lock(/|$)|^@$|\.$|^/")


def _valid_branch(name: str) -> bool:
    return bool(name) and not _BAD_REF.search(name) and not name.startswith("-")


def _objects_dir(git_dir: Path) -> Path:
    if git_dir.is_file():  # a `.git` file of a linked worktree or submodule
        text = git_dir.read_text().strip().removeprefix("gitdir:").strip()
        git_dir = git_dir.parent / text
    common = git_dir
    commondir = git_dir / "commondir"  # linked worktrees keep objects in the main .git
    if commondir.is_file():
        common = git_dir / commondir.read_text().strip()
    return (common / "objects").resolve()


_GIT_SUBDIRS = ("objects/info", "objects/pack", "refs/heads", "refs/tags", "info")


def _git_dir_files(
    snapshot: Snapshot, *, ref: str, ref_is_tag: bool, user_git_dir: Path | None
) -> dict[str, str]:
    """The files of a workspace's .git (relative path -> content): HEAD, refs, config, and
    `alternates` borrowing the user's objects."""
    if not _is_unborn(snapshot.sha) and user_git_dir is None:
        raise GitError(f"commit {snapshot.sha} given but the project has no git directory")
    files = {"config": _git_config(snapshot.sha)}
    if user_git_dir is not None:
        objects = _objects_dir(user_git_dir)
        files["objects/info/alternates"] = f"{objects}\n"
        shallow = objects.parent / "shallow"
        if shallow.is_file():
            files["shallow"] = shallow.read_text()
    head, refs = _head_and_refs(snapshot, ref=ref, ref_is_tag=ref_is_tag)
    files["packed-refs"] = "".join(f"{sha} {name}\n" for name, sha in refs.items())
    files["HEAD"] = head + "\n"
    return files


def _digest_of(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0{files[name]}".encode())
    return digest.hexdigest()


def _write_git_dir(git_dir: Path, files: Mapping[str, str]) -> None:
    """A fresh .git: whatever a job committed, configured or hooked is discarded."""
    _remove(git_dir)
    for sub in _GIT_SUBDIRS:
        (git_dir / sub).mkdir(parents=True)
    for name, text in files.items():
        (git_dir / name).write_text(text)


def _git_config(sha: str) -> str:
    sha256 = len(sha) == 64
    lines = [
        "[core]",
        f"\trepositoryformatversion = {1 if sha256 else 0}",
        "\tfilemode = true",
        "\tbare = false",
        "\tlogallrefupdates = true",
    ]
    if sha256:
        lines += ["[extensions]", "\tobjectformat = sha256"]
    return "\n".join(lines) + "\n"


def _head_and_refs(snapshot: Snapshot, *, ref: str, ref_is_tag: bool) -> tuple[str, dict[str, str]]:
    """HEAD's content and the refs a GitLab checkout would have (origin/* branches, tags)."""
    refs: dict[str, str] = {}
    for r in snapshot.refs:
        if r.name.startswith("refs/heads/"):
            refs["refs/remotes/origin/" + r.name.removeprefix("refs/heads/")] = r.sha
        else:
            refs[r.name] = r.sha
    sha = snapshot.sha
    valid = _valid_branch(ref)
    branch = ref if valid else "localci"
    if _is_unborn(sha):
        return f"ref: refs/heads/{branch}", refs
    if ref_is_tag:
        tag = f"refs/tags/{ref}"
        if valid and not any(r.name == tag and sha in (r.sha, r.peeled) for r in snapshot.refs):
            _add_ref(refs, tag, sha)  # a simulated tag: lightweight, on the commit under test
        return sha, refs
    refs[f"refs/heads/{branch}"] = sha
    _add_ref(refs, f"refs/remotes/origin/{branch}", sha)
    return f"ref: refs/heads/{branch}", refs


def _add_ref(refs: dict[str, str], name: str, sha: str) -> None:
    # "a" and "a/b" cannot both exist (file vs directory); the simulated ref loses.
    clash = any(other.startswith(name + "/") or name.startswith(other + "/") for other in refs)
    if not clash:
        refs[name] = sha


def _prepare_index(ws: Workspace, sha: str, *, refresh: bool) -> str:
    """Index = HEAD's tree with fresh stat data, so `git status` shows only the user's edits.

    Without `refresh` (no file was rewritten, so every tracked file is the very inode the saved
    index was refreshed against) the saved index is used as it is.
    """
    if _is_unborn(sha):
        return ""
    git_dir = ws.project_dir / ".git"
    saved = ws.state_dir / f"index-{sha}"
    env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(ws.project_dir)}
    if saved.is_file():
        # copy2 keeps the index mtime, which git's racy-entry check compares against.
        shutil.copy2(saved, git_dir / "index")
        if not refresh:
            return sha
    else:
        _git(ws.project_dir, "read-tree", sha, env=env)
    _git(ws.project_dir, "update-index", "-q", "--ignore-missing", "--refresh", env=env)
    tmp = temp_path_for(saved)
    shutil.copy2(git_dir / "index", tmp)
    tmp.replace(saved)
    for old in ws.state_dir.glob("index-*"):
        if old != saved:
            old.unlink()
    return sha


# --------------------------------------------------------------------------- cleanup


def remove_stale(store: Store) -> None:
    """Drop snapshots of pipelines no longer running, orphaned temp files, unreferenced blobs."""
    if not store.root.is_dir():
        return
    try:
        _remove_finished_snapshots(store)
        _remove_temp_files(store)
        _collect_blobs(store)
        _remove_builds_inside_the_project(store)
    except OSError as exc:
        raise state_error(Path(exc.filename or store.root), exc, "clean up") from exc


def _snapshot_ids(store: Store) -> list[int]:
    snapshots = store.path("snapshots")
    paths = snapshots.glob("*.json") if snapshots.is_dir() else ()
    return [int(p.stem) for p in paths if p.stem.isdigit()]


def _remove_finished_snapshots(store: Store) -> None:
    locks = store.path("locks").glob("pipeline-*.lock")
    lock_ids = {int(p.stem[9:]) for p in locks if p.stem[9:].isdigit()}
    for pipeline_id in sorted(lock_ids.union(_snapshot_ids(store))):
        name = f"pipeline-{pipeline_id}"
        try:
            with store.lock(name, blocking=False):
                _manifest_path(store, pipeline_id).unlink(missing_ok=True)
                store.remove_lock_file(name)
        except LockBusy:
            continue


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_temp_files(store: Store) -> None:
    for dirpath, dirnames, filenames in os.walk(store.root):
        if dirpath == str(store.root):
            # Job files live in builds/ and cache/ (the cache cleans its own leftovers).
            dirnames[:] = [d for d in dirnames if d not in ("builds", "cache")]
        elif Path(dirpath).parent == store.path("pipelines"):
            dirnames[:] = [d for d in dirnames if d != "artifacts"]
        for name in filenames:
            if not name.endswith(TMP_SUFFIX):
                continue
            pid = name.removesuffix(TMP_SUFFIX).rsplit(".", 2)[-2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                (Path(dirpath) / name).unlink(missing_ok=True)


def _remove_builds_inside_the_project(store: Store) -> None:
    """Versions before issue 20 built in .localci/builds/<slot>/; the slots now live in the user
    cache (project_builds_root). The old folder goes once no slot is in use (the slot locks
    are the same in both layouts)."""
    old = store.path("builds")
    if not old.is_dir() or old.is_symlink():
        return
    slots = [p.name for p in old.iterdir() if p.name.isdigit()]
    with ExitStack() as held:
        for slot in slots:
            try:
                held.enter_context(store.lock(f"slot-{slot}", blocking=False))
            except LockBusy:
                return  # an older localci is using it: next time
        remove_tree(old)


def _live_digests(store: Store) -> set[str]:
    live: set[str] = set()
    for pipeline_id in _snapshot_ids(store):
        with contextlib.suppress(StateError):
            snap = load_snapshot(store, pipeline_id)
            live.update(e.data for e in snap.entries if e.kind == FILE)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        raw = json.loads(_stat_cache_path(store).read_text())
        live.update(values[4] for values in raw["files"].values())
    return live


def _collect_blobs(store: Store) -> None:
    objects = store.path("objects")
    try:
        with store.lock("objects", blocking=False):
            live = _live_digests(store)
            for fan in os.scandir(objects) if objects.is_dir() else ():
                if fan.name == "tmp":
                    shutil.rmtree(fan.path, ignore_errors=True)
                    continue
                if not fan.is_dir(follow_symlinks=False):
                    continue
                for blob in os.scandir(fan.path):
                    if fan.name + blob.name not in live:
                        Path(blob.path).unlink()
    except LockBusy:
        return  # a snapshot is being taken; collect next time
