"""A job's artifacts (docs/SEMANTICS.md §14) as one pipeline stores them: the record of its
archive, reports and dotenv saved and read under the pipeline's lock, and what
`localci artifacts` lists and copies."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from localci.errors import StateError, UsageError
from localci.execute.file_copies import copy_file
from localci.execute.stored_trees import (
    DATA,
    DIR,
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
from localci.execute.tree_restore import restore_tree
from localci.files import remove_tree, state_error
from localci.state import Store

#: Beside the archive (DATA), a record keeps copies of its report files here, by report type.
REPORTS = "reports"


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """One job's artifacts in one pipeline, for `localci artifacts`."""

    pipeline_id: int
    job: str
    name: str
    files: int
    size_bytes: int
    created_at: str
    expire_at: str | None
    expired: bool
    reports: tuple[str, ...]
    path: Path


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A job's stored artifacts record: its archive (maybe none), reports and dotenv."""

    pipeline_id: int
    path: Path
    manifest: Manifest

    @property
    def job(self) -> str:
        return str(self.manifest.meta.get("job", ""))

    @property
    def has_archive(self) -> bool:
        return bool(self.manifest.meta.get("archive")) and bool(self.manifest.entries)

    @property
    def dotenv(self) -> dict[str, str]:
        raw = self.manifest.meta.get("dotenv") or {}
        return {str(k): str(v) for k, v in raw.items()}

    def expired(self, now: float | None = None) -> bool:
        expire_at = self.manifest.meta.get("expire_at")
        return expire_at is not None and float(expire_at) <= (now or time.time())

    def info(self) -> ArtifactInfo:
        meta = self.manifest.meta
        expire_at = meta.get("expire_at")
        reports = meta.get("reports") or {}
        return ArtifactInfo(
            pipeline_id=self.pipeline_id,
            job=self.job,
            name=str(meta.get("name") or "artifacts"),
            files=self.manifest.files if self.has_archive else 0,
            size_bytes=self.manifest.size_bytes if self.has_archive else 0,
            created_at=str(meta.get("created_at", "")),
            expire_at=None if expire_at is None else iso_time(float(expire_at)),
            expired=self.expired(),
            reports=tuple(f"{kind}: {path}" for kind, paths in reports.items() for path in paths),
            path=self.path / DATA,
        )


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_dir_name(job: str) -> str:
    """The directory of a job's artifacts: its name made file-safe, disambiguated if changed."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job).strip("_.") or "job"
    if safe == job:
        return safe
    return f"{safe[:100]}-{hashlib.sha1(job.encode()).hexdigest()[:8]}"  # noqa: S324 - a name


def artifacts_root(store: Store, pipeline_id: int) -> Path:
    return store.pipeline_dir(pipeline_id) / "artifacts"


def _lock(pipeline_id: int) -> str:
    return f"artifacts-{pipeline_id}"


@dataclass(frozen=True, slots=True)
class ArtifactUpload:
    """What a finished job hands to save_artifacts."""

    job: str
    project_dir: Path
    builds_dir: Path | None
    archive: Sequence[str] | None  # selected paths, None when artifacts:when did not match
    reports: Mapping[str, Sequence[str]]  # report type -> paths relative to project_dir
    meta: Mapping[str, Any]


def save_artifacts(store: Store, pipeline_id: int, upload: ArtifactUpload) -> Manifest:
    """Store a job's artifacts record for this pipeline atomically (a retry replaces it)."""
    root = artifacts_root(store, pipeline_id)
    try:
        clean_stale(root)
        tmp = temp_dir(root)
        manifest = _build_record(tmp, upload)
        _swap(store, _lock(pipeline_id), tmp, root / job_dir_name(upload.job))
    except OSError as exc:
        raise state_error(Path(exc.filename or root), exc, "store artifacts in") from exc
    return manifest


def _build_record(tmp: Path, upload: ArtifactUpload) -> Manifest:
    marker = reloc_marker(upload.project_dir, upload.builds_dir)
    entries: list[TreeEntry] = []
    if upload.archive is not None:
        entries = write_tree(
            upload.project_dir, upload.archive, tmp / DATA, marker=marker, known={}
        )
    for kind, paths in upload.reports.items():
        for rel in paths:
            _copy_report(upload.project_dir / rel, tmp / REPORTS / job_dir_name(kind) / rel)
    meta = {
        **upload.meta,
        "job": upload.job,
        "archive": upload.archive is not None,
        "reports": {kind: list(paths) for kind, paths in upload.reports.items()},
    }
    manifest = Manifest(
        new_id(),
        str(upload.project_dir),
        str(upload.builds_dir or ""),
        tuple(entries),
        meta,
    )
    # A record of no files is only a marker, cheaper to lose in a crash than to fsync per job.
    seal(tmp, manifest, durable=bool(entries or upload.reports))
    return manifest


def _copy_report(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    st = os.lstat(src)
    if stat.S_ISREG(st.st_mode) and not dst.exists():
        copy_file(str(src), str(dst), 0o644, st.st_mtime_ns)


def _swap(store: Store, lock: str, tmp: Path, dest: Path) -> None:
    old = None
    with store.lock(lock):
        if dest.exists() or dest.is_symlink():
            old = retire(dest)
        tmp.rename(dest)
    if old is not None:
        remove_tree(old)


@contextmanager
def reading(store: Store, pipeline_id: int) -> Iterator[None]:
    """Hold the pipeline's artifacts lock shared while a record is read or restored."""
    with store.lock(_lock(pipeline_id), shared=True):
        yield


def read_record(store: Store, pipeline_id: int, job: str) -> ArtifactRecord | None:
    """The job's artifacts record in one pipeline (None if it did not run there)."""
    path = artifacts_root(store, pipeline_id) / job_dir_name(job)
    manifest = read_manifest(path)
    if manifest is None or manifest.meta.get("job") != job:
        return None
    return ArtifactRecord(pipeline_id, path, manifest)


def find_record(
    store: Store, pipeline_id: int, job: str, *, previous: bool
) -> ArtifactRecord | None:
    """This pipeline's record of `job`, else (when `previous`) the latest earlier one."""
    record = read_record(store, pipeline_id, job)
    if record is not None or not previous:
        return record
    for earlier in sorted((i for i in pipeline_ids(store) if i < pipeline_id), reverse=True):
        record = read_record(store, earlier, job)
        if record is not None:
            return record
    return None


def pipeline_ids(store: Store) -> list[int]:
    try:
        names = [p.name for p in store.path("pipelines").iterdir()]
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def _records(store: Store, pipeline_id: int) -> list[ArtifactRecord]:
    root = artifacts_root(store, pipeline_id)
    try:
        dirs = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    records = []
    for path in dirs:
        manifest = read_manifest(path)
        if manifest is not None and (manifest.entries or manifest.meta.get("reports")):
            records.append(ArtifactRecord(pipeline_id, path, manifest))
    return records


def list_artifacts(store: Store, pipeline_id: int | None, job: str | None) -> list[ArtifactInfo]:
    """Artifacts of one pipeline (None: the latest pipeline that has any), maybe one job's."""
    ids = [pipeline_id] if pipeline_id is not None else sorted(pipeline_ids(store), reverse=True)
    for candidate in ids:
        records = [r for r in _records(store, candidate) if job is None or r.job == job]
        if records or pipeline_id is not None:
            return [r.info() for r in records]
    return []


def copy_artifacts(store: Store, pipeline_id: int | None, job: str, dest: Path) -> list[Path]:
    """Copy a job's artifact files into `dest` (plain copies); the paths written."""
    infos = list_artifacts(store, pipeline_id, job)
    if not infos or not infos[0].files:
        where = f"pipeline #{pipeline_id}" if pipeline_id is not None else "any pipeline"
        raise UsageError(f"no artifacts of job {job!r} in {where}")
    record = read_record(store, infos[0].pipeline_id, job)
    if record is None:
        raise UsageError(f"the artifacts of job {job!r} were removed meanwhile")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with reading(store, record.pipeline_id):
            if verify_tree(record.path, record.manifest) is not None:
                raise StateError(f"the stored artifacts of {job!r} were changed after saving")
            restore_tree(record.path, record.manifest, dest)
    except OSError as exc:
        raise state_error(Path(exc.filename or dest), exc, "copy artifacts to") from exc
    return [dest / e.path for e in record.manifest.entries if e.kind != DIR]


def expire_at(expire_in: str | None, now: float) -> float | None:
    """When artifacts expire; None for `never`, no `expire_in`, or an unreadable one."""
    from localci.execute.durations import parse_duration

    seconds = parse_duration(expire_in) if expire_in else None
    return None if seconds is None else now + seconds
