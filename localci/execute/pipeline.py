"""One pipeline run: state, snapshot, scheduler, records. The executor's public seam."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from localci import interrupts
from localci.config.includes import IncludeOptions
from localci.events import Event, JobFinished, Notice, PipelineFinished, PipelineStarted
from localci.execute.environment import host_base
from localci.execute.job import JobHooks, JobRunner, RunContext
from localci.execute.process import remove_orphaned_scripts
from localci.execute.scheduler import Scheduler
from localci.execute.snapshot import take_snapshot
from localci.execute.snapshot_cleanup import remove_stale
from localci.execute.venvs import VenvFactory
from localci.execute.workspace import WorkspacePool
from localci.files import LockBusy, atomic_write_json, user_cache_dir
from localci.plan.model import Plan, PlannedJob
from localci.results import (
    JobResult,
    RunResult,
    Status,
    pipeline_status,
    with_downstream_status,
)
from localci.state import Store

if TYPE_CHECKING:
    from localci.execute.container.engine import Engine
    from localci.execute.container.executor import ContainerRunner
    from localci.execute.downstream import DownstreamRunner


@dataclass(frozen=True)
class RunOptions:
    """How to run (from the CLI); none of this changes which jobs exist."""

    max_parallel: int = os.cpu_count() or 2
    manual: Sequence[str] = ()
    python: str | None = None
    timeout_s: float | None = None
    color: bool = False
    offline: bool = False
    cancel_on_failure: bool = False  # workflow:auto_cancel:on_job_failure: all
    executor: str = "auto"  # --executor
    engine: Engine | None = None  # the container engine found, if any
    full_history: bool = False  # no shallow history (GIT_DEPTH) in any job
    # Child pipelines: names of the user variables that are pipeline variables (`--var`; the
    # rest are project settings), and how to read `trigger:include` from outside the project.
    pipeline_variable_names: frozenset[str] = frozenset()
    includes: IncludeOptions = field(default_factory=IncludeOptions)
    notify: Callable[[str], None] | None = None


def run_pipeline(
    plan: Plan,
    jobs: Sequence[PlannedJob],
    options: RunOptions,
    emit: Callable[[Event], None],
    hooks_factory: Callable[[Store, int], JobHooks] | None = None,
) -> RunResult:
    """Run `jobs` (a selection of the plan's included jobs) and record everything.

    Ctrl-C or SIGTERM at any moment after the pipeline got its number ends with a record
    that says canceled, then re-raises KeyboardInterrupt.
    """
    store = Store(plan.context.project_dir)
    store.ensure()
    remove_stale(store)
    remove_orphaned_scripts()
    mark_abandoned(store)
    pipeline_id = store.next_pipeline_id()
    record = store.pipeline_dir(pipeline_id)
    started = time.monotonic()
    results: dict[str, JobResult] = {}
    interrupted = False
    with _interrupts() as disarm:
        try:
            emit(
                PipelineStarted(
                    pipeline_id, tuple((j.name, j.stage, j.when) for j in jobs), str(record)
                )
            )
            _write_record(record, plan, pipeline_id, "running", results, 0.0)
            containers = _container_runner(plan, options, emit)
            _announce_unsupported(jobs, emit, containers)
            with _lock_snapshot(store, pipeline_id):
                _run_jobs(
                    plan,
                    jobs,
                    options,
                    emit,
                    hooks_factory,
                    store,
                    pipeline_id,
                    results,
                    containers,
                )
            interrupts.raise_if_requested()  # its KeyboardInterrupt may have been swallowed
        except KeyboardInterrupt:
            interrupted = True
        finally:
            disarm()  # a second Ctrl-C must not cut the final record short
        result = _finish(plan, jobs, record, pipeline_id, results, started, interrupted)
    emit(PipelineFinished(result))
    if interrupted:
        raise KeyboardInterrupt
    return result


def _run_jobs(
    plan: Plan,
    jobs: Sequence[PlannedJob],
    options: RunOptions,
    emit: Callable[[Event], None],
    hooks_factory: Callable[[Store, int], JobHooks] | None,
    store: Store,
    pipeline_id: int,
    results: dict[str, JobResult],
    containers: ContainerRunner | None,
) -> None:
    ctx = plan.context
    snapshot = take_snapshot(ctx.project_dir, store, pipeline_id=pipeline_id, sha=ctx.sha)
    run_ctx = RunContext(
        project_dir=ctx.project_dir,
        store=store,
        snapshot=snapshot,
        pool=WorkspacePool(store, ctx.project_dir.name or "project"),
        venvs=VenvFactory(user_cache_dir() / "virtualenv", download=not options.offline),
        record_dir=store.pipeline_dir(pipeline_id),
        ref=ctx.ref,
        ref_is_tag=ctx.ref_is_tag,
        user_git_dir=git_dir_of(ctx.project_dir),
        emit=emit,
        user_variables=plan.user_variables,
        base_env=host_base(),
        python=options.python,
        default_timeout_s=options.timeout_s or 3600.0,
        color=options.color,
        pip_cache_dir=user_cache_dir() / "pip",
        offline=options.offline,
        full_history=options.full_history,
        hooks=_hooks(hooks_factory, store, pipeline_id, plan),
        executor=options.executor,
        containers=containers,
    )

    def report(result: JobResult) -> None:
        results[result.name] = result
        emit(JobFinished(result))

    downstream = _downstream(plan, jobs, options, run_ctx, hooks_factory, pipeline_id)
    try:
        Scheduler(
            jobs,
            JobRunner(run_ctx),
            report,
            max_parallel=options.max_parallel,
            manual=options.manual,
            cancel_on_failure=options.cancel_on_failure,
        ).run()
    finally:
        if downstream is not None:  # children still running end (or are canceled) first
            downstream.finish(results)
        _join_sweepers()


def _hooks(
    factory: Callable[[Store, int], JobHooks] | None, store: Store, pipeline_id: int, plan: Plan
) -> JobHooks | None:
    if factory is None:
        return None
    hooks = factory(store, pipeline_id)
    hooks.secrets = tuple(v.value for v in plan.user_variables.values() if v.masked and v.value)
    return hooks


def _downstream(
    plan: Plan,
    jobs: Sequence[PlannedJob],
    options: RunOptions,
    run_ctx: RunContext,
    hooks_factory: Callable[[Store, int], JobHooks] | None,
    pipeline_id: int,
) -> DownstreamRunner | None:
    """The runner of trigger jobs (child pipelines), when the selection has any."""
    if not any(job.spec.trigger for job in jobs):
        return None
    from localci.execute.downstream import DownstreamRunner
    from localci.execute.downstream_create import DownstreamSettings

    names = options.pipeline_variable_names
    user = plan.user_variables
    runner = DownstreamRunner(
        run_ctx,
        DownstreamSettings(
            plan=plan,
            max_parallel=options.max_parallel,
            project_variables={k: v for k, v in user.items() if k not in names},
            pipeline_variables={k: v for k, v in user.items() if k in names},
            pipeline_id=pipeline_id,
            includes=options.includes,
            hooks_factory=hooks_factory,
            notify=options.notify,
        ),
    )
    run_ctx.downstream = runner
    return runner


def _container_runner(
    plan: Plan, options: RunOptions, emit: Callable[[Event], None]
) -> ContainerRunner | None:
    """The run's container executor (after removing what a killed run left), or None."""
    if options.engine is None or options.executor not in ("auto", "container"):
        return None
    from localci.execute.container.cleanup import remove_leftovers
    from localci.execute.container.executor import ContainerRunner

    engine = options.engine

    def sweep() -> None:
        removed = remove_leftovers(engine)
        if removed:
            emit(Notice(f"removed {removed} container(s)/network(s) an interrupted run left"))

    # Leftovers have names of their own: removing them need not delay the first job.
    sweeper = threading.Thread(target=sweep, name="localci-sweep", daemon=True)
    sweeper.start()
    _sweepers.append(sweeper)
    return ContainerRunner(
        options.engine,
        mode=options.executor,
        project_dir=plan.context.project_dir,
        user_variables=plan.user_variables,
        color=options.color,
        offline=options.offline,
    )


_sweepers: list[threading.Thread] = []


def _join_sweepers() -> None:
    while _sweepers:
        _sweepers.pop().join(timeout=120)


def _announce_unsupported(
    jobs: Sequence[PlannedJob],
    emit: Callable[[Event], None],
    containers: ContainerRunner | None,
) -> None:
    for job in jobs:
        keys = job.spec.unsupported
        if containers is not None and containers.wants(job):
            keys = tuple(key for key in keys if key != "services")
        if keys:
            emit(
                Notice(
                    f"{', '.join(keys)}: not emulated locally; the job runs without it", job.name
                )
            )


def _finish(
    plan: Plan,
    jobs: Sequence[PlannedJob],
    record: Path,
    pipeline_id: int,
    results: dict[str, JobResult],
    started: float,
    interrupted: bool,
) -> RunResult:
    if interrupted:
        status = "canceled"
    elif not results:
        status = "skipped"
    else:
        status = pipeline_status((r.status, r.allow_failure) for r in results.values())
        status = with_downstream_status(status, results.values())
    duration = time.monotonic() - started
    _write_record(record, plan, pipeline_id, status, results, duration)
    ordered = tuple(results[j.name] for j in jobs if j.name in results)
    return RunResult(pipeline_id, status, ordered, duration, str(record))


def mark_abandoned(store: Store, *, recent: int = 20) -> None:
    """Records left 'running' by a localci that was killed (its lock is free) become canceled."""
    latest = store.latest_pipeline_id() or 0
    for pipeline_id in range(max(1, latest - recent + 1), latest + 1):
        path = store.pipeline_dir(pipeline_id) / "pipeline.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("status") != "running":
            continue
        try:
            with store.lock(f"pipeline-{pipeline_id}", blocking=False):
                data["status"] = "canceled"
                data["reason"] = "localci was stopped before it could finish this run"
                atomic_write_json(path, data)
        except LockBusy:
            continue  # another localci is running it right now


@contextmanager
def _lock_snapshot(store: Store, pipeline_id: int) -> Iterator[None]:
    # Held for the whole run so that cleanup by a concurrent run never removes our snapshot.
    with store.lock(f"pipeline-{pipeline_id}"):
        yield


@contextmanager
def _interrupts() -> Iterator[Callable[[], None]]:
    """SIGINT and SIGTERM stop a run alike (KeyboardInterrupt) until disarmed.

    Yields `disarm`: after it, signals are noted but no longer interrupt, so the final
    record is always written.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    armed = [True]

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            armed[0] = False
            interrupts.note_and_raise(signum, frame)

    def disarm() -> None:
        armed[0] = False

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupts.raise_if_requested()  # one that came while the handlers were being changed
        yield disarm
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def git_dir_of(project_dir: Path) -> Path | None:
    """The repository's git directory (None when it is not a repository)."""
    from localci.errors import GitError
    from localci.git import run_git

    try:
        out = run_git(project_dir, "rev-parse", "--absolute-git-dir", timeout=30)
    except GitError:
        return None
    path = os.fsdecode(out.stdout.strip())
    return Path(path) if out.returncode == 0 and path else None


def _write_record(
    record: Path,
    plan: Plan,
    pipeline_id: int,
    status: str,
    results: Mapping[str, JobResult],
    duration: float,
) -> None:
    ctx = plan.context
    order = {job.name: index for index, job in enumerate(plan.jobs)}
    atomic_write_json(
        record / "pipeline.json",
        {
            "id": pipeline_id,
            "status": status,
            "ref": ctx.ref,
            "tag": ctx.ref_is_tag,
            "sha": ctx.sha,
            "source": ctx.source,
            "duration_s": round(duration, 3),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stages": list(plan.stages),
            "jobs": [  # in the order they finished; `order` is the definition order
                {**job_json(r), **_planned_json(plan.job(r.name), order)} for r in results.values()
            ],
        },
    )


def _planned_json(job: PlannedJob | None, order: Mapping[str, int]) -> dict[str, object]:
    """What the pipeline page draws besides the result: needs lines, `when`, script phases."""
    if job is None:
        return {}
    artifacts = job.spec.artifacts
    out: dict[str, object] = {
        "order": order.get(job.name, len(order)),
        "needs": None if job.needs is None else [need.job for need in job.needs],
        "when": job.when,
        "before_script": len(job.spec.before_script),
        "trigger": job.spec.trigger,
    }
    if artifacts is not None and artifacts.expose_as:
        out["expose_as"] = {"name": artifacts.expose_as, "paths": list(artifacts.paths)}
    return out


def job_json(result: JobResult) -> dict[str, object]:
    """A job result in the `--json-report` shape."""
    out: dict[str, object] = {
        "name": result.name,
        "stage": result.stage,
        "status": _report_status(result.status),
        "allow_failure": result.allow_failure,
        "exit_code": result.exit_code,
        "duration_s": round(result.duration_s, 3),
        "log": result.log,
    }
    if result.reason:
        out["reason"] = result.reason
    if result.tests is not None:
        t = result.tests
        out["tests"] = {
            "passed": t.passed,
            "failed": t.failed,
            "skipped": t.skipped,
            "errors": t.errors,
            "failed_names": list(t.failed_names),
        }
    if result.coverage is not None:
        out["coverage"] = result.coverage
    if result.started_at is not None and result.finished_at is not None:
        out["started_at"] = round(result.started_at, 3)
        out["finished_at"] = round(result.finished_at, 3)
    if result.downstream is not None:
        from localci.execute.bridge import downstream_json

        out["downstream"] = downstream_json(result.downstream)
    if result.python_substitution:
        out["python_substitution"] = result.python_substitution
    if result.unstarted_services:
        out["services_not_started"] = list(result.unstarted_services)
    return out


def _report_status(status: Status) -> str:
    return "skipped" if status is Status.CREATED else status.value
