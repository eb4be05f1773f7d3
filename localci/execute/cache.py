"""Caches (docs/SEMANTICS.md §13): keys as GitLab and gitlab-runner compute them, and one entry
per key in .localci/cache/<key>/, saved atomically under a per-key lock.

Every job gets a private copy of the entry, as on GitLab where each job extracts its own: two
jobs restoring one key at once (`-j 2`, or two runs of one project) never see each other's
writes, and no job can change the entry. Saving copies too, so an entry never shares an inode
with a workspace. Copies are reflinks where the file system shares blocks (btrfs, XFS), else
copy_file_range, spread over 4 threads (bench/cache_bench.py, 200 MB in 10,000 files on ext4
without reflink: a restore costs 0.65-1.0x of `cp -a`, see bench/README.md). Hard links were
faster (0.03-0.16x) but let a job's in-place write reach another job running from the entry.
Files that contain the saving workspace's path are written relocated for the restoring one.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localci.config.model import Cache, CacheKeyFiles
from localci.errors import StateError
from localci.execute.artifacts import iso_time
from localci.execute.path_selection import transfer_error
from localci.execute.stored_trees import (
    DATA,
    Manifest,
    TreeEntry,
    clean_stale,
    new_id,
    read_manifest,
    reloc_marker,
    retire,
    seal,
    temp_dir,
    verify_tree,
    write_tree,
)
from localci.execute.tree_restore import Restored, relocator, restore_tree
from localci.files import LockBusy, remove_tree, state_error
from localci.plan.variables import expand_runner
from localci.state import Store

POLICIES = ("pull", "push", "pull-push")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,+=@-]{0,127}")


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """One stored cache entry, for `localci cache list`."""

    key: str
    size_bytes: int
    files: int
    saved_at: str
    from_job: str


# ------------------------------------------------------------------------------------------ keys


def cache_key(cache: Cache, root: Path, env: Mapping[str, str], job: str) -> str:
    """The effective key: runner-expanded, or `prefix-<digest>` for `key:files`; "" skips.

    TransferError (naming the job and key) for a key GitLab refuses: containing `/` or `%2F`,
    or made only of dots, or `key:files` leaving the project.
    """
    if isinstance(cache.key, CacheKeyFiles):
        digest = files_digest(root, cache.key.files, job) or "default"
        prefix = expand_runner(cache.key.prefix or "", env)
        key = f"{prefix}-{digest}" if prefix else digest
    else:
        key = expand_runner(cache.key, env)
    if key:
        check_key(key, job)
    return key


def check_key(key: str, job: str, what: str = "cache key") -> None:
    if "/" in key or "%2f" in key.lower():
        raise transfer_error(
            job, f"{what} {key!r} contains '/' or '%2F'", "GitLab refuses such cache keys"
        )
    if set(key) == {"."}:
        raise transfer_error(job, f"{what} {key!r} cannot be only dots")


def files_digest(root: Path, patterns: Sequence[str], job: str) -> str | None:
    """GitLab's `key:files` digest: git blob ids of the existing files, sorted, unique, joined
    with `-`, SHA-1 hex; None when no file exists. A pattern with `*` is matched against the
    workspace's files like Gitaly's wildcard search (`**` spans `/`, `*` does not)."""
    wanted = list(dict.fromkeys(p for p in patterns if p))
    for pattern in wanted:
        if pattern.startswith("/") or ".." in pattern.split("/"):
            raise transfer_error(job, f"cache key file {pattern!r} is outside the project")
    listed = _project_files(root) if any("*" in p for p in wanted) else []
    paths: list[str] = []
    for pattern in wanted:
        if "*" in pattern:
            regex = _wildcard(pattern)
            paths.extend(p for p in listed if regex.fullmatch(p))
        else:
            paths.append(pattern)
    blobs = {blob for path in dict.fromkeys(paths) if (blob := _blob_id(root, path))}
    if not blobs:
        return None
    return hashlib.sha1("-".join(sorted(blobs)).encode()).hexdigest()  # noqa: S324 - GitLab's


def _wildcard(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern)
    escaped = escaped.replace(r"\*\*", ".*?").replace(r"\*", "[^/]*?")
    return re.compile(escaped, re.DOTALL)


def _project_files(root: Path) -> list[str]:
    """The workspace's files as git lists them (tracked and untracked, not ignored)."""
    from localci.git import run_git

    proc = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if proc.returncode != 0:
        return []
    return sorted({os.fsdecode(raw) for raw in proc.stdout.split(b"\0") if raw})


def _blob_id(root: Path, rel: str) -> str | None:
    """`git hash-object` of a regular file or symlink (its target); None otherwise."""
    path = root / rel
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            data = os.readlink(os.fsencode(path))  # noqa: PTH115 - exact target bytes
        elif stat.S_ISREG(st.st_mode) and not _through_symlink(root, rel):
            data = path.read_bytes()
        else:
            return None
    except OSError:
        return None
    header = f"blob {len(data)}\0".encode()
    return hashlib.sha1(header + data).hexdigest()  # noqa: S324 - git's object id


def _through_symlink(root: Path, rel: str) -> bool:
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            return True
    return False


def check_policy(raw: str, env: Mapping[str, str], job: str, key: str) -> str:
    policy = expand_runner(raw, env)
    if policy not in POLICIES:
        raise transfer_error(
            job,
            f"cache {key!r}: unknown cache policy {policy!r}",
            "use pull, push or pull-push",
        )
    return policy


# --------------------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class CacheRestore:
    """The outcome of restoring one key: `status` is restored, missing or damaged."""

    key: str
    status: str
    manifest: Manifest | None = None
    restored: Restored | None = None
    detail: str = ""


class CacheStore:
    """The cache entries of one project: .localci/cache/<key>/{manifest.json,data/}."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.path("cache")

    def entry_dir(self, key: str) -> Path:
        if _PLAIN_KEY.fullmatch(key):
            return self.root / key
        return self.root / ("%" + hashlib.sha256(key.encode()).hexdigest()[:40])

    @staticmethod
    def lock_name(key: str) -> str:
        return "cache-" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def restore(
        self,
        key: str,
        dest: Path,
        *,
        relocate_to: tuple[Path, Path | None],
    ) -> CacheRestore:
        """Restore `key` into `dest` if a complete, unchanged entry exists.

        `relocate_to` is the restoring (project_dir, builds_dir). A damaged entry is removed
        and reported as such; a directory without a usable manifest is removed as missing.
        """
        entry = self.entry_dir(key)
        try:
            with self.store.lock(self.lock_name(key), shared=True):
                outcome = self._restore_locked(key, entry, dest, relocate_to)
        except OSError as exc:
            raise state_error(Path(exc.filename or entry), exc, "restore cache from") from exc
        # Removal needs the lock exclusively, so only after the shared hold ended.
        if outcome.status == "damaged" and outcome.manifest is not None:
            self.invalidate(key, outcome.manifest.id)
        elif outcome.status == "missing" and outcome.detail == "incomplete":
            self._drop_incomplete(key)
        return outcome

    def _restore_locked(
        self,
        key: str,
        entry: Path,
        dest: Path,
        relocate_to: tuple[Path, Path | None],
    ) -> CacheRestore:
        manifest = read_manifest(entry)
        if manifest is None:
            return CacheRestore(key, "missing", detail="incomplete" if entry.exists() else "")
        if manifest.meta.get("key") != key:
            return CacheRestore(key, "missing")
        bad = verify_tree(entry, manifest)
        if bad is not None:
            return CacheRestore(key, "damaged", manifest, detail=bad)
        restored = restore_tree(entry, manifest, dest, relocate=relocator(manifest, *relocate_to))
        return CacheRestore(key, "restored", manifest, restored)

    def current_id(self, key: str) -> str | None:
        """The id of the entry stored under `key` now (None: there is none)."""
        with self.store.lock(self.lock_name(key), shared=True):
            manifest = read_manifest(self.entry_dir(key))
        return manifest.id if manifest is not None and manifest.meta.get("key") == key else None

    def save(
        self,
        key: str,
        src_root: Path,
        paths: Sequence[str],
        *,
        builds_dir: Path | None,
        meta: Mapping[str, object],
        known: Mapping[str, TreeEntry],
    ) -> Manifest:
        """Build a new entry in a temp dir, seal it, and swap it in under the key's lock."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            clean_stale(self.root)
            tmp = temp_dir(self.root)
            try:
                manifest = self._build(tmp, key, src_root, paths, builds_dir, meta, known)
                self._swap(key, tmp)
            finally:
                remove_tree(tmp)  # gone already unless something failed
        except OSError as exc:
            raise state_error(Path(exc.filename or self.root), exc, "save cache in") from exc
        return manifest

    def _build(
        self,
        tmp: Path,
        key: str,
        src_root: Path,
        paths: Sequence[str],
        builds_dir: Path | None,
        meta: Mapping[str, object],
        known: Mapping[str, TreeEntry],
    ) -> Manifest:
        entries = write_tree(
            src_root,
            paths,
            tmp / DATA,
            marker=reloc_marker(src_root, builds_dir),
            known=known,
        )
        manifest = Manifest(
            new_id(),
            str(src_root),
            str(builds_dir or ""),
            tuple(entries),
            {**meta, "key": key},
        )
        seal(tmp, manifest)
        return manifest

    def _swap(self, key: str, tmp: Path) -> None:
        dest = self.entry_dir(key)
        old = None
        with self.store.lock(self.lock_name(key)):
            if dest.exists() or dest.is_symlink():
                old = retire(dest)
            tmp.rename(dest)
        if old is not None:
            remove_tree(old)

    def invalidate(self, key: str, entry_id: str) -> bool:
        """Remove the entry of `key` if it still is `entry_id` (another save may have won)."""
        dest = self.entry_dir(key)
        try:
            with self.store.lock(self.lock_name(key), blocking=False):
                manifest = read_manifest(dest)
                if manifest is None or manifest.id != entry_id:
                    return False
                old = retire(dest)
        except (LockBusy, OSError):
            return False
        remove_tree(old)
        return True

    def _drop_incomplete(self, key: str) -> None:
        """An entry directory without a usable manifest (damaged by hand or by a disk error)."""
        dest = self.entry_dir(key)
        try:
            with self.store.lock(self.lock_name(key), blocking=False):
                if read_manifest(dest) is not None or not dest.exists():
                    return
                old = retire(dest)
        except (LockBusy, OSError):
            return
        remove_tree(old)

    # ----------------------------------------------------------------- listing and clearing

    def entries(self) -> list[tuple[Path, Manifest | None]]:
        try:
            dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name[0] != ".")
        except OSError:
            return []
        return [(path, read_manifest(path)) for path in dirs]

    def list(self) -> list[CacheInfo]:
        infos = []
        for _, manifest in self.entries():
            if manifest is None:
                continue
            meta = manifest.meta
            saved = meta.get("saved_at")
            infos.append(
                CacheInfo(
                    key=str(meta.get("shown_key", meta.get("key", ""))),
                    size_bytes=manifest.size_bytes,
                    files=manifest.files,
                    saved_at=iso_time(float(saved)) if isinstance(saved, (int, float)) else "",
                    from_job=str(meta.get("job", "")),
                )
            )
        return sorted(infos, key=lambda info: info.key)

    def clear(self, key: str | None) -> int:
        """Delete one key's entry (or all entries and leftovers); how many entries went."""
        removed = 0
        for path, manifest in self.entries():
            entry_key = str(manifest.meta.get("key", "")) if manifest else None
            if key is not None and entry_key != key:
                continue
            if self._remove_entry(path, entry_key):
                removed += manifest is not None
        if key is None:
            clean_stale(self.root)
        return removed

    def _remove_entry(self, path: Path, key: str | None) -> bool:
        lock = self.lock_name(key) if key is not None else "cache-orphans"
        try:
            with self.store.lock(lock):
                old = retire(path)
        except OSError as exc:
            raise StateError(f"cannot remove cache entry {path}: {exc}") from exc
        remove_tree(old)
        return True


def list_caches(store: Store) -> list[CacheInfo]:
    """Every complete cache entry of the project."""
    return CacheStore(store).list()


def clear_caches(store: Store, key: str | None) -> int:
    """Delete the entry of `key`, or every entry when None; the number deleted."""
    return CacheStore(store).clear(key)
