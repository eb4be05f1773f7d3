"""Private copies of files: a reflink where the file system has them, else an in-kernel copy,
else reads and writes; never through a symlink, never waiting on a fifo. Stored trees (caches
and artifacts) take and hand out files only through these."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

_CHUNK = 1 << 20
_T = TypeVar("_T")
_R = TypeVar("_R")

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_file(src: str, dst: str, mode: int, mtime_ns: int) -> os.stat_result | None:
    """A private copy of regular file `src` at new path `dst`; None if `src` is not one."""
    with _regular_source(src) as source:
        if source is None:
            return None
        return _new_copy(dst, mode, mtime_ns, lambda out: clone_file(source, out))


def copy_and_read(
    src: str, dst: str, mode: int, mtime_ns: int, *, limit: int
) -> tuple[os.stat_result, bytes] | None:
    """copy_file that also returns the first `limit` bytes: one open for both."""
    with _regular_source(src) as source:
        if source is None:
            return None
        head = _read_up_to(source, limit)

        def fill(out: int) -> None:
            write_all(out, head)
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


def write_all(fd: int, data: bytes) -> None:
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
            write_all(out, chunk)


def in_threads(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """`[fn(item) for item in items]` in 4 threads (in order; the first error is raised)."""
    # Creating files dominates (~150 us each on a VM's ext4); the syscalls overlap in threads.
    if len(items) < 64:
        return [fn(item) for item in items]
    batches = [items[i : i + 64] for i in range(0, len(items), 64)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda batch: [fn(item) for item in batch], batches)
        return [result for batch in done for result in batch]
