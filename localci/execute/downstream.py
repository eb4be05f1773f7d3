"""Trigger jobs at run time: child pipelines planned and run by the same planner and executor,
nested under their trigger job; multi-project pipelines reported as not run.

Status as on GitLab (Ci::Bridge): without `strategy` the trigger job succeeds once the child is
created and the child runs on its own (its failure does not fail the parent); with
`strategy: depend` the job takes the child's result (success -> success, canceled -> canceled,
failed/skipped -> failed); `strategy: mirror` mirrors it (skipped stays skipped, blocked stays
blocked).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from localci.config.includes import ExternalSource, IncludeOptions
from localci.errors import LocalCIError
from localci.events import Event, JobFinished, JobOutput, JobStarted, Notice
from localci.execute.artifacts import DATA, find_record, read_record
from localci.execute.job import JobHooks, JobRunner, RunContext, file_name
from localci.execute.results import (
    Downstream,
    JobResult,
    Status,
    pipeline_status,
    with_downstream_status,
)
from localci.execute.scheduler import Scheduler
from localci.execute.store import Store, atomic_write_json
from localci.execute.workspace import Workspace
from localci.plan.child import (
    MAX_CHILD_DEPTH,
    MAX_DEPTH_MESSAGE,
    TriggerSpec,
    child_context,
    downstream_variables,
    job_trigger,
    load_child_pipeline,
)
from localci.plan.model import Plan, PlannedJob
from localci.plan.variables import VarValue, expand_runner

HooksFactory = Callable[[Store, int], JobHooks]
NAME_SEPARATOR = " > "
_MIRROR = {
    "success": Status.SUCCESS,
    "failed": Status.FAILED,
    "canceled": Status.CANCELED,
    "skipped": Status.SKIPPED,
    "blocked": Status.CREATED,
}
_DEPEND = {**_MIRROR, "skipped": Status.FAILED}


@dataclass(frozen=True)
class DownstreamSettings:
    """What a pipeline's trigger jobs need besides the job runner's context."""

    plan: Plan
    max_parallel: int
    project_variables: Mapping[str, VarValue]
    pipeline_variables: Mapping[str, VarValue]
    pipeline_id: int
    includes: IncludeOptions = field(default_factory=IncludeOptions)
    hooks_factory: HooksFactory | None = None
    depth: int = 0
    # CI_PIPELINE_ID as the jobs of an ancestor saw it -> that pipeline's record id
    ancestors: Mapping[str, int] = field(default_factory=dict)
    notify: Callable[[str], None] | None = None


@dataclass(frozen=True)
class _Created:
    """A downstream pipeline that exists: its plan, record number and the context its jobs
    run in (the parent's for a child; the mapped checkout's for a multi-project pipeline)."""

    kind: str
    plan: Plan
    pipeline_id: int
    base: RunContext


@dataclass
class _Background:
    job: str
    thread: threading.Thread
    cancel: threading.Event
    outcome: list[Downstream] = field(default_factory=list)


class DownstreamRunner:
    """Runs the trigger jobs of one pipeline; `finish` waits for children left running."""

    def __init__(self, ctx: RunContext, settings: DownstreamSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._background: list[_Background] = []
        self._external: ExternalSource | None = None

    # --------------------------------------------------------------------------- the job

    def __call__(self, job: PlannedJob, cancel: threading.Event) -> JobResult:
        spec = job_trigger(job)
        assert spec is not None
        started = time.monotonic()
        log_path = self.ctx.record_dir / "jobs" / f"{file_name(job.name)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ctx.emit(JobStarted(job.name, job.stage, 1))
        with log_path.open("w", encoding="utf-8") as log:
            say = _Say(log, job.name, self.ctx.emit)
            status, reason, downstream = self._trigger(job, spec, cancel, say)
        allowed = job.allow_failure.allowed
        return JobResult(
            name=job.name,
            stage=job.stage,
            status=status,
            allow_failure=allowed,
            duration_s=time.monotonic() - started,
            log=str(log_path),
            reason=reason,
            attempts=1,
            downstream=downstream,
        )

    def _trigger(
        self, job: PlannedJob, spec: TriggerSpec, cancel: threading.Event, say: _Say
    ) -> tuple[Status, str, Downstream | None]:
        if self.settings.depth >= MAX_CHILD_DEPTH:
            say(f"ERROR: {MAX_DEPTH_MESSAGE}")
            return Status.FAILED, MAX_DEPTH_MESSAGE, None
        checkout = None if spec.is_child else self._mapped(spec)
        if not spec.is_child and checkout is None:
            return self._project_not_run(spec, say)
        say(f"Creating a downstream pipeline from {spec.describe()}")
        try:
            if checkout is None:
                created = self._create_child(job, spec, say)
            else:
                created = self._create_project(job, spec, checkout, say)
        except LocalCIError as exc:
            text = exc.render()
            for line in text.splitlines():
                say(f"ERROR: {line}")
            return Status.FAILED, f"the downstream pipeline could not be created: {text}", None
        child_id = created.pipeline_id
        if not created.plan.created:
            say(f"No downstream pipeline: {created.plan.workflow_reason}")
            _forget(created.base.store, child_id)
            reason = f"the downstream pipeline could not be created: {created.plan.workflow_reason}"
            return Status.FAILED, reason, None
        say(f"Downstream pipeline #{child_id}: {len(created.plan.included)} job(s)")
        if not spec.mirrors_status:
            return self._in_background(job, spec, created, cancel, say)
        outcome = self._run_child(job, spec, created, cancel)
        say(f"Downstream pipeline #{child_id} {outcome.status}")
        table = _DEPEND if spec.strategy == "depend" else _MIRROR
        status = table.get(outcome.status, Status.FAILED)
        reason = (
            "" if status is Status.SUCCESS else f"downstream pipeline #{child_id} {outcome.status}"
        )
        if outcome.status == "blocked":
            reason = f"downstream pipeline #{child_id} is blocked by a manual job"
        return status, reason, outcome

    def _in_background(
        self,
        job: PlannedJob,
        spec: TriggerSpec,
        created: _Created,
        cancel: threading.Event,
        say: _Say,
    ) -> tuple[Status, str, Downstream | None]:
        own = threading.Event()
        entry = _Background(job.name, threading.Thread(), own)
        child_id = created.pipeline_id

        def run() -> None:
            entry.outcome.append(self._run_child(job, spec, created, own, cancel))

        entry.thread = threading.Thread(target=run, name=f"localci-child-{child_id}", daemon=True)
        self._background.append(entry)
        entry.thread.start()
        say("Without `strategy: depend` the trigger job succeeds once the child is created")
        running = Downstream(created.kind, spec.describe(), spec.strategy, "running", child_id)
        return Status.SUCCESS, "", running

    def _mapped(self, spec: TriggerSpec) -> Path | None:
        source = self._external_source()
        mapped = getattr(source, "mapped_checkout", None)
        return mapped(spec.project) if mapped is not None and spec.project else None

    def _project_not_run(
        self, spec: TriggerSpec, say: _Say
    ) -> tuple[Status, str, Downstream | None]:
        hint = (
            f"not run: downstream project pipeline ({spec.project}); map it to a local "
            f"checkout to run it: --include-map {spec.project}=DIR (or `map:` in "
            ".localci/includes.yml)"
        )
        say(hint)
        if spec.mirrors_status:
            say(f"strategy: {spec.strategy}: the pipeline's result is unknown")
        return Status.SKIPPED, hint, Downstream("project", spec.describe(), spec.strategy)

    # --------------------------------------------------------------------------- planning

    def _passed(self, job: PlannedJob, spec: TriggerSpec, say: _Say) -> dict[str, VarValue]:
        hooks = self.ctx.hooks or JobHooks()
        passed = downstream_variables(
            job,
            spec,
            dotenv=hooks.dotenv(job),
            project_variables=self.settings.project_variables,
            pipeline_variables=self.settings.pipeline_variables,
        )
        for name in sorted(passed):
            say(f"Passing variable {name} to the downstream pipeline")
        return passed

    def _create_child(self, job: PlannedJob, spec: TriggerSpec, say: _Say) -> _Created:
        from localci.plan.planner import build_plan

        user = {**self.settings.project_variables, **self._passed(job, spec, say)}
        ctx = child_context(self.settings.plan.context)
        pipeline = load_child_pipeline(
            ctx.project_dir,
            spec,
            ctx,
            user_variables=user,
            artifacts=self._dynamic_sources(spec, say),
            external=self._external_source(),
        )
        for warning in pipeline.warnings:
            say(f"WARNING: {warning}")
        child_id = self.ctx.store.next_pipeline_id()
        try:
            plan = build_plan(pipeline, ctx, user_variables=user, pipeline_id=child_id)
        except LocalCIError:
            _forget(self.ctx.store, child_id)
            raise
        _warn(plan, say)
        return _Created("child", plan, child_id, self.ctx)

    def _create_project(
        self, job: PlannedJob, spec: TriggerSpec, checkout: Path, say: _Say
    ) -> _Created:
        """A multi-project pipeline from a mapped checkout: its own `.gitlab-ci.yml`, its own
        `.localci/` state (caches, artifacts, records), source `pipeline`."""
        from localci.config import load_pipeline
        from localci.config.external import external_source
        from localci.execute.pipeline import git_dir_of
        from localci.execute.snapshot import take_snapshot
        from localci.execute.workspace import WorkspacePool
        from localci.plan.context import detect_context
        from localci.plan.planner import build_plan
        from localci.plan.variables import include_rule_variables

        say(f"Project {spec.project} is mapped to {checkout}")
        ctx = detect_context(checkout, branch=spec.branch, source="pipeline")
        user = self._passed(job, spec, say)
        variables = {**include_rule_variables(ctx), **{k: v.value for k, v in user.items()}}
        external = external_source(checkout, self.settings.includes, notify=self.settings.notify)
        pipeline = load_pipeline(checkout, variables=variables, external=external)
        store = Store(checkout)
        store.ensure()
        child_id = store.next_pipeline_id()
        try:
            plan = build_plan(pipeline, ctx, user_variables=user, pipeline_id=child_id)
            with store.lock(f"pipeline-{child_id}"):
                snapshot = take_snapshot(checkout, store, pipeline_id=child_id, sha=ctx.sha)
        except LocalCIError:
            _forget(store, child_id)
            raise
        _warn(plan, say)
        base = replace(
            self.ctx,
            project_dir=checkout,
            store=store,
            snapshot=snapshot,
            pool=WorkspacePool(store, checkout.name or "project"),
            ref=ctx.ref,
            ref_is_tag=ctx.ref_is_tag,
            user_git_dir=git_dir_of(checkout),
        )
        return _Created("project", plan, child_id, base)

    def _dynamic_sources(self, spec: TriggerSpec, say: _Say) -> dict[tuple[str, str], str]:
        texts: dict[tuple[str, str], str] = {}
        for job, path in spec.dynamic_sources:
            # As for any artifact: this run's, else (a partial run) the latest earlier one.
            record = find_record(self.ctx.store, self.settings.pipeline_id, job, previous=True)
            if record is None:
                continue
            if record.pipeline_id != self.settings.pipeline_id:
                say(f"The configuration generated by {job} is from pipeline #{record.pipeline_id}")
            wanted = path.lstrip("/").removeprefix("./")
            if not any(entry.path == wanted for entry in record.manifest.entries):
                continue
            try:
                texts[(job, path)] = (record.path / DATA / wanted).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
        return texts

    def _external_source(self) -> ExternalSource:
        if self._external is None:
            from localci.config.external import external_source

            self._external = external_source(
                self.settings.plan.context.project_dir,
                self.settings.includes,
                notify=self.settings.notify,
            )
        return self._external

    # --------------------------------------------------------------------------- the child run

    def _run_child(
        self,
        trigger: PlannedJob,
        spec: TriggerSpec,
        created: _Created,
        cancel: threading.Event,
        *also: threading.Event,
    ) -> Downstream:
        plan, child_id = created.plan, created.pipeline_id
        store = created.base.store
        record = store.pipeline_dir(child_id)
        results: dict[str, JobResult] = {}
        own_cancel = threading.Event()
        stop_link = _link(own_cancel, cancel, *also)
        started = time.monotonic()
        parent_id = self.settings.pipeline_id
        try:
            with store.lock(f"pipeline-{child_id}"):
                _write_child_record(
                    record, plan, child_id, "running", results, 0.0, parent_id, trigger
                )
                child_ctx, runner = self._child_run_context(created, trigger, record)

                def report(result: JobResult) -> None:
                    results[result.name] = result
                    child_ctx.emit(JobFinished(result))

                Scheduler(
                    plan.ordered(),
                    JobRunner(child_ctx),
                    report,
                    max_parallel=self.settings.max_parallel,
                    cancel_on_failure=False,
                    cancel=own_cancel,
                ).run()
                runner.finish(results)
        finally:
            stop_link()
        status = pipeline_status((r.status, r.allow_failure) for r in results.values())
        status = with_downstream_status(status if results else "skipped", results.values())
        if own_cancel.is_set() and status == "success":
            status = "canceled"
        duration = time.monotonic() - started
        _write_child_record(record, plan, child_id, status, results, duration, parent_id, trigger)
        ordered = tuple(results[j.name] for j in plan.ordered() if j.name in results)
        return Downstream(
            created.kind, spec.describe(), spec.strategy, status, child_id, ordered, str(record)
        )

    def _child_run_context(
        self, created: _Created, trigger: PlannedJob, record: Path
    ) -> tuple[RunContext, DownstreamRunner]:
        """The job runner's context of a downstream pipeline, and the runner of its own
        trigger jobs (one level deeper)."""
        child_ctx = replace(
            created.base,
            record_dir=record,
            emit=_nested_emit(self.ctx.emit, trigger),
            user_variables=created.plan.user_variables,
            hooks=self._child_hooks(created, trigger),
            downstream=None,
        )
        own_settings = self.settings.project_variables if created.kind == "child" else {}
        runner = DownstreamRunner(
            child_ctx,
            replace(
                self.settings,
                plan=created.plan,
                pipeline_id=created.pipeline_id,
                depth=self.settings.depth + 1,
                ancestors=self._ancestors(created, trigger),
                project_variables=own_settings,
                pipeline_variables={},
            ),
        )
        child_ctx.downstream = runner
        return child_ctx, runner

    def _ancestors(self, created: _Created, trigger: PlannedJob) -> dict[str, int]:
        """Pipelines whose artifacts `needs:pipeline` may name: the parent and its ancestors
        (a multi-project pipeline has none: they belong to another project)."""
        if created.kind != "child":
            return {}
        parent = trigger.predefined.get("CI_PIPELINE_ID", "")
        return {**self.settings.ancestors, parent: self.settings.pipeline_id}

    def _child_hooks(self, created: _Created, trigger: PlannedJob) -> JobHooks:
        factory = self.settings.hooks_factory
        store = created.base.store
        inner = factory(store, created.pipeline_id) if factory else JobHooks()
        # A child is a whole pipeline: never artifacts of an earlier run under the same name.
        if hasattr(inner, "previous_pipelines"):
            inner.previous_pipelines = False
        ancestors = self._ancestors(created, trigger)
        return ParentArtifacts(inner, store, ancestors, created.plan.user_variables)

    # --------------------------------------------------------------------------- the end

    def finish(self, results: dict[str, JobResult]) -> None:
        """Wait for children running without `strategy: depend`; put them in their results."""
        try:
            for entry in self._background:
                while entry.thread.is_alive():
                    entry.thread.join(0.2)
        except BaseException:
            for entry in self._background:
                entry.cancel.set()
            for entry in self._background:
                entry.thread.join()
            raise
        finally:
            for entry in self._background:
                result = results.get(entry.job)
                if result is not None and entry.outcome:
                    results[entry.job] = replace(result, downstream=entry.outcome[0])


class ParentArtifacts(JobHooks):
    """A child's hooks: its own caches and artifacts, plus `needs:pipeline:job` artifacts (and
    dotenv) of an ancestor pipeline, usually `pipeline: $PARENT_PIPELINE_ID`."""

    def __init__(
        self,
        inner: JobHooks,
        store: Store,
        ancestors: Mapping[str, int],
        variables: Mapping[str, VarValue],
    ) -> None:
        self.inner = inner
        self.store = store
        self.ancestors = dict(ancestors)
        self.variables = variables

    def _parent_needs(self, job: PlannedJob) -> list[tuple[str, str, int | None]]:
        out = []
        values = {**job.predefined, **{k: v.value for k, v in job.yaml_variables.items()}}
        values.update({k: v.value for k, v in self.variables.items()})
        for need in job.job.needs or ():
            if need.external is None or not need.external.startswith("pipeline ") or not need.job:
                continue
            expression = need.external.removeprefix("pipeline ")
            resolved = expand_runner(expression, values)
            out.append((need.job, resolved, self.ancestors.get(resolved)))
        return out

    def dotenv(self, job: PlannedJob) -> Mapping[str, VarValue]:
        variables = dict(self.inner.dotenv(job))
        for name, _, pipeline_id in self._parent_needs(job):
            record = read_record(self.store, pipeline_id, name) if pipeline_id else None
            if record is not None:
                variables.update({k: VarValue(v) for k, v in record.dotenv.items()})
        return variables

    def before(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        notes: list[str],
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.inner.before(job, ws, env, notes, log)
        for name, resolved, pipeline_id in self._parent_needs(job):
            if pipeline_id is None:
                notes.append(
                    f"needs:pipeline {resolved!r} is not a parent pipeline of this run: "
                    f"artifacts of {name!r} not downloaded"
                )
                continue
            from localci.execute.transfer import TransferHooks

            parent = TransferHooks(self.store, pipeline_id, previous_pipelines=False)
            parent._restore_artifacts(name, ws, log or (lambda line: None), notes)

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
        return self.inner.after(job, ws, env, succeeded, log_text, notes, log)


# ------------------------------------------------------------------------------- helpers


class _Say:
    """The trigger job's log: every line to its file and to the reporters."""

    def __init__(self, log: TextIO, name: str, emit: Callable[[Event], None]) -> None:
        self.log = log
        self.name = name
        self.emit = emit

    def __call__(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()
        self.emit(JobOutput(self.name, line))


def nested_name(trigger: str, job: str) -> str:
    """How a child's job is shown: under its trigger job."""
    return f"{trigger}{NAME_SEPARATOR}{job}"


def _nested_emit(emit: Callable[[Event], None], trigger: PlannedJob) -> Callable[[Event], None]:
    """The parent's reporters see the child's jobs named `trigger > job`, in the trigger's
    stage; the child's own pipeline events are not theirs to see."""

    def nested(event: Event) -> None:
        if isinstance(event, JobStarted):
            emit(JobStarted(nested_name(trigger.name, event.name), trigger.stage, event.attempt))
        elif isinstance(event, JobOutput):
            emit(JobOutput(nested_name(trigger.name, event.name), event.line))
        elif isinstance(event, JobFinished):
            result = event.result
            emit(
                JobFinished(
                    replace(
                        result, name=nested_name(trigger.name, result.name), stage=trigger.stage
                    )
                )
            )
        elif isinstance(event, Notice):
            name = nested_name(trigger.name, event.job) if event.job else trigger.name
            emit(Notice(event.text, name))

    return nested


def _warn(plan: Plan, say: _Say) -> None:
    for warning in plan.warnings:
        if "points outside this pipeline" not in warning:  # needs:pipeline: handled here
            say(f"WARNING: {warning}")


def _forget(store: Store, pipeline_id: int) -> None:
    """A child that could not be created leaves no record (its number is not reused)."""
    with contextlib.suppress(OSError):
        store.pipeline_dir(pipeline_id).rmdir()


def _link(target: threading.Event, *sources: threading.Event) -> Callable[[], None]:
    """Set `target` when any of `sources` is set, until the returned stop() is called."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if any(source.is_set() for source in sources):
                target.set()
                return

    thread = threading.Thread(target=watch, name="localci-child-cancel", daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join()

    return stop


def downstream_json(downstream: Downstream) -> dict[str, object]:
    from localci.execute.pipeline import job_json

    return {
        "kind": downstream.kind,
        "source": downstream.source,
        "strategy": downstream.strategy,
        "status": downstream.status,
        "pipeline": downstream.pipeline_id,
        "record_dir": downstream.record_dir,
        "jobs": [job_json(j) for j in downstream.jobs],
    }


def _write_child_record(
    record: Path,
    plan: Plan,
    child_id: int,
    status: str,
    results: Mapping[str, JobResult],
    duration: float,
    parent_id: int,
    trigger: PlannedJob,
) -> None:
    from localci.execute.pipeline import job_json

    ctx = plan.context
    atomic_write_json(
        record / "pipeline.json",
        {
            "id": child_id,
            "status": status,
            "ref": ctx.ref,
            "tag": ctx.ref_is_tag,
            "sha": ctx.sha,
            "source": ctx.source,
            "parent": {"pipeline": parent_id, "job": trigger.name},
            "duration_s": round(duration, 3),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "jobs": [job_json(r) for r in results.values()],
        },
    )
