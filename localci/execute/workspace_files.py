"""Writing a slot's files: from the snapshot store, or streamed from the user's git objects."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from localci.errors import StateError
from localci.execute.file_copies import write_all
from localci.execute.snapshot import GIT_BLOB, LINK, Entry
from localci.execute.snapshot_store import CHUNK, blob_path, copy_blob
from localci.files import remove_tree

_BIG_BLOB = 8 << 20


def write_entry(entry: Entry, full: str, objects_dir: Path) -> os.stat_result:
    if entry.kind == LINK:
        Path(full).symlink_to(entry.data)
        return os.lstat(full)
    blob = blob_path(objects_dir, entry.data)

    def fill(out: int) -> None:
        if entry.size:
            copy_blob(blob, out, entry.size)

    return _write_file(entry, full, fill)


def _write_file(entry: Entry, full: str, fill: Callable[[int], None]) -> os.stat_result:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(full, flags, entry.mode)
    try:
        fill(out)
        os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns))
        st = os.fstat(out)
        # Each call is a turn for the GIL; the chmod is needed only where the umask took bits.
        if stat.S_IMODE(st.st_mode) != entry.mode:
            os.fchmod(out, entry.mode)
            st = os.fstat(out)
        return st
    finally:
        os.close(out)


def write_from_git(root: str, entries: list[Entry], repo: Path) -> list[os.stat_result]:
    """Write `entries` (contents "git:<blob id>") from the user's object database: one
    `git cat-file --batch` streams the blobs, a few threads create the files."""
    if not entries:
        return []
    from localci.git import git_process

    proc = git_process(repo, "cat-file", "--batch")
    assert proc.stdin is not None and proc.stdout is not None
    blobs = _wide_reader(proc.stdout)
    requests = "".join(e.data.removeprefix(GIT_BLOB) + "\n" for e in entries).encode()
    feeder = threading.Thread(target=_feed, args=(proc.stdin, requests), daemon=True)
    feeder.start()
    in_flight = threading.BoundedSemaphore(64)  # blobs read but not yet written

    def write(entry: Entry, data: bytes) -> os.stat_result:
        try:
            return _write_file(entry, f"{root}/{entry.path}", lambda out: write_all(out, data))
        finally:
            in_flight.release()

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures: list[Future[os.stat_result]] = []
            for entry in entries:
                size = _read_git_header(blobs, entry, repo)
                if size > _BIG_BLOB:  # streamed here rather than held in memory
                    done: Future[os.stat_result] = Future()
                    full = f"{root}/{entry.path}"
                    fill = functools.partial(_copy_stream, blobs, size=size)
                    done.set_result(_write_file(entry, full, fill))
                    futures.append(done)
                else:
                    data = blobs.read(size)
                    in_flight.acquire()
                    futures.append(pool.submit(write, entry, data))
                blobs.read(1)  # each blob ends with a newline
            return [future.result() for future in futures]
    finally:
        blobs.close()
        proc.stdout.close()
        proc.kill()
        proc.wait()
        feeder.join()


def _wide_reader(pipe: IO[bytes]) -> IO[bytes]:
    # Fewer, larger reads: each read is a turn for the GIL, which the writer threads wait for.
    with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ is Linux's
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    return os.fdopen(pipe.fileno(), "rb", buffering=1 << 20, closefd=False)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):  # git ended early: the reader reports why
        pipe.write(data)
        pipe.close()


def _read_git_header(stream: IO[bytes], entry: Entry, repo: Path) -> int:
    header = stream.readline().split()
    if len(header) != 3 or header[1] != b"blob":
        raise StateError(
            f"blob {entry.data.removeprefix(GIT_BLOB)} of {entry.path} is no longer in the "
            f"git repository {repo} (the pipeline's snapshot needs it); run the pipeline again"
        )
    # A size other than entry.size: the file was edited between git's look and localci's
    # stat; the blob is what the snapshot saw, and the slot's record will not match it.
    return int(header[2])


def _copy_stream(stream: IO[bytes], out: int, *, size: int) -> None:
    while size > 0:
        chunk = stream.read(min(size, CHUNK))
        if not chunk:
            raise StateError("git cat-file ended early while writing a job workspace")
        write_all(out, chunk)
        size -= len(chunk)


def remove_path(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        path.unlink()
        return
    remove_tree(path)
