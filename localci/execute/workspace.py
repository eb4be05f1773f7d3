"""Job workspaces: reusable slots, each restored from the pipeline's snapshot.

A workspace is a plain copy of the snapshot (snapshot.py) with its own .git (workspace_git.py)
that borrows the user's objects through `alternates`; only what differs from what localci left
in the slot is rewritten (workspace_files.py).
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from localci.execute.snapshot import DIR, FILE, GIT_BLOB, LINK, Entry, Snapshot, link_target
from localci.execute.snapshot_store import parallel, short_gil_turns
from localci.execute.workspace_files import remove_path, write_entry, write_from_git
from localci.execute.workspace_git import digest_of, git_dir_files, is_unborn, write_git_dir
from localci.execute.workspace_index import write_index
from localci.files import LockBusy, atomic_write_json, state_error, tree_fingerprint
from localci.state import Store, project_builds_root

_FORMAT = 1
# Git refuses an invalid gitfile instead of searching further up, so a job that deleted its
# workspace's .git can never reach the user's repository above .localci/.
_FENCE = "localci: not a repository (a job's .git was removed; localci restores it)\n"


@dataclass(frozen=True, slots=True)
class Workspace:
    """A slot's build directory; `project_dir` is the job's CI_PROJECT_DIR."""

    slot: int
    builds_dir: Path
    project_dir: Path
    state_dir: Path


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
        with short_gil_turns():
            kept = _clean_tree(ws.project_dir, snapshot.by_path, dirs, clean=clean)
            stats, rewrote = _restore_entries(ws.project_dir, snapshot, dirs, kept, state.placed)
        placed = {path: _Placed.of(st, snapshot.by_path[path].data) for path, st in stats.items()}
        git_files = git_dir_files(
            snapshot, ref=ref, ref_is_tag=ref_is_tag, user_git_dir=user_git_dir
        )
        git_files.update(git_files_extra or {})
        git_key = digest_of(git_files)
        git_dir = ws.project_dir / ".git"
        # An untouched .git (and index) of the same content is as good as a new one.
        git_state = state.git
        if rewrote or git_state is None or git_state != (git_key, tree_fingerprint(git_dir)):
            write_git_dir(git_dir, git_files)
            if not is_unborn(snapshot.sha):
                write_index(ws.project_dir, snapshot, stats)
            _remove_saved_indexes(ws.state_dir)
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
            remove_path(Path(item.path))
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
        remove_path(fence)
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
                remove_path(Path(item.path))
    return kept


def _ensure_owner_rwx(path: Path, st: os.stat_result) -> None:
    if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
        path.chmod(stat.S_IMODE(st.st_mode) | 0o700)


def _same_kind(kind: str, mode: int) -> bool:
    return (kind == FILE and stat.S_ISREG(mode)) or (kind == LINK and stat.S_ISLNK(mode))


def _restore_entries(
    root: Path,
    snapshot: Snapshot,
    dirs: set[str],
    kept: Mapping[str, os.stat_result],
    placed: Mapping[str, _Placed],
) -> tuple[dict[str, os.stat_result], bool]:
    """The stat of each placed file, and whether any had to be written."""
    for rel in sorted(dirs):
        (root / rel).mkdir(exist_ok=True)
    result: dict[str, os.stat_result] = {}
    to_write: list[Entry] = []
    for entry in snapshot.entries:
        if entry.kind == DIR:
            continue
        # Plain strings, not Path objects: this loop runs once per file of the project.
        full = f"{root}/{entry.path}"
        st = kept.get(entry.path)
        if st is not None and _unchanged(entry, st, placed.get(entry.path), full):
            result[entry.path] = st
            continue
        if st is not None:
            Path(full).unlink()
        to_write.append(entry)
    from_git = [e for e in to_write if e.data.startswith(GIT_BLOB)]
    from_store = [e for e in to_write if not e.data.startswith(GIT_BLOB)]
    written = parallel(
        lambda e: write_entry(e, f"{root}/{e.path}", snapshot.objects_dir), from_store
    )
    written += write_from_git(str(root), from_git, snapshot.root)
    for entry, st in zip([*from_store, *from_git], written, strict=True):
        result[entry.path] = st
    return result, bool(to_write)


def _unchanged(entry: Entry, st: os.stat_result, placed: _Placed | None, full: str) -> bool:
    if entry.kind == LINK:
        return link_target(full) == entry.data
    # ino + ctime cannot be reset by a job, so a match means localci's own copy is untouched.
    return (
        placed is not None
        and placed == _Placed.of(st, entry.data)
        and (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
        == (entry.size, entry.mtime_ns, entry.mode)
    )


def _remove_saved_indexes(state_dir: Path) -> None:
    # Versions before the index was written directly kept a refreshed copy per commit here.
    for old in state_dir.glob("index-*"):
        old.unlink()


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
