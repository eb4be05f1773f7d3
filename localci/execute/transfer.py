"""The job runner's cache and artifacts hooks (docs/SEMANTICS.md §11.4 steps 3, 4, 7, 8;
§10.5, §13, §14): caches then artifacts before the scripts; caches, artifacts and reports
after them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localci.config.model import Artifacts, Cache
from localci.errors import ConfigError, StateError
from localci.execute.artifacts import (
    ArtifactInfo,
    ArtifactRecord,
    ArtifactUpload,
    copy_artifacts,
    expire_at,
    find_record,
    iso_time,
    list_artifacts,
    read_record,
    reading,
    save_artifacts,
)
from localci.execute.cache import (
    CacheInfo,
    CacheStore,
    cache_key,
    check_key,
    check_policy,
    clear_caches,
    list_caches,
)
from localci.execute.job import JobHooks
from localci.execute.junit_coverage import coverage_of, summarize_junit
from localci.execute.path_selection import (
    TransferError,
    check_patterns,
    report_files,
    select_paths,
)
from localci.execute.stored_trees import Manifest, verify_tree
from localci.execute.tree_restore import relocator, restore_tree
from localci.execute.workspace import Workspace
from localci.files import paths_fingerprint, state_error
from localci.plan.model import PlannedJob
from localci.plan.variables import VarValue, expand_runner, mask_text, parse_dotenv_report
from localci.results import TestSummary
from localci.state import Store

__all__ = [
    "ArtifactInfo",
    "CacheInfo",
    "TransferHooks",
    "clear_caches",
    "copy_artifacts",
    "download_artifacts",
    "list_artifacts",
    "list_caches",
]

Log = Callable[[str], None]
_MAX_DOTENV_READ = 1 << 20
_DOTENV_LIMIT = 20


@dataclass(frozen=True, slots=True)
class _CacheRun:
    """One `cache:` entry of a job with its key, policy and fallbacks resolved for this run."""

    spec: Cache
    key: str
    policy: str
    fallbacks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Restored:
    key: str
    manifest: Manifest
    fingerprint: str  # of the restored paths, right after the restore


@dataclass
class _JobState:
    runs: list[_CacheRun]
    restored: dict[int, _Restored] = field(default_factory=dict)


def _quiet(line: str) -> None:
    del line


class TransferHooks(JobHooks):
    """Caches and artifacts of one pipeline run (`pipeline_id`) in `store`.

    The runner calls `before`/`after` with an optional `log` (the job log's line writer):
    progress and warnings go there, `notes` get only what the user must know. Every job
    gets private copies of caches and artifacts (see localci.execute.cache).
    """

    def __init__(
        self,
        store: Store,
        pipeline_id: int,
        *,
        previous_pipelines: bool = True,
    ) -> None:
        self.store = store
        self.pipeline_id = pipeline_id
        self.previous_pipelines = previous_pipelines
        self.caches = CacheStore(store)
        self._states: dict[tuple[str, int], _JobState] = {}
        self._lock = threading.Lock()
        # A finished job's record never changes: read each one once per pipeline, not per
        # receiving job (stage mode hands every earlier job to every later one).
        self._records: dict[str, ArtifactRecord] = {}

    # --------------------------------------------------------------------------- dotenv

    def dotenv(self, job: PlannedJob) -> Mapping[str, VarValue]:
        """dotenv variables of the job's artifact sources, in order (a later source wins)."""
        variables: dict[str, VarValue] = {}
        for source in job.artifact_sources:
            record = self._record(source)
            if record is not None and record.manifest.meta.get("dotenv"):
                variables.update({k: VarValue(v) for k, v in record.dotenv.items()})
        return variables

    def _record(self, source: str) -> ArtifactRecord | None:
        # Read without the lock (a dict lookup is atomic): a stage-mode job asks for every job
        # of the stages before it, so this runs jobs x jobs times in a big pipeline.
        known = self._records.get(source)
        if known is not None:
            return known
        record = find_record(self.store, self.pipeline_id, source, previous=self.previous_pipelines)
        if record is not None:
            with self._lock:
                self._records[source] = record
        return record

    # --------------------------------------------------------------------------- before

    def before(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        notes: list[str],
        log: Log | None = None,
    ) -> None:
        """Check paths and keys, then restore caches, then the sources' artifacts."""
        say = log or _quiet
        runs = self._cache_runs(job, ws.project_dir, env, say)
        _check_artifact_paths(job, ws.project_dir, env)
        state = _JobState(runs)
        with self._lock:
            self._states[(job.name, ws.slot)] = state
        for index, run in enumerate(runs):
            if run.policy == "push":
                say(f"Not downloading cache {run.key} due to policy")
                continue
            restored = self._restore_cache(run, ws, say, notes)
            if restored is not None:
                state.restored[index] = restored
        for source in job.artifact_sources:
            self._restore_artifacts(source, ws, say, notes)

    def _cache_runs(
        self, job: PlannedJob, root: Path, env: Mapping[str, str], say: Log
    ) -> list[_CacheRun]:
        runs = []
        for cache in job.spec.cache:
            if not cache.paths and not cache.untracked:
                continue
            key = cache_key(cache, root, env, job.name)
            if not key:
                say("Skipping cache due to empty cache key")
                continue
            policy = check_policy(cache.policy, env, job.name, key)
            check_patterns(root, cache.paths, env, job=job.name, what=f"cache {key!r}")
            runs.append(_CacheRun(cache, key, policy, _fallbacks(cache, env, job.name, say)))
        return runs

    def _restore_cache(
        self, run: _CacheRun, ws: Workspace, say: Log, notes: list[str]
    ) -> _Restored | None:
        for position, key in enumerate((run.key, *run.fallbacks)):
            say(f"Checking cache for {key}...")
            try:
                result = self.caches.restore(
                    key,
                    ws.project_dir,
                    relocate_to=(ws.project_dir, ws.builds_dir),
                )
            except StateError as exc:
                say(f"WARNING: Failed to extract cache {key}: {exc}")
                notes.append(f"cache {key!r} could not be restored: {exc}")
                return None
            if result.status == "damaged":
                say(
                    f"WARNING: cache {key} was changed after it was saved ({result.detail}); "
                    "it is discarded"
                )
            if result.manifest is None or result.restored is None:
                say(f"WARNING: cache {key} not found")
                continue
            restored = result.restored
            say(
                f"Successfully extracted cache {key} ({restored.files} files, "
                f"{restored.relocated} relocated)"
            )
            if position:
                notes.append(f"cache {run.key!r} not found, fallback {key!r} restored")
            paths = [entry.path for entry in result.manifest.entries]
            return _Restored(key, result.manifest, paths_fingerprint(ws.project_dir, paths))
        return None

    def _restore_artifacts(self, source: str, ws: Workspace, say: Log, notes: list[str]) -> None:
        _restore_record(self.store, self.pipeline_id, source, self._record(source), ws, say, notes)

    # --------------------------------------------------------------------------- after

    def after(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        succeeded: bool,
        log_text: Callable[[], str],
        notes: list[str],
        log: Log | None = None,
    ) -> dict[str, object]:
        """Save caches (per `when` and policy), then artifacts; reports are always collected."""
        say = log or _quiet
        with self._lock:
            state = self._states.pop((job.name, ws.slot), None)
        if state is None:  # `before` failed or was not called: nothing was restored
            state = _JobState(self._cache_runs(job, ws.project_dir, env, say))
        for index, run in enumerate(state.runs):
            self._save_cache(job, run, state.restored.get(index), ws, env, succeeded, say, notes)
        tests = self._collect_artifacts(job, ws, env, succeeded, say, notes)
        return {"tests": tests, "coverage": _coverage(job, log_text, notes)}

    def _save_cache(
        self,
        job: PlannedJob,
        run: _CacheRun,
        restored: _Restored | None,
        ws: Workspace,
        env: Mapping[str, str],
        succeeded: bool,
        say: Log,
        notes: list[str],
    ) -> None:
        if run.policy == "pull":
            say(f"Not uploading cache {run.key} due to policy")
            return
        if not _when_matches(run.spec.when, succeeded):
            return
        root = ws.project_dir
        try:
            selection = select_paths(
                root,
                run.spec.paths,
                env,
                job=job.name,
                what=f"cache {run.key!r}",
                untracked=run.spec.untracked,
            )
        except TransferError as exc:
            say(f"WARNING: Failed to create cache: {exc}")
            notes.append(f"cache {run.key!r} not saved: {exc}")
            return
        for warning in selection.warnings:
            say(f"WARNING: {warning}")
        if not selection.paths:
            say(f"WARNING: no files to cache; cache {run.key} is left as it was")
            return
        if restored is not None and self._up_to_date(run.key, restored, root, selection.paths):
            say(f"Archive is up to date! (cache {run.key}: nothing changed since it was restored)")
            return
        known = {e.path: e for e in restored.manifest.entries} if restored else {}
        meta: dict[str, object] = {
            "job": job.name,
            "pipeline": self.pipeline_id,
            "saved_at": time.time(),
        }
        shown = mask_text(run.key, self.secrets)
        if shown != run.key:
            meta["shown_key"] = shown  # what `localci cache list` prints
        try:
            manifest = self.caches.save(
                run.key, root, selection.paths, builds_dir=ws.builds_dir, meta=meta, known=known
            )
        except StateError as exc:
            say(f"WARNING: Failed to create cache {run.key}: {exc}")
            notes.append(f"cache {run.key!r} could not be saved: {exc}")
            return
        say(f"Created cache {run.key} ({manifest.files} files)")

    def _up_to_date(self, key: str, restored: _Restored, root: Path, paths: Sequence[str]) -> bool:
        """As gitlab-runner's cache archiver: no new archive when nothing changed. Here: the
        job restored this very entry, it is still the stored one, and the same paths are
        there untouched (inode, size, mode, mtime and ctime as right after the restore)."""
        stored = [entry.path for entry in restored.manifest.entries]
        return (
            restored.key == key
            and sorted(paths) == sorted(stored)
            and paths_fingerprint(root, stored) == restored.fingerprint
            and self.caches.current_id(key) == restored.manifest.id
        )

    def _collect_artifacts(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        succeeded: bool,
        say: Log,
        notes: list[str],
    ) -> TestSummary | None:
        spec = job.spec.artifacts or Artifacts()
        root = ws.project_dir
        archive = None
        if job.spec.artifacts is not None and _when_matches(spec.when, succeeded):
            archive = _archive_paths(job, spec, root, env, say)
        reports = _report_paths(job, spec, root, env, say)
        dotenv = _dotenv(job, root, reports.get("dotenv", ()), notes)
        tests = _junit(root, reports.get("junit", ()), say, notes)
        now = time.time()
        meta = {
            "name": expand_runner(spec.name or "artifacts", env),
            "status": "success" if succeeded else "failed",
            "created_at": iso_time(now),
            "expire_in": spec.expire_in,
            "expire_at": expire_at(spec.expire_in, now),
            "dotenv": dotenv,
        }
        if archive:
            say(f"Uploading artifacts... ({len(archive)} paths)")
        upload = ArtifactUpload(job.name, root, ws.builds_dir, archive, reports, meta)
        save_artifacts(self.store, self.pipeline_id, upload)
        return tests


def download_artifacts(
    store: Store,
    pipeline_id: int,
    job: str,
    ws: Workspace,
    notes: list[str],
    log: Log | None = None,
) -> None:
    """`job`'s artifacts of pipeline `pipeline_id` (never an earlier run's) into `ws`, checked
    and relocated as for a job's own artifact sources; `notes` say why nothing came (for
    `needs:pipeline:job` of a child pipeline)."""
    record = read_record(store, pipeline_id, job)
    _restore_record(store, pipeline_id, job, record, ws, log or _quiet, notes)


def _restore_record(
    store: Store,
    pipeline_id: int,
    source: str,
    record: ArtifactRecord | None,
    ws: Workspace,
    say: Log,
    notes: list[str],
) -> None:
    """Restore `record`, the artifacts of job `source` a job of pipeline `pipeline_id` receives,
    into `ws`; what the user must know (missing, expired, from an earlier run) goes to `notes`."""
    if record is None:
        notes.append(f"no artifacts of {source!r} available")
        return
    earlier = record.pipeline_id != pipeline_id
    if not record.has_archive:
        if earlier and record.dotenv:
            notes.append(f"dotenv variables of {source!r} come from pipeline #{record.pipeline_id}")
        return
    if record.expired():
        notes.append(f"artifacts of {source!r} (pipeline #{record.pipeline_id}) have expired")
        return
    if earlier:
        notes.append(f"artifacts of {source!r} come from pipeline #{record.pipeline_id}")
    say(f"Downloading artifacts for {source} (pipeline #{record.pipeline_id})...")
    try:
        with reading(store, record.pipeline_id):
            bad = verify_tree(record.path, record.manifest)
            if bad is None:
                relocate = relocator(record.manifest, ws.project_dir, ws.builds_dir)
                restore_tree(record.path, record.manifest, ws.project_dir, relocate=relocate)
    except OSError as exc:
        raise state_error(Path(exc.filename or record.path), exc, "restore artifacts") from exc
    if bad is not None:
        notes.append(f"artifacts of {source!r} were changed after saving ({bad}); skipped")


def _fallbacks(cache: Cache, env: Mapping[str, str], job: str, say: Log) -> tuple[str, ...]:
    keys = [expand_runner(raw, env) for raw in cache.fallback_keys]
    # The runner ignores a global fallback ending in -protected (reserved for protected refs).
    global_key = env.get("CACHE_FALLBACK_KEY", "")
    if global_key and not global_key.endswith("-protected"):
        keys.append(global_key)
    valid = []
    for key in dict.fromkeys(k for k in keys if k):
        try:
            check_key(key, job, "cache fallback key")
        except TransferError as exc:
            say(f"WARNING: {exc}; it is not used")
            continue
        valid.append(key)
    return tuple(valid)


def _check_artifact_paths(job: PlannedJob, root: Path, env: Mapping[str, str]) -> None:
    spec = job.spec.artifacts
    if spec is None:
        return
    check_patterns(root, spec.paths, env, job=job.name, what="artifacts")
    for kind, patterns in spec.reports.items():
        check_patterns(root, patterns, env, job=job.name, what=f"artifacts:reports:{kind}")


def _when_matches(when: str, succeeded: bool) -> bool:
    if when == "always":
        return True
    return succeeded if when == "on_success" else not succeeded


def _archive_paths(
    job: PlannedJob, spec: Artifacts, root: Path, env: Mapping[str, str], say: Log
) -> tuple[str, ...]:
    selection = select_paths(
        root,
        spec.paths,
        env,
        job=job.name,
        what="artifacts",
        untracked=spec.untracked,
        exclude=spec.exclude,
    )
    for warning in selection.warnings:
        say(f"WARNING: {warning}")
    if not selection.paths and (spec.paths or spec.untracked):
        say("WARNING: No files to upload")
    return selection.paths


def _report_paths(
    job: PlannedJob, spec: Artifacts, root: Path, env: Mapping[str, str], say: Log
) -> dict[str, tuple[str, ...]]:
    reports: dict[str, tuple[str, ...]] = {}
    for kind, patterns in spec.reports.items():
        selection = report_files(root, patterns, env, job.name)
        for warning in selection.warnings:
            say(f"WARNING: {kind} report {warning}")
        if selection.paths:
            reports[kind] = selection.paths
    return reports


def _dotenv(
    job: PlannedJob, root: Path, paths: Sequence[str], notes: list[str]
) -> dict[str, str] | None:
    if not paths:
        return None
    variables: dict[str, str] = {}
    try:
        for rel in paths:
            with (root / rel).open("rb") as handle:
                data = handle.read(_MAX_DOTENV_READ)
            variables.update(parse_dotenv_report(data, filename=rel))
        if len(variables) > _DOTENV_LIMIT:
            raise ConfigError(f"{len(variables)} variables; the limit is {_DOTENV_LIMIT}")
    except (ConfigError, OSError) as exc:
        notes.append(f"dotenv report of {job.name!r} is invalid, no variables passed on: {exc}")
        return None
    return variables


def _junit(root: Path, paths: Sequence[str], say: Log, notes: list[str]) -> TestSummary | None:
    if not paths:
        return None
    summary, warnings = summarize_junit(root / rel for rel in paths)
    for warning in warnings:
        say(f"WARNING: junit report {warning}")
        notes.append(f"junit report not read: {warning}")
    return summary


def _coverage(job: PlannedJob, log_text: Callable[[], str], notes: list[str]) -> float | None:
    literal = job.spec.coverage
    if not literal:
        return None
    try:
        return coverage_of(literal, log_text())
    except ConfigError as exc:
        notes.append(f"coverage regex {literal!r} is invalid: {exc}")
        return None
