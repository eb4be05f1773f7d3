"""What the pipeline page shows, read from a pipeline's records: jobs, logs, tests, artifacts.

Records are read loosely (`.get` with defaults): pages must still render for records written
by older or newer localci versions, and for child pipelines nested in a trigger job's entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from localci.execute.artifacts import REPORTS, job_dir_name
from localci.execute.stored_trees import DATA, FILE, Manifest, read_manifest
from localci.report.logview import RenderedLog, render_log
from localci.report.testcases import TestCase, read_cases, sort_cases

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})
MAX_ARTIFACT_FILES = 200
MAX_PASSED_LISTED = 500
#: Of a longer log only the end is read (the page shows the last lines anyway).
MAX_LOG_BYTES = 8 * 1024 * 1024
#: Keys under which a trigger job's entry may carry its downstream pipeline record(s).
DOWNSTREAM_KEYS = ("children", "child", "downstream", "child_pipeline", "child_pipelines")
MAX_NESTING = 3


@dataclass(frozen=True, slots=True)
class Artifact:
    path: str
    href: str
    size: int
    image: bool


@dataclass(frozen=True, slots=True)
class Exposed:
    name: str
    job: str
    href: str


@dataclass(frozen=True, slots=True)
class Tests:
    passed: int
    failed: int
    skipped: int
    errors: int
    cases: tuple[TestCase, ...]
    warnings: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors

    @property
    def failing(self) -> tuple[TestCase, ...]:
        return tuple(c for c in self.cases if c.status in ("failed", "error"))

    @property
    def listed_passed(self) -> tuple[TestCase, ...]:
        return tuple(c for c in self.cases if c.status == "success")[:MAX_PASSED_LISTED]


@dataclass(frozen=True, slots=True)
class JobView:
    key: str  # a DOM-safe id, unique in the page (child pipelines' jobs included)
    name: str
    stage: str
    status: str  # GitLab's status, or 'warning' for an allowed failure
    label: str
    when: str
    duration_s: float
    ran: bool
    reason: str
    exit_code: int | None
    needs: tuple[str, ...] | None
    started_at: float | None
    finished_at: float | None
    coverage: float | None
    tests: Tests | None
    log: RenderedLog | None
    log_href: str
    artifacts: tuple[Artifact, ...]
    more_artifacts: int
    downstream: tuple[PipelineView, ...]

    @property
    def duration(self) -> str:
        return human_duration(self.duration_s) if self.ran else ""


@dataclass(frozen=True, slots=True)
class PipelineView:
    id: int | str
    status: str
    ref: str
    sha: str
    source: str
    created_at: str
    duration_s: float
    stages: tuple[str, ...]
    jobs: tuple[JobView, ...]
    exposed: tuple[Exposed, ...]
    reason: str = ""

    @property
    def duration(self) -> str:
        return human_duration(self.duration_s)

    def stage_jobs(self) -> list[tuple[str, list[JobView]]]:
        return [(s, [j for j in self.jobs if j.stage == s]) for s in self.stages]

    @property
    def tests(self) -> Tests | None:
        reports = [job.tests for job in self.jobs if job.tests is not None]
        if not reports:
            return None
        return Tests(
            sum(t.passed for t in reports),
            sum(t.failed for t in reports),
            sum(t.skipped for t in reports),
            sum(t.errors for t in reports),
            tuple(sort_cases(c for t in reports for c in t.cases)),
        )

    @property
    def coverage(self) -> float | None:
        values = [job.coverage for job in self.jobs if job.coverage is not None]
        return round(sum(values) / len(values), 2) if values else None


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class _Keys:
    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"j{self.count}"


def pipeline_view(record: Mapping[str, Any], record_dir: Path, page_dir: Path) -> PipelineView:
    """The page's view of one pipeline record; links are relative to `page_dir`."""
    return _pipeline(record, record_dir, page_dir, _Keys(), depth=0)


def _pipeline(
    record: Mapping[str, Any], record_dir: Path, page_dir: Path, keys: _Keys, depth: int
) -> PipelineView:
    entries = [e for e in record.get("jobs") or () if isinstance(e, Mapping) and e.get("name")]
    # Records list jobs as they finished; GitLab draws a stage's jobs in definition order.
    entries.sort(key=lambda e: e["order"] if isinstance(e.get("order"), int) else len(entries))
    jobs = tuple(_job(entry, record_dir, page_dir, keys, depth) for entry in entries)
    return PipelineView(
        id=record.get("id", record.get("pipeline", "?")),
        status=str(record.get("status", "unknown")),
        ref=str(record.get("ref") or ""),
        sha=str(record.get("sha") or ""),
        source=str(record.get("source") or ""),
        created_at=str(record.get("created_at") or ""),
        duration_s=float(record.get("duration_s") or 0.0),
        stages=_stages(record.get("stages"), jobs),
        jobs=jobs,
        exposed=tuple(_exposed(entries, jobs, record_dir, page_dir)),
        reason=str(record.get("reason") or ""),
    )


def _stages(recorded: object, jobs: Sequence[JobView]) -> tuple[str, ...]:
    used = {job.stage for job in jobs}
    order = [s for s in recorded if s in used] if isinstance(recorded, list) else []
    for job in jobs:  # stages of an older record (no `stages`): in the order jobs were recorded
        if job.stage not in order:
            order.append(job.stage)
    return tuple(order)


def _job(
    entry: Mapping[str, Any], record_dir: Path, page_dir: Path, keys: _Keys, depth: int
) -> JobView:
    name = str(entry["name"])
    status = str(entry.get("status") or "created")
    allowed = bool(entry.get("allow_failure"))
    log_path = _log_path(entry.get("log"), record_dir)
    tree = _job_artifacts_dir(record_dir, name)
    manifest = read_manifest(tree)
    if manifest is not None and manifest.meta.get("job") != name:
        manifest = None
    artifacts, more = _artifacts(tree, manifest, page_dir)
    return JobView(
        key=keys.next(),
        name=name,
        stage=str(entry.get("stage") or "test"),
        status="warning" if allowed and status in ("failed", "canceled") else status,
        label=_label(status, allowed, str(entry.get("when") or "")),
        when=str(entry.get("when") or "on_success"),
        duration_s=float(entry.get("duration_s") or 0.0),
        ran=log_path is not None,
        reason=str(entry.get("reason") or ""),
        exit_code=entry.get("exit_code") if isinstance(entry.get("exit_code"), int) else None,
        needs=tuple(str(n) for n in entry["needs"])
        if isinstance(entry.get("needs"), list)
        else None,
        started_at=_number(entry.get("started_at")),
        finished_at=_number(entry.get("finished_at")),
        coverage=_number(entry.get("coverage")),
        tests=_tests(entry, tree, manifest, name),
        log=_log(log_path, int(entry.get("before_script") or 0)),
        log_href=_href(log_path, page_dir) if log_path else "",
        artifacts=artifacts,
        more_artifacts=more,
        downstream=_downstream(entry, record_dir, page_dir, keys, depth),
    )


def _label(status: str, allowed: bool, when: str) -> str:
    if allowed and status == "failed":
        return "failed (allowed)"
    if status == "skipped" and when == "manual":
        return "manual"
    return {"success": "passed", "created": "blocked"}.get(status, status)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _log_path(recorded: object, record_dir: Path) -> Path | None:
    """The job's log; records name it absolutely, so a moved project finds it by name."""
    if not isinstance(recorded, str) or not recorded:
        return None
    path = Path(recorded)
    moved = record_dir / "jobs" / path.name
    return moved if not path.is_file() and moved.is_file() else path


def _log(path: Path | None, before_script: int) -> RenderedLog | None:
    if path is None:
        return None
    try:
        skipped, data = _tail_bytes(path, MAX_LOG_BYTES)
    except OSError:
        return None
    # Only \n ends a line: a \r is a redraw within one (progress bars), not a new line.
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return render_log(lines, before_script=before_script, skipped=skipped)


def _tail_bytes(path: Path, limit: int) -> tuple[int, bytes]:
    """The whole lines in the last `limit` bytes of a file, and how many lines come before."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        if size <= limit:
            return 0, handle.read()
        skipped, remaining = 0, size - limit
        while remaining > 0:
            chunk = handle.read(min(1 << 20, remaining))
            if not chunk:
                break
            skipped += chunk.count(b"\n")
            remaining -= len(chunk)
        tail = handle.read()
    cut = tail.find(b"\n") + 1  # the rest of a line that began before: skipped with it
    return skipped + (1 if cut else 0), tail[cut:]


def _href(path: Path, page_dir: Path) -> str:
    return quote(Path(os.path.relpath(path, page_dir)).as_posix())


def _job_artifacts_dir(record_dir: Path, job: str) -> Path:
    return record_dir / "artifacts" / job_dir_name(job)


def _artifacts(
    tree: Path, manifest: Manifest | None, page_dir: Path
) -> tuple[tuple[Artifact, ...], int]:
    if manifest is None or not manifest.entries or not (tree / DATA).is_dir():
        return (), 0
    files = [e for e in manifest.entries if e.kind == FILE]
    shown = [
        Artifact(
            path=e.path,
            href=_href(tree / DATA / e.path, page_dir),
            size=e.size,
            image=Path(e.path).suffix.lower() in IMAGE_SUFFIXES,
        )
        for e in files[:MAX_ARTIFACT_FILES]
    ]
    return tuple(shown), max(0, len(files) - MAX_ARTIFACT_FILES)


def _tests(
    entry: Mapping[str, Any], tree: Path, manifest: Manifest | None, job: str
) -> Tests | None:
    counts = entry.get("tests")
    if not isinstance(counts, Mapping):
        return None
    reports = (manifest.meta.get("reports") or {}) if manifest is not None else {}
    files = [tree / REPORTS / job_dir_name("junit") / rel for rel in reports.get("junit") or ()]
    cases, warnings = read_cases(files, job)
    return Tests(
        passed=int(counts.get("passed") or 0),
        failed=int(counts.get("failed") or 0),
        skipped=int(counts.get("skipped") or 0),
        errors=int(counts.get("errors") or 0),
        cases=tuple(cases) or _named_failures(counts, job),
        warnings=tuple(warnings),
    )


def _named_failures(counts: Mapping[str, Any], job: str) -> tuple[TestCase, ...]:
    """Without the report files (expired, removed) the record still names the failed tests."""
    names = counts.get("failed_names") or []
    return tuple(TestCase(str(n), "", "failed", None, "", "", job) for n in names)


def _exposed(
    entries: Sequence[Mapping[str, Any]],
    jobs: Sequence[JobView],
    record_dir: Path,
    page_dir: Path,
) -> list[Exposed]:
    """`artifacts:expose_as`: the single file it names, else the job's artifacts list."""
    out = []
    for entry, job in zip(entries, jobs, strict=True):
        exposed = entry.get("expose_as")
        if not isinstance(exposed, Mapping) or not job.artifacts:
            continue
        paths = [str(p).rstrip("/") for p in exposed.get("paths") or ()]
        single = next((a for a in job.artifacts if len(paths) == 1 and a.path == paths[0]), None)
        href = single.href if single else f"#artifacts-{job.key}"
        out.append(Exposed(str(exposed.get("name") or job.name), job.name, href))
    return out


def _downstream(
    entry: Mapping[str, Any], record_dir: Path, page_dir: Path, keys: _Keys, depth: int
) -> tuple[PipelineView, ...]:
    """Child pipelines recorded with a trigger job: records inline, or a record directory."""
    if depth >= MAX_NESTING:
        return ()
    found: list[PipelineView] = []
    for key in DOWNSTREAM_KEYS:
        value = entry.get(key)
        for child in value if isinstance(value, list) else [value]:
            record, child_dir = _child_record(child, record_dir)
            if record is not None:
                found.append(_pipeline(record, child_dir, page_dir, keys, depth + 1))
    return tuple(found)


def _child_record(child: object, record_dir: Path) -> tuple[Mapping[str, Any] | None, Path]:
    if isinstance(child, Mapping) and isinstance(child.get("jobs"), list):
        where = child.get("record_dir")
        return child, Path(where) if isinstance(where, str) else record_dir
    where = child.get("record_dir") if isinstance(child, Mapping) else child
    if isinstance(where, str) and where:
        directory = Path(where) if Path(where).is_absolute() else record_dir / where
        try:
            data = json.loads((directory / "pipeline.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None, record_dir
        return (data, directory) if isinstance(data, Mapping) else (None, record_dir)
    return None, record_dir
