"""Trigger jobs at run time: the downstream pipeline created (downstream_create.py), then run
by the same scheduler and job runner, nested under its trigger job, in the foreground with
`strategy: depend`/`mirror` or in the background without; a multi-project pipeline that is not
mapped to a checkout is reported as not run. The trigger job's status: bridge.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from localci.errors import LocalCIError
from localci.events import JobFinished, JobStarted
from localci.execute.bridge import (
    TriggerLog,
    bridge_status,
    nested_emit,
    write_child_record,
)
from localci.execute.downstream_create import (
    Created,
    DownstreamSettings,
    PipelineCreator,
    forget_pipeline,
)
from localci.execute.job import JobHooks, JobRunner, RunContext, file_name
from localci.execute.parent_artifacts import ParentArtifacts
from localci.execute.scheduler import Scheduler
from localci.plan.child import MAX_CHILD_DEPTH, MAX_DEPTH_MESSAGE, TriggerSpec, job_trigger
from localci.plan.model import PlannedJob
from localci.results import (
    Downstream,
    JobResult,
    Status,
    pipeline_status,
    with_downstream_status,
)


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
        self._creator = PipelineCreator(ctx, settings)

    # --------------------------------------------------------------------------- the job

    def __call__(self, job: PlannedJob, cancel: threading.Event) -> JobResult:
        spec = job_trigger(job)
        assert spec is not None
        started = time.monotonic()
        log_path = self.ctx.record_dir / "jobs" / f"{file_name(job.name)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ctx.emit(JobStarted(job.name, job.stage, 1))
        with log_path.open("w", encoding="utf-8") as log:
            say = TriggerLog(log, job.name, self.ctx.emit)
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
        self, job: PlannedJob, spec: TriggerSpec, cancel: threading.Event, say: TriggerLog
    ) -> tuple[Status, str, Downstream | None]:
        if self.settings.depth >= MAX_CHILD_DEPTH:
            say(f"ERROR: {MAX_DEPTH_MESSAGE}")
            return Status.FAILED, MAX_DEPTH_MESSAGE, None
        checkout = None if spec.is_child else self._creator.mapped(spec)
        if not spec.is_child and checkout is None:
            return self._project_not_run(spec, say)
        say(f"Creating a downstream pipeline from {spec.describe()}")
        try:
            if checkout is None:
                created = self._creator.create_child(job, spec, say)
            else:
                created = self._creator.create_project(job, spec, checkout, say)
        except LocalCIError as exc:
            text = exc.render()
            for line in text.splitlines():
                say(f"ERROR: {line}")
            return Status.FAILED, f"the downstream pipeline could not be created: {text}", None
        child_id = created.pipeline_id
        if not created.plan.created:
            say(f"No downstream pipeline: {created.plan.workflow_reason}")
            forget_pipeline(created.base.store, child_id)
            reason = f"the downstream pipeline could not be created: {created.plan.workflow_reason}"
            return Status.FAILED, reason, None
        say(f"Downstream pipeline #{child_id}: {len(created.plan.included)} job(s)")
        if not spec.mirrors_status:
            return self._in_background(job, spec, created, cancel, say)
        outcome = self._run_child(job, spec, created, cancel)
        say(f"Downstream pipeline #{child_id} {outcome.status}")
        status, reason = bridge_status(spec.strategy, child_id, outcome.status)
        return status, reason, outcome

    def _in_background(
        self,
        job: PlannedJob,
        spec: TriggerSpec,
        created: Created,
        cancel: threading.Event,
        say: TriggerLog,
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

    def _project_not_run(
        self, spec: TriggerSpec, say: TriggerLog
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

    # --------------------------------------------------------------------------- the child run

    def _run_child(
        self,
        trigger: PlannedJob,
        spec: TriggerSpec,
        created: Created,
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
                write_child_record(
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
        write_child_record(record, plan, child_id, status, results, duration, parent_id, trigger)
        ordered = tuple(results[j.name] for j in plan.ordered() if j.name in results)
        return Downstream(
            created.kind, spec.describe(), spec.strategy, status, child_id, ordered, str(record)
        )

    def _child_run_context(
        self, created: Created, trigger: PlannedJob, record: Path
    ) -> tuple[RunContext, DownstreamRunner]:
        """The job runner's context of a downstream pipeline, and the runner of its own
        trigger jobs (one level deeper)."""
        child_ctx = replace(
            created.base,
            record_dir=record,
            emit=nested_emit(self.ctx.emit, trigger),
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

    def _ancestors(self, created: Created, trigger: PlannedJob) -> dict[str, int]:
        """Pipelines whose artifacts `needs:pipeline` may name: the parent and its ancestors
        (a multi-project pipeline has none: they belong to another project)."""
        if created.kind != "child":
            return {}
        parent = trigger.predefined.get("CI_PIPELINE_ID", "")
        return {**self.settings.ancestors, parent: self.settings.pipeline_id}

    def _child_hooks(self, created: Created, trigger: PlannedJob) -> JobHooks:
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
