"""The content-addressed blob store of .localci/objects, which holds snapshot file contents.

Also the small file primitives the snapshot and the slots share: thread-overlapped file
creation and copying a blob's bytes out (copy_file_range where the kernel has it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from localci.errors import StateError
from localci.files import state_error, temp_path_for

CHUNK = 1 << 20
# While files are written, threads hand the GIL over after this long instead of Python's 5 ms.
_SHORT_TURN_S = 0.0005
_T = TypeVar("_T")
_R = TypeVar("_R")


def blob_path(objects_dir: Path, digest: str) -> Path:
    return objects_dir / digest[:2] / digest[2:]


class BlobStore:
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
        if size_hint <= CHUNK:
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
            while chunk := os.read(fd, CHUNK):
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
        final = blob_path(self.dir, digest)
        try:
            if digest[:2] not in self._fans:
                final.parent.mkdir(exist_ok=True)
                self._fans.add(digest[:2])
            tmp.replace(final)
        except OSError as exc:
            raise state_error(final, exc) from exc


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def parallel(fn: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    # File creation dominates (~150 us each on a VM's ext4); the syscalls overlap in threads.
    if len(items) < 64:
        return [fn(item) for item in items]
    batches = [items[i : i + 64] for i in range(0, len(items), 64)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda batch: [fn(item) for item in batch], batches)
        return [result for batch in done for result in batch]


class _Turns:
    """Who asked for short GIL turns, and the interval to restore once nobody does."""

    lock = threading.Lock()
    users = 0
    saved = 0.0


@contextmanager
def short_gil_turns() -> Iterator[None]:
    """Shorten the interpreter's switch interval while the block writes many files.

    Each file costs a few system calls, and after each one a thread waits for the GIL: with
    a busy thread next to it (the venv being created, git's output being read) that wait is
    the whole switch interval, 5 ms, which made writing 5,000 files take seconds.
    """
    with _Turns.lock:
        if _Turns.users == 0:
            _Turns.saved = sys.getswitchinterval()
            sys.setswitchinterval(_SHORT_TURN_S)
        _Turns.users += 1
    try:
        yield
    finally:
        with _Turns.lock:
            _Turns.users -= 1
            if _Turns.users == 0:
                sys.setswitchinterval(_Turns.saved)


def copy_blob(blob: Path, out: int, size: int) -> None:
    with blob.open("rb") as src:
        try:
            copied = _copy_range(src.fileno(), out, size)
        except (AttributeError, OSError):  # no copy_file_range (macOS, old kernels)
            copied = os.lseek(out, 0, os.SEEK_CUR)
            while chunk := src.read(CHUNK):
                copied += os.write(out, chunk)
    if copied != size:
        raise StateError(
            f"snapshot blob {blob} is damaged (expected {size} bytes, found {copied})\n"
            "    hint: delete .localci/objects and .localci/snapshots, then run again"
        )


def _copy_range(src: int, out: int, size: int) -> int:
    # copy_file_range lets reflink-capable filesystems (btrfs, XFS) share the blocks.
    copied = 0
    while copied < size:
        n = os.copy_file_range(src, out, size - copied)
        if n == 0:
            break
        copied += n
    return copied
