"""Old runs under .localci/pipelines/ removed, keeping what later commands rely on.

Kept: the newest `keep` top-level pipelines with their child pipelines; for every job, the
newest pipeline holding a record of its artifacts (what `localci run --stage` and `localci run
JOB` hand on to later jobs, as `find_record(previous=True)` looks them up); any pipeline still
running or being read. A pipeline is moved aside under its locks, then deleted, so a reader
never sees half of one; ids are never reused (the counter file survives).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from localci.execute.artifacts import pipeline_ids
from localci.execute.process import process_alive
from localci.files import LockBusy, remove_tree
from localci.state import Store

__all__ = ["DEFAULT_KEEP", "PruneOutcome", "prune_after_run", "prune_pipelines"]

DEFAULT_KEEP = 50
_PRUNED_PREFIX = ".pruned-"


@dataclass(frozen=True, slots=True)
class PruneOutcome:
    removed: tuple[int, ...]
    kept: tuple[int, ...]
    busy: tuple[int, ...]  # would be removed, but running or being read now
    freed_bytes: int


def prune_pipelines(store: Store, keep: int, *, dry_run: bool = False) -> PruneOutcome:
    """Remove the pipelines nothing needs any more (see the module's text)."""
    if keep < 1:
        raise ValueError("keep at least one pipeline")
    _remove_leftovers(store)
    ids = pipeline_ids(store)  # sorted
    parents = {pid: parent for pid in ids if (parent := _parent_of(store, pid)) is not None}
    kept = _kept(store, ids, parents, keep)
    removed: list[int] = []
    busy: list[int] = []
    freed = 0
    for pid in ids:
        if pid in kept:
            continue
        size = _tree_size(store.pipeline_dir(pid))
        if dry_run or _remove(store, pid):
            removed.append(pid)
            freed += size
        else:
            busy.append(pid)
    return PruneOutcome(tuple(removed), tuple(sorted(kept)), tuple(busy), freed)


def prune_after_run(store: Store, keep: int) -> PruneOutcome | None:
    """Prune once the runs exceed `keep` by a margin, so that a run pays for reading the old
    records every few runs, not every time; None when nothing was due."""
    if len(pipeline_ids(store)) <= keep + max(10, keep // 5):
        return None
    return prune_pipelines(store, keep)


def _kept(store: Store, ids: list[int], parents: dict[int, int], keep: int) -> set[int]:
    top = [pid for pid in ids if pid not in parents]
    kept = set(top[-keep:])
    kept.update(pid for pid, parent in parents.items() if _root(pid, parents) in kept)
    kept.update(_newest_artifact_holders(store, ids))
    return kept


def _root(pid: int, parents: dict[int, int]) -> int:
    seen = set()
    while pid in parents and pid not in seen:
        seen.add(pid)
        pid = parents[pid]
    return pid


def _newest_artifact_holders(store: Store, ids: Iterable[int]) -> set[int]:
    """For every job's artifacts directory name, the newest pipeline that has one."""
    holders: set[int] = set()
    seen: set[str] = set()
    for pid in sorted(ids, reverse=True):
        try:
            names = {
                entry.name
                for entry in os.scandir(store.pipeline_dir(pid) / "artifacts")
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")
            }
        except OSError:
            continue
        if names - seen:
            holders.add(pid)
            seen |= names
    return holders


def _remove(store: Store, pid: int) -> bool:
    """Move the pipeline aside under its locks and delete it; False when it is in use."""
    path = store.pipeline_dir(pid)
    try:
        with (
            store.lock(f"pipeline-{pid}", blocking=False),
            store.lock(f"artifacts-{pid}", blocking=False),
        ):
            aside = path.parent / f"{_PRUNED_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"
            path.rename(aside)
            store.remove_lock_file(f"artifacts-{pid}")
            store.remove_lock_file(f"pipeline-{pid}")
    except LockBusy:
        return False
    except FileNotFoundError:
        return True  # another localci pruned it meanwhile
    remove_tree(aside)
    return True


def _remove_leftovers(store: Store) -> None:
    """Trees a pruning localci moved aside but was stopped before deleting."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(store.path("pipelines")):
            if entry.name.startswith(_PRUNED_PREFIX) and not _writer_alive(entry.name):
                remove_tree(Path(entry.path))


def _writer_alive(name: str) -> bool:
    pid_text = name[len(_PRUNED_PREFIX) :].split("-", 1)[0]
    return pid_text.isdigit() and process_alive(int(pid_text))


def _parent_of(store: Store, pid: int) -> int | None:
    try:
        data = json.loads((store.pipeline_dir(pid) / "pipeline.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    parent = data.get("parent") if isinstance(data, dict) else None  # {"pipeline": id, "job"}
    pipeline = parent.get("pipeline") if isinstance(parent, dict) else parent
    return pipeline if isinstance(pipeline, int) else None


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_blocks * 512
    return total
