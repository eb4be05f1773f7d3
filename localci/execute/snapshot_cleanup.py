"""Removing what no running pipeline needs: finished snapshots, orphaned temp files,
unreferenced blobs of the store, and the builds folder of versions before issue 20."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from contextlib import ExitStack
from pathlib import Path

from localci.errors import StateError
from localci.execute.process import process_alive
from localci.execute.snapshot import FILE, load_snapshot, manifest_path, stat_cache_path
from localci.files import TMP_SUFFIX, LockBusy, remove_tree, state_error
from localci.state import Store


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
                manifest_path(store, pipeline_id).unlink(missing_ok=True)
                store.remove_lock_file(name)
        except LockBusy:
            continue


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
            if pid.isdigit() and not process_alive(int(pid)):
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
        raw = json.loads(stat_cache_path(store).read_text())
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
