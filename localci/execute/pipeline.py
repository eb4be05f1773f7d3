"""One pipeline run: state, snapshot, scheduler, records. The executor's public seam."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from localci.events import Event, JobFinished, Notice, PipelineFinished, PipelineStarted
from localci.execute.environment import host_base
from localci.execute.job import JobHooks, JobRunner, RunContext
from localci.execute.results import JobResult, RunResult, Status, pipeline_status
from localci.execute.scheduler import Scheduler
from localci.execute.store import LockBusy, Store, atomic_write_json, user_cache_dir
from localci.execute.venvs import VenvFactory
from localci.execute.workspace import WorkspacePool, remove_stale, take_snapshot
from localci.plan.model import Plan, PlannedJob

if TYPE_CHECKING:
    from localci.execute.container.engine import Engine
    from localci.execute.container.executor import ContainerRunner


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
        venvs=VenvFactory(user_cache_dir() / "virtualenv"),
        record_dir=store.pipeline_dir(pipeline_id),
        ref=ctx.ref,
        ref_is_tag=ctx.ref_is_tag,
        user_git_dir=_git_dir(ctx.project_dir),
        emit=emit,
        user_variables=plan.user_variables,
        base_env=host_base(),
        python=options.python,
        default_timeout_s=options.timeout_s or 3600.0,
        color=options.color,
        pip_cache_dir=user_cache_dir() / "pip",
        offline=options.offline,
        hooks=hooks_factory(store, pipeline_id) if hooks_factory else None,
        executor=options.executor,
        containers=containers,
    )

    def report(result: JobResult) -> None:
        results[result.name] = result
        emit(JobFinished(result))

    Scheduler(
        jobs,
        JobRunner(run_ctx),
        report,
        max_parallel=options.max_parallel,
        manual=options.manual,
        cancel_on_failure=options.cancel_on_failure,
    ).run()
    _join_sweepers()


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
        keys = job.job.unsupported
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

    def handler(signum: int, frame: object) -> None:
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    def disarm() -> None:
        armed[0] = False

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield disarm
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _git_dir(project_dir: Path) -> Path | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--absolute-git-dir"],
            cwd=project_dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _write_record(
    record: Path,
    plan: Plan,
    pipeline_id: int,
    status: str,
    results: Mapping[str, JobResult],
    duration: float,
) -> None:
    ctx = plan.context
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
            "jobs": [job_json(r) for r in results.values()],
        },
    )


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
    return out


def _report_status(status: Status) -> str:
    return "skipped" if status is Status.CREATED else status.value
