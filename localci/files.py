"""Files other runs may trust: atomic writes, flock locks, the user's cache directory, and
removing or fingerprinting a tree. A leaf: every layer may use it, it imports only errors."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from localci.errors import StateError

__all__ = [
    "TMP_SUFFIX",
    "LockBusy",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "hold_lock",
    "remove_tree",
    "state_error",
    "temp_path_for",
    "tree_fingerprint",
    "user_cache_dir",
]

TMP_SUFFIX = ".localci-tmp"


class LockBusy(StateError):
    """A non-blocking lock was requested and another holder has it."""


def state_error(path: Path, exc: OSError, action: str = "write") -> StateError:
    """A StateError naming the path, the OS reason and what the user can do."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        hint = "free some disk space (or delete .localci/) and run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "make the project directory writable, or run localci from a writable copy"
    else:
        hint = "check the path; deleting .localci/ resets localci's state safely"
    return StateError(f"cannot {action} {path}: {reason}\n    hint: {hint}")


def temp_path_for(path: Path) -> Path:
    """A unique temporary sibling of `path` that remove_stale() recognises."""
    # The pid in the name lets remove_stale tell a live writer's file from a crashed one's.
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    `durable=False` skips the fsyncs, for hints whose loss in a crash costs only time."""
    tmp = temp_path_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        if durable:
            _fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise state_error(path, exc) from exc


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Atomically write UTF-8 text."""
    atomic_write_bytes(path, text.encode(), durable=durable)


def atomic_write_json(path: Path, obj: object, *, durable: bool = True) -> None:
    """Atomically write compact JSON (one trailing newline)."""
    atomic_write_text(path, json.dumps(obj, separators=(",", ":")) + "\n", durable=durable)


def user_cache_dir() -> Path:
    """$LOCALCI_CACHE_DIR, else $XDG_CACHE_HOME/localci, else ~/.cache/localci."""
    explicit = os.environ.get("LOCALCI_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "localci"
    return Path.home() / ".cache" / "localci"


@contextmanager
def hold_lock(path: Path, *, blocking: bool = True, shared: bool = False) -> Iterator[None]:
    """Hold flock on `path` (exclusive unless `shared`); LockBusy if not blocking and taken."""
    fd = _acquire(path, blocking=blocking, shared=shared)
    try:
        yield
    finally:
        os.close(fd)


def _acquire(path: Path, *, blocking: bool, shared: bool) -> int:
    operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise state_error(path, exc, "create lock") from exc
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(f"{path} is held by another localci process") from None
        except BaseException:
            os.close(fd)
            raise
        # The holder may have deleted the file (remove_lock_file); a lock on an unlinked inode
        # would exclude no one, so retry on the file that is there now.
        try:
            if path.stat().st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only directories; a missing path is fine."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        for dirpath, dirnames, _ in os.walk(path):
            for name in (".", *dirnames):
                with contextlib.suppress(OSError):
                    Path(dirpath, name).chmod(0o700)
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def paths_fingerprint(root: Path, paths: Sequence[str]) -> str:
    """tree_fingerprint's digest for the listed paths below `root` only (a missing one counts
    as such): equal digests mean none of them was written, replaced or chmod-ed since."""
    digest = hashlib.sha256()
    for rel in paths:
        try:
            st = os.lstat(f"{root}/{rel}")
        except OSError:
            digest.update(f"{rel}\0missing\n".encode())
            continue
        digest.update(
            f"{rel}\0{st.st_mode}\0{st.st_ino}\0{st.st_size}\0"
            f"{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode()
        )
    return digest.hexdigest()


def tree_fingerprint(root: Path) -> str:
    """A digest of every entry under `root` (symlinks not followed); "" when `root` is missing.

    Inode, size, mode, mtime and ctime of each entry: a job can fake an mtime but not a ctime,
    so an equal fingerprint means nobody wrote, replaced or chmod-ed anything in the tree.
    """
    digest = hashlib.sha256()
    pending = [str(root)]
    try:
        top = os.lstat(root)
        if not stat.S_ISDIR(top.st_mode):
            return ""
        digest.update(f"{top.st_mode}\0{top.st_ino}\0{top.st_ctime_ns}\n".encode())
        while pending:
            directory = pending.pop()
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                digest.update(
                    f"{entry.path}\0{st.st_mode}\0{st.st_ino}\0{st.st_size}\0"
                    f"{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode()
                )
                if stat.S_ISDIR(st.st_mode):
                    pending.append(entry.path)
    except OSError:
        return ""
    return digest.hexdigest()
