"""Runs one planned job the way gitlab-runner's shell executor does, in a workspace and a venv.

Phases (docs/SEMANTICS.md §11.4): workspace -> venv -> cache -> artifacts -> before_script+script ->
after_script -> cache save -> artifacts upload. Retries and allow_failure are decided here.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from localci.errors import LocalCIError
from localci.events import Event, JobStarted, Notice
from localci.execute.durations import parse_duration
from localci.execute.environment import (
    JobPaths,
    RuntimeFacts,
    git_variables,
    host_base,
    job_environment,
)
from localci.execute.executors import ContainerExecutor, ScriptSession
from localci.execute.git_isolation import job_inherited_env
from localci.execute.gitsettings import git_settings, prepare_job_workspace
from localci.execute.image_tools import job_package_manager
from localci.execute.interpreters import (
    PythonChoice,
    choose_for_job,
    discover_here,
    python_free_path,
)
from localci.execute.job_session import (
    SESSION_FILE,
    EarlyVenv,
    HostSession,
    LogWriter,
    end_leftovers,
)
from localci.execute.process import ProcessOutcome
from localci.execute.snapshot import Snapshot
from localci.execute.venvs import VenvFactory, activated_env
from localci.execute.workspace import Workspace, WorkspacePool, ensure_slot_dirs
from localci.files import remove_tree
from localci.plan.model import PlannedJob
from localci.plan.services import image_name, job_services, unstarted_services_note
from localci.plan.variables import VarValue, mask_text
from localci.results import JobResult, Status
from localci.state import Store

DEFAULT_TIMEOUT_S = 3600.0
AFTER_SCRIPT_TIMEOUT_S = 300.0


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
    full_history: bool = False  # `--full-history`: no GIT_DEPTH default, no shallow history
    hooks: JobHooks | None = None
    executor: str = "auto"  # --executor: auto, container, venv or host
    # Runs the jobs that go to a container (localci.execute.container); None: no engine.
    containers: ContainerExecutor | None = None
    # Runs trigger jobs (localci.execute.downstream); None: they are reported as not run.
    downstream: Callable[[PlannedJob, threading.Event], JobResult] | None = None
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
        if job.spec.trigger and self.ctx.downstream is not None:
            return self.ctx.downstream(job, cancel)
        if job.spec.trigger:
            return JobResult(
                job.name,
                job.stage,
                Status.SKIPPED,
                job.allow_failure.allowed,
                reason="trigger job: downstream pipelines are not run locally",
            )
        started, started_at = time.monotonic(), time.time()
        log_path = self.ctx.record_dir / "jobs" / f"{file_name(job.name)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        max_attempts = 1 + job.spec.retry.max
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
            started_at=started_at,
            finished_at=time.time(),
            python_substitution=next((n for n in notes if n.startswith("ran on ")), ""),
            unstarted_services=_unstarted(job, self.ctx),
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
            writer = LogWriter(log, job.name, self.ctx.emit, _secrets(job, self.ctx))
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
        writer: LogWriter,
        notes: list[str],
    ) -> _Attempt:
        ctx = self.ctx
        if ctx.containers is not None and ctx.containers.wants(job):
            python = _NO_VENV  # no venv in a container: no interpreter discovery either
        else:
            python = self.python_choice(job)
        if python.substitution:  # the log's first line: the job did not run as written
            _note(notes, writer, python.substitution)
        end_leftovers(ws, writer)
        remove_secret_files(ws)  # of a run that was SIGKILLed
        writer.line(f"Preparing workspace {ws.project_dir}")
        git = git_settings(git_variables(job, ctx.user_variables), full_history=ctx.full_history)
        for warning in git.warnings:
            _note(notes, writer, warning)
        ensure_slot_dirs(ws)  # before the venv thread writes into the slot
        early_venv = self._start_venv(job, python, ws)
        try:
            prepare_job_workspace(
                ws,
                ctx.snapshot,
                git,
                ref=ctx.ref,
                ref_is_tag=ctx.ref_is_tag,
                user_git_dir=ctx.user_git_dir,
                log=writer.line,
            )
        finally:
            if early_venv is not None:
                early_venv.wait()  # never outlive the slot's lock, whatever happened
        timeout_s = _timeout(job, ctx.default_timeout_s)
        hooks = ctx.hooks or JobHooks()
        session_cm = self._session(job, python, ws, writer, notes, timeout_s, cancel, early_venv)
        with session_cm as session:
            hooks.before(job, ws, session.host_env, notes, log=writer.line)
            commands = (*job.spec.before_script, *job.spec.script)
            trace = session.env.get("CI_DEBUG_TRACE") == "true"
            outcome = session.run(
                commands, after=False, trace=trace, timeout_s=timeout_s, cancel=cancel
            )
            attempt = _judge(outcome, timeout_s)
            if job.spec.after_script and not outcome.timed_out:
                self._after_script(job, session, attempt, writer)
        (ws.state_dir / SESSION_FILE).unlink(missing_ok=True)
        if attempt.status is not Status.CANCELED:  # a canceled job uploads nothing, as on GitLab
            attempt.extra = hooks.after(
                job,
                ws,
                session.host_env,
                attempt.status is Status.SUCCESS,
                writer.text,
                notes,
                log=writer.line,
            )
        return attempt

    def _session(
        self,
        job: PlannedJob,
        python: PythonChoice,
        ws: Workspace,
        writer: LogWriter,
        notes: list[str],
        timeout_s: float,
        cancel: threading.Event,
        early_venv: EarlyVenv | None = None,
    ) -> contextlib.AbstractContextManager[ScriptSession]:
        ctx = self.ctx
        facts = RuntimeFacts(
            job_id=ctx.next_job_id(),
            started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            timeout_s=int(timeout_s),
            paths=JobPaths(
                ws.project_dir, ws.builds_dir, secret_files_dir(ws), secret_files_dir(ws)
            ),
            pip_cache_dir=ctx.pip_cache_dir,
            offline=ctx.offline,
        )
        dotenv = (ctx.hooks or JobHooks()).dotenv(job)
        if ctx.containers is not None and ctx.containers.wants(job):
            return ctx.containers.session(job, ws, facts, dotenv, writer.line, notes, cancel)
        base = self._venv(job, python, ws, writer, notes, early_venv)
        base = job_inherited_env(base, ws.builds_dir)
        env = job_environment(job, facts, dotenv, ctx.user_variables, base)
        return contextlib.nullcontext(HostSession(ws, env, ctx.color, writer.line, writer.secrets))

    def _start_venv(self, job: PlannedJob, python: PythonChoice, ws: Workspace) -> EarlyVenv | None:
        """Start creating the job's venv now, when it will need one: it is written to the slot
        next to the project, so it is made while the workspace files are being written."""
        ctx = self.ctx
        if ctx.executor == "host" or (ctx.containers is not None and ctx.containers.wants(job)):
            return None
        dest, record = ws.builds_dir / "venv", ws.state_dir / "venv.json"
        return EarlyVenv(lambda log: ctx.venvs.fresh(dest, python.spec, record, log=log))

    def python_choice(self, job: PlannedJob) -> PythonChoice:
        return python_for_job(job, self.ctx.python, self.ctx.base_env)

    def _venv(
        self,
        job: PlannedJob,
        python: PythonChoice,
        ws: Workspace,
        writer: LogWriter,
        notes: list[str],
        early_venv: EarlyVenv | None = None,
    ) -> dict[str, str]:
        base = host_base(self.ctx.base_env)
        if self.ctx.executor == "host":
            writer.line("Running on this machine's tools (--executor host: no virtualenv)")
            return base
        image = image_name(job, self.ctx.user_variables)
        if image and not python.python_image and not self.ctx.python:
            _note(
                notes,
                writer,
                f"image {image!r} is not emulated: the job runs on this machine's tools",
            )
        tool = job_package_manager(job)
        if image and python.python_image and tool:
            _note(
                notes,
                writer,
                f"the script runs `{tool}`, the package manager of image {image!r}, which a "
                "virtualenv does not provide: install Podman or Docker so the job runs in its "
                "image",
            )
        services = unstarted_services_note(job, self.ctx.user_variables)
        if services:
            _note(notes, writer, services)
        if early_venv is not None:
            venv, kept = early_venv.result(log=writer.line)
        else:
            dest, record = ws.builds_dir / "venv", ws.state_dir / "venv.json"
            venv, kept = self.ctx.venvs.fresh(dest, python.spec, record, log=writer.line)
        how = "untouched since its creation, kept" if kept else "created"
        writer.line(f"Using Python {venv.version} in a fresh virtualenv ({how})")
        if python.python_image:
            base["PATH"] = python_free_path(base.get("PATH", ""), Path.home())
        return activated_env(base, venv)

    def _after_script(
        self,
        job: PlannedJob,
        session: ScriptSession,
        attempt: _Attempt,
        writer: LogWriter,
    ) -> None:
        writer.line("Running after script...")
        status = {Status.SUCCESS: "success", Status.CANCELED: "canceled"}.get(
            attempt.status, "failed"
        )
        env = session.env
        timeout = parse_duration(env.get("RUNNER_AFTER_SCRIPT_TIMEOUT")) or AFTER_SCRIPT_TIMEOUT_S
        outcome = session.run(
            job.spec.after_script,
            after=True,
            trace=False,
            timeout_s=timeout,
            cancel=None,
            extra_env={"CI_JOB_STATUS": status},
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
    retry = job.spec.retry
    if number >= max_attempts:
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
    seconds = parse_duration(job.spec.timeout) if job.spec.timeout else None
    return seconds or default


def _secrets(job: PlannedJob, ctx: RunContext) -> tuple[str, ...]:
    # Every masked value is at least 8 characters: app.user_variables refuses shorter ones.
    return tuple(v.value for v in ctx.user_variables.values() if v.masked and v.value)


def python_for_job(job: PlannedJob, option: str | None, env: Mapping[str, str]) -> PythonChoice:
    """The interpreter `job` runs on, for `--python option` (also what `--dry-run` shows)."""
    image = image_name(job)
    uv = shutil.which("uv", path=env.get("PATH")) is not None
    return choose_for_job(image, option, discover_here(), uv_available=uv)


def _unstarted(job: PlannedJob, ctx: RunContext) -> tuple[str, ...]:
    """The services `job` ran without: all of them, unless it ran in a container (with them)."""
    if ctx.containers is not None and ctx.containers.wants(job):
        return ()
    return tuple(service.describe() for service in job_services(job, ctx.user_variables))


def _note(notes: list[str], writer: LogWriter, text: str) -> None:
    notes.append(text)
    writer.line(f"WARNING: {text}")


def file_name(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "job"
    if readable == name:
        return readable
    # Different names can reduce to the same text (`a b`, `a/b`): keep them apart.
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


_NO_VENV = PythonChoice(None, None, None, python_image=False)


def secret_files_dir(ws: Workspace) -> Path:
    """Where the values of `file: true` variables are written for one job."""
    return ws.builds_dir / "tmp"


def remove_secret_files(ws: Workspace) -> None:
    """Delete the `file: true` values (a job may have swapped their folder for a link)."""
    path = secret_files_dir(ws)
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    try:
        path.rmdir()  # most jobs have no file variables: an empty folder, no tree walk
    except OSError:
        remove_tree(path)


def _human(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
