"""The snapshot of a pipeline: its working tree (tracked + untracked-not-ignored files) at start.

A snapshot is a manifest in .localci/snapshots plus file contents: blobs of the store
(snapshot_store) for files git cannot vouch for, blob ids of the user's repository for the
others. Jobs of the pipeline see only this, whatever the user edits meanwhile.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from localci.errors import StateError
from localci.execute.snapshot_store import BlobStore, blob_path, parallel
from localci.files import atomic_write_json, state_error
from localci.state import Store

FILE, LINK, DIR = "f", "l", "d"
# A snapshot file's content: a blob of the store, or "git:<id>", a blob of the user's repository.
GIT_BLOB = "git:"
_FORMAT = 1
# A cached digest is trusted only for files whose ctime is this much older than the snapshot
# that recorded it: coarse filesystem clocks could otherwise hide a same-size rewrite.
_RACY_NS = 2_000_000_000


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
        if entry is None or entry.kind != FILE or entry.data.startswith(GIT_BLOB):
            return None
        return blob_path(self.objects_dir, entry.data)


# --------------------------------------------------------------------------- the user's repository


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
            blobs[os.fsdecode(raw)] = GIT_BLOB + fields[2].decode()
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


# --------------------------------------------------------------------------- scan


@dataclass(frozen=True, slots=True)
class _Seen:
    """Stat of a user file when its digest was computed (the snapshot's stat cache)."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    digest: str


def stat_cache_path(store: Store) -> Path:
    return store.path("snapshots", "statcache.json")


def _load_stat_cache(store: Store) -> dict[str, _Seen]:
    try:
        raw = json.loads(stat_cache_path(store).read_text())
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
    blobs: BlobStore,
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
                found[rel] = Entry(rel, LINK, 0o777, data=link_target(full)), None
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
    hashed = parallel(lambda rel: _hash_file(f"{project_dir}/{rel}", blobs), to_hash)
    for rel, (mode, seen) in zip(to_hash, hashed, strict=True):
        if seen is not None:
            found[rel] = _file_entry(rel, mode, seen), seen
    return [found[rel] for rel in paths if rel in found]


def _file_entry(rel: str, mode: int, seen: _Seen) -> Entry:
    return Entry(rel, FILE, stat.S_IMODE(mode), seen.size, seen.mtime_ns, seen.digest)


def _same_stat(seen: _Seen, st: os.stat_result) -> bool:
    return (seen.size, seen.mtime_ns, seen.ino, seen.ctime_ns) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        st.st_ctime_ns,
    )


def link_target(path: str) -> str:
    # Path.readlink() normalises ("dir/" -> "dir", "a//b" -> "a/b"); the link must stay exact.
    return os.readlink(path)  # noqa: PTH115


def _hash_file(full: str, blobs: BlobStore) -> tuple[int, _Seen | None]:
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


def manifest_path(store: Store, pipeline_id: int) -> Path:
    return store.path("snapshots", f"{pipeline_id}.json")


def take_snapshot(project_dir: Path, store: Store, *, pipeline_id: int, sha: str) -> Snapshot:
    """Record the working tree (tracked + untracked-not-ignored files) for pipeline `pipeline_id`.

    The caller holds `store.lock(f"pipeline-{pipeline_id}")` while the pipeline runs, so that
    remove_stale() in another process keeps this snapshot's blobs.
    """
    store.ensure()
    project_dir = project_dir.resolve()
    started_ns = time.time_ns()
    # Independent git commands: they walk and stat the tree at the same time.
    with ThreadPoolExecutor(max_workers=3) as pool:
        listing = pool.submit(_list_paths, project_dir)
        listing_refs = pool.submit(_list_refs, project_dir)
        vouched = pool.submit(_index_blobs, project_dir)
        cache = _load_stat_cache(store)
        paths, refs, in_git = listing.result(), listing_refs.result(), vouched.result()
    blobs = BlobStore(store.path("objects"))
    with store.lock("objects", shared=True):
        blobs.tmp_dir.mkdir(exist_ok=True)
        scanned = _scan(project_dir, paths, cache, blobs, in_git)
        entries = tuple(entry for entry, _ in scanned)
        snapshot = _make_snapshot(
            project_dir, blobs.dir, sha=sha, pipeline_id=pipeline_id, entries=entries, refs=refs
        )
        # Not fsynced, like the blobs: the manifest lives only as long as this pipeline's
        # process, and a stat cache lost in a crash only costs time.
        manifest = _manifest_json(snapshot)
        atomic_write_json(manifest_path(store, pipeline_id), manifest, durable=False)
        files = {e.path: _seen_json(s) for e, s in scanned if s is not None}
        doc = {"version": _FORMAT, "taken_ns": started_ns, "files": files}
        atomic_write_json(stat_cache_path(store), doc, durable=False)
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
    path = manifest_path(store, pipeline_id)
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
