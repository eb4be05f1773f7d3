"""Runs one planned job the way gitlab-runner's shell executor does, in a workspace and a venv.

Phases (SEMANTICS §11.4): workspace -> venv -> cache -> artifacts -> before_script+script ->
after_script -> cache save -> artifacts upload. Retries and allow_failure are decided here.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from localci.errors import LocalCIError
from localci.events import Event, JobOutput, JobStarted, Notice
from localci.execute import script as scripts
from localci.execute.durations import parse_duration
from localci.execute.git_isolation import job_inherited_env
from localci.execute.process import ProcessOutcome, kill_session, run_bash
from localci.execute.results import JobResult, Status
from localci.execute.store import Store, remove_tree
from localci.execute.venvs import PythonNotFound, VenvFactory, activated_env, python_for_image
from localci.execute.workspace import Snapshot, Workspace, WorkspacePool, prepare_workspace
from localci.plan.model import PlannedJob
from localci.plan.variables import (
    VarValue,
    expand_gitlab,
    mask_text,
    runner_environment,
    runtime_variables,
)

DEFAULT_TIMEOUT_S = 3600.0
AFTER_SCRIPT_TIMEOUT_S = 300.0
# Variables of the user's shell that would break a job's isolation or localci's own control.
DROPPED_ENV = (
    "VIRTUAL_ENV",
    "PYTHONHOME",
    "PYTHONPATH",
    "CONDA_PREFIX",
    "PIP_USER",
    "__PYVENV_LAUNCHER__",
    "PYTHONSTARTUP",
    "BASH_ENV",
)


@dataclass
class RunContext:
    """Everything shared by the jobs of one pipeline run."""

    project_dir: Path
    store: Store
    snapshot: Snapshot
    pool: WorkspacePool
    venvs: VenvFactory
    record_dir: Path
    ref: str
    ref_is_tag: bool
    user_git_dir: Path | None
    emit: Callable[[Event], None]
    user_variables: Mapping[str, VarValue]
    base_env: Mapping[str, str]
    python: str | None = None
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    color: bool = True
    pip_cache_dir: Path | None = None
    offline: bool = False
    hooks: JobHooks | None = None
    _job_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_job_id(self) -> int:
        with self._lock:
            return next(self._job_ids)


class JobHooks:
    """Cache and artifact handling around a job's scripts (see localci.execute.transfer)."""

    #: Masked values: never shown in what the hooks record (cache keys may be built from them).
    secrets: tuple[str, ...] = ()

    def dotenv(self, job: PlannedJob) -> Mapping[str, VarValue]:
        return {}

    def before(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        notes: list[str],
        log: Callable[[str], None] | None = None,
    ) -> None:
        """Restore caches, then artifacts, into the prepared workspace."""

    def after(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        succeeded: bool,
        log_text: Callable[[], str],
        notes: list[str],
        log: Callable[[str], None] | None = None,
    ) -> dict[str, object]:
        """Save caches and collect artifacts; returns extra result fields (tests, coverage)."""
        return {}


@dataclass
class _Attempt:
    status: Status
    exit_code: int | None
    reason: str
    failure: str | None  # GitLab failure reason for retry:when
    extra: dict[str, object]


class JobRunner:
    """Callable the scheduler uses: runs a job with its retries and returns the result."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def __call__(self, job: PlannedJob, cancel: threading.Event) -> JobResult:
        if job.job.trigger is not None:
            return JobResult(
                job.name,
                job.stage,
                Status.SKIPPED,
                job.allow_failure.allowed,
                reason="trigger job: downstream pipelines are not run locally",
            )
        started = time.monotonic()
        log_path = self.ctx.record_dir / "jobs" / f"{_file_name(job.name)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        retry = job.job.retry
        max_attempts = 1 + (retry.max if retry else 0)
        notes: list[str] = []
        attempt = None
        for number in range(1, max_attempts + 1):
            self.ctx.emit(JobStarted(job.name, job.stage, number))
            attempt = self._attempt(job, cancel, log_path, number, notes)
            if attempt.status is not Status.FAILED or not _should_retry(
                job, attempt, number, max_attempts
            ):
                break
            self.ctx.emit(
                Notice(
                    f"retrying ({attempt.reason}); attempt {number + 1} of {max_attempts}", job.name
                )
            )
        assert attempt is not None
        allowed = _failure_allowed(job, attempt)
        secrets = _secrets(job, self.ctx)
        return JobResult(
            name=job.name,
            stage=job.stage,
            status=attempt.status,
            allow_failure=allowed,
            exit_code=attempt.exit_code,
            duration_s=time.monotonic() - started,
            log=str(log_path),
            reason=mask_text(attempt.reason, secrets),
            attempts=number,
            tests=attempt.extra.get("tests"),  # type: ignore[arg-type]
            coverage=attempt.extra.get("coverage"),  # type: ignore[arg-type]
            notes=tuple(mask_text(note, secrets) for note in notes),
        )

    def _attempt(
        self,
        job: PlannedJob,
        cancel: threading.Event,
        log_path: Path,
        number: int,
        notes: list[str],
    ) -> _Attempt:
        mode = "w" if number == 1 else "a"
        with log_path.open(mode, encoding="utf-8") as log, self.ctx.pool.acquire() as ws:
            writer = _LogWriter(log, job.name, self.ctx.emit, _secrets(job, self.ctx))
            try:
                return self._run_in(job, ws, cancel, writer, notes)
            except LocalCIError as exc:
                writer.line(f"ERROR: {exc.render()}")
                return _Attempt(
                    Status.FAILED,
                    None,
                    f"localci could not run the job: {exc}",
                    "runner_system_failure",
                    {},
                )
            finally:
                remove_secret_files(ws)  # `file: true` values stay on disk no longer than the job

    def _run_in(
        self,
        job: PlannedJob,
        ws: Workspace,
        cancel: threading.Event,
        writer: _LogWriter,
        notes: list[str],
    ) -> _Attempt:
        ctx = self.ctx
        _end_leftovers(ws, writer)
        remove_secret_files(ws)  # of a run that was SIGKILLed
        writer.line(f"Preparing workspace {ws.project_dir}")
        prepare_workspace(
            ws, ctx.snapshot, ref=ctx.ref, ref_is_tag=ctx.ref_is_tag, user_git_dir=ctx.user_git_dir
        )
        venv_env = self._venv(job, ws, writer, notes)
        timeout_s = _timeout(job, ctx.default_timeout_s)
        env = self._environment(job, ws, timeout_s, venv_env)
        hooks = ctx.hooks or JobHooks()
        hooks.before(job, ws, env, notes, log=writer.line)
        commands = (*job.job.before_script, *job.job.script)
        trace = env.get("CI_DEBUG_TRACE") == "true"
        outcome = run_bash(
            scripts.main_script(commands, trace=trace, color=ctx.color),
            cwd=ws.project_dir,
            env=env,
            on_output=writer.line,
            timeout_s=timeout_s,
            cancel=cancel,
            on_start=lambda pid: _remember_session(ws, pid),
            unsplit=writer.secrets,
        )
        attempt = _judge(outcome, timeout_s)
        if job.job.after_script and not outcome.timed_out:
            self._after_script(job, ws, env, attempt, writer)
        (ws.state_dir / _SESSION_FILE).unlink(missing_ok=True)
        if attempt.status is not Status.CANCELED:  # a canceled job uploads nothing, as on GitLab
            attempt.extra = hooks.after(
                job,
                ws,
                env,
                attempt.status is Status.SUCCESS,
                writer.text,
                notes,
                log=writer.line,
            )
        return attempt

    def _venv(
        self, job: PlannedJob, ws: Workspace, writer: _LogWriter, notes: list[str]
    ) -> dict[str, str]:
        image = job.job.image.name if job.job.image else None
        wanted = self.ctx.python or python_for_image(_expand_image(image, job))
        if image and not python_for_image(_expand_image(image, job)) and not self.ctx.python:
            _note(
                notes,
                writer,
                f"image {image!r} is not emulated: the job runs on this machine's tools",
            )
        dest, record = ws.builds_dir / "venv", ws.state_dir / "venv.json"
        try:
            venv, kept = self.ctx.venvs.fresh(dest, wanted, record)
        except PythonNotFound:
            _note(
                notes,
                writer,
                f"Python {wanted} is not installed here; using the default interpreter instead",
            )
            fallback = self.ctx.python if wanted != self.ctx.python else None
            venv, kept = self.ctx.venvs.fresh(dest, fallback, record)
        how = "untouched since its creation, kept" if kept else "created"
        writer.line(f"Using Python {venv.version} in a fresh virtualenv ({how})")
        base = {k: v for k, v in self.ctx.base_env.items() if k not in DROPPED_ENV}
        return activated_env(base, venv)

    def _environment(
        self, job: PlannedJob, ws: Workspace, timeout_s: float, base: Mapping[str, str]
    ) -> dict[str, str]:
        ctx = self.ctx
        runtime = runtime_variables(
            project_dir=ws.project_dir,
            builds_dir=ws.builds_dir,
            job_id=ctx.next_job_id(),
            started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            timeout_s=int(timeout_s),
            environment=_environment_tuple(job),
        )
        layers: dict[str, VarValue] = {}
        for layer in ({**job.predefined, **runtime},):
            layers.update({k: VarValue(v) for k, v in layer.items()})
        layers.update(job.yaml_variables)
        layers.update((ctx.hooks or JobHooks()).dotenv(job))
        layers.update(ctx.user_variables)
        if ctx.pip_cache_dir is not None and "PIP_CACHE_DIR" not in layers:
            layers["PIP_CACHE_DIR"] = VarValue(str(ctx.pip_cache_dir))
        if ctx.offline and "PIP_NO_INDEX" not in layers:
            layers["PIP_NO_INDEX"] = VarValue("1")
        expanded = expand_gitlab(layers)
        file_dir = secret_files_dir(ws)
        file_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return {**job_inherited_env(base, ws.builds_dir), **runner_environment(expanded, file_dir)}

    def _after_script(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        attempt: _Attempt,
        writer: _LogWriter,
    ) -> None:
        writer.line("Running after script...")
        status = {Status.SUCCESS: "success", Status.CANCELED: "canceled"}.get(
            attempt.status, "failed"
        )
        timeout = parse_duration(env.get("RUNNER_AFTER_SCRIPT_TIMEOUT")) or AFTER_SCRIPT_TIMEOUT_S
        outcome = run_bash(
            scripts.after_script(job.job.after_script, color=self.ctx.color),
            cwd=ws.project_dir,
            env={**env, "CI_JOB_STATUS": status},
            on_output=writer.line,
            timeout_s=timeout,
            cancel=None,
            on_start=lambda pid: _remember_session(ws, pid),
            unsplit=writer.secrets,
        )
        if outcome.exit_code not in (0, None) or outcome.timed_out:
            writer.line(
                f"WARNING: after_script failed (exit {outcome.exit_code}); the job's "
                "result does not change"
            )
            if (
                env.get("AFTER_SCRIPT_IGNORE_ERRORS") == "false"
                and attempt.status is Status.SUCCESS
            ):
                attempt.status, attempt.reason = Status.FAILED, "after_script failed"
                attempt.failure = "script_failure"


class _LogWriter:
    """Writes masked lines to the job log and emits them as events."""

    def __init__(
        self, log: object, name: str, emit: Callable[[Event], None], secrets: tuple[str, ...]
    ) -> None:
        self.log = log
        self.name = name
        self.emit = emit
        self.secrets = secrets
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        masked = mask_text(text, self.secrets) if self.secrets else text
        with self.lock:
            self.log.write(masked + "\n")  # type: ignore[attr-defined]
            self.log.flush()  # type: ignore[attr-defined]
            self.lines.append(masked)
        self.emit(JobOutput(self.name, masked))

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)


def _judge(outcome: ProcessOutcome, timeout_s: float) -> _Attempt:
    if outcome.canceled:
        return _Attempt(Status.CANCELED, None, "canceled", None, {})
    if outcome.timed_out:
        return _Attempt(
            Status.FAILED, None, f"timed out after {_human(timeout_s)}", "job_execution_timeout", {}
        )
    if outcome.exit_code == 0:
        return _Attempt(Status.SUCCESS, 0, "", None, {})
    return _Attempt(
        Status.FAILED,
        outcome.exit_code,
        f"script failed with exit code {outcome.exit_code}",
        "script_failure",
        {},
    )


def _should_retry(job: PlannedJob, attempt: _Attempt, number: int, max_attempts: int) -> bool:
    """GitLab's retry:when / retry:exit_codes: with both, either one matching retries."""
    retry = job.job.retry
    if retry is None or number >= max_attempts:
        return False
    if retry.exit_codes and attempt.exit_code in retry.exit_codes:
        return True
    when_given = retry.when != ("always",)
    if retry.exit_codes and not when_given:
        return False
    reasons = {attempt.failure or "unknown_failure"}
    if attempt.failure == "job_execution_timeout":
        reasons.add("stuck_or_timeout_failure")
    return "always" in retry.when or bool(set(retry.when) & reasons)


def _failure_allowed(job: PlannedJob, attempt: _Attempt) -> bool:
    allow = job.allow_failure
    if attempt.status is not Status.FAILED:
        return allow.allowed or bool(allow.exit_codes)
    if allow.exit_codes:
        return attempt.exit_code in allow.exit_codes
    return allow.allowed


def _timeout(job: PlannedJob, default: float) -> float:
    seconds = parse_duration(job.job.timeout) if job.job.timeout else None
    return seconds or default


def _secrets(job: PlannedJob, ctx: RunContext) -> tuple[str, ...]:
    # Every masked value is at least 8 characters: app.user_variables refuses shorter ones.
    return tuple(v.value for v in ctx.user_variables.values() if v.masked and v.value)


def _environment_tuple(job: PlannedJob) -> tuple[str, str | None, str, str | None] | None:
    env = job.job.environment
    if env is None:
        return None
    return (env.name, env.url, env.action, env.deployment_tier)


def _expand_image(image: str | None, job: PlannedJob) -> str | None:
    if image is None or "$" not in image:
        return image
    values = {**job.predefined, **{k: v.value for k, v in job.yaml_variables.items()}}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ""), image)


def _note(notes: list[str], writer: _LogWriter, text: str) -> None:
    notes.append(text)
    writer.line(f"WARNING: {text}")


def _file_name(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "job"
    if readable == name:
        return readable
    # Different names can reduce to the same text (`a b`, `a/b`): keep them apart.
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


_SESSION_FILE = "job-session"


def secret_files_dir(ws: Workspace) -> Path:
    """Where the values of `file: true` variables are written for one job."""
    return ws.builds_dir / "tmp"


def remove_secret_files(ws: Workspace) -> None:
    """Delete the `file: true` values (a job may have swapped their folder for a link)."""
    path = secret_files_dir(ws)
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        remove_tree(path)


def _remember_session(ws: Workspace, pid: int) -> None:
    """Note the job's session so a run after a SIGKILL of localci can end what it left."""
    # A plain write: the slot is locked, and a torn or stale number is harmless because
    # _end_leftovers kills only processes that carry this workspace in their environment.
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    (ws.state_dir / _SESSION_FILE).write_text(str(pid))


def _end_leftovers(ws: Workspace, writer: _LogWriter) -> None:
    """Kill processes a killed localci left running in this slot (we hold its lock now)."""
    marker = ws.state_dir / _SESSION_FILE
    try:
        session = int(marker.read_text().strip())
    except (OSError, ValueError):
        return
    killed = kill_session(session, f"CI_PROJECT_DIR={ws.project_dir}")
    if killed:
        writer.line(f"Ended {killed} process(es) an interrupted earlier run left in this workspace")
    marker.unlink(missing_ok=True)


def _human(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def current_environment() -> dict[str, str]:
    """The user's environment minus localci's own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCALCI_")}
