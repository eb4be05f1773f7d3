"""A slot's git index, written by localci: HEAD's tree with the stat data of the files it placed.

`git read-tree` + `git update-index --refresh` would give the same index, but the refresh reads
and hashes every file of the slot again (about a second for 5,000 files). localci already knows
which slot files hold exactly HEAD's blob: it wrote them from that blob (or verified they are
its untouched copy), so their stat data goes into the index as git's refresh would record it.
Every other entry (edited, converted, a symlink, a submodule) gets zeroed stat data, as after
`git read-tree`, so git compares its content when asked.

Index format version 2: gitformat-index(5).
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Mapping
from pathlib import Path

from localci.execute.snapshot import FILE, GIT_BLOB, Snapshot
from localci.files import atomic_write_bytes

_U32 = 0xFFFFFFFF
_NAME_MAX = 0xFFF  # longer names store this in the flags; git finds the end by the NUL
_STAT = struct.Struct(">10I")
_FLAGS = struct.Struct(">H")
_REGULAR, _EXECUTABLE = 0o100644, 0o100755


def write_index(project_dir: Path, snapshot: Snapshot, stats: Mapping[str, os.stat_result]) -> None:
    """Write `project_dir`/.git/index for commit `snapshot.sha` (not unborn); `stats` is the
    stat of each snapshot path as localci left it in the slot."""
    from localci.git import git_output

    git_dir = project_dir / ".git"
    env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(project_dir)}
    listing = git_output(project_dir, "ls-tree", "-r", "-z", "--full-tree", snapshot.sha, env=env)
    records = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode_text, _, oid = meta.split(b" ")
        path = os.fsdecode(raw_path)
        mode = _index_mode(int(mode_text, 8))
        same = _holds_blob(snapshot, path, mode, oid.decode())
        records.append(
            (raw_path, mode, bytes.fromhex(oid.decode()), stats.get(path) if same else None)
        )
    records.sort(key=lambda r: r[0])
    sha256 = len(snapshot.sha) == 64
    body = [b"DIRC", struct.pack(">II", 2, len(records))]
    body += [_entry(*record) for record in records]
    data = b"".join(body)
    digest = hashlib.sha256(data) if sha256 else hashlib.sha1(data)  # noqa: S324 (git's format)
    atomic_write_bytes(git_dir / "index", data + digest.digest(), durable=False)


def _index_mode(mode: int) -> int:
    # git keeps only 644/755 for files (older trees may say 100664).
    if stat.S_ISREG(mode):
        return _EXECUTABLE if mode & 0o100 else _REGULAR
    return mode


def _holds_blob(snapshot: Snapshot, path: str, mode: int, oid: str) -> bool:
    """Whether localci wrote `path` from blob `oid` with the executable bit of `mode`."""
    entry = snapshot.by_path.get(path)
    if entry is None or entry.kind != FILE or mode not in (_REGULAR, _EXECUTABLE):
        return False
    executable = bool(entry.mode & 0o100)
    return entry.data == GIT_BLOB + oid and executable == (mode == _EXECUTABLE)


def _entry(path: bytes, mode: int, oid: bytes, st: os.stat_result | None) -> bytes:
    if st is None:
        fields = _STAT.pack(0, 0, 0, 0, 0, 0, mode, 0, 0, 0)
    else:
        ctime_s, ctime_ns = divmod(st.st_ctime_ns, 1_000_000_000)
        mtime_s, mtime_ns = divmod(st.st_mtime_ns, 1_000_000_000)
        fields = _STAT.pack(
            ctime_s & _U32,
            ctime_ns,
            mtime_s & _U32,
            mtime_ns,
            st.st_dev & _U32,
            st.st_ino & _U32,
            mode,
            st.st_uid & _U32,
            st.st_gid & _U32,
            st.st_size & _U32,
        )
    packed = fields + oid + _FLAGS.pack(min(len(path), _NAME_MAX)) + path
    # 1 to 8 NULs: the name ends with one, and each entry is a multiple of 8 bytes long.
    return packed + b"\0" * (8 - len(packed) % 8)
