"""Creating a trigger job's downstream pipeline: a child pipeline from the parent's files or
from a generated configuration (artifacts of an earlier job), or a multi-project pipeline from
a checkout the project is mapped to; planned with the variables the trigger job passes on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from localci.config.includes import ExternalSource, IncludeOptions
from localci.errors import LocalCIError
from localci.execute.artifacts import find_record
from localci.execute.bridge import TriggerLog
from localci.execute.job import JobHooks, RunContext
from localci.execute.stored_trees import DATA
from localci.plan.child import (
    TriggerSpec,
    child_context,
    downstream_variables,
    load_child_pipeline,
)
from localci.plan.model import Plan, PlannedJob
from localci.plan.variables import VarValue
from localci.state import Store

HooksFactory = Callable[[Store, int], JobHooks]


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
class Created:
    """A downstream pipeline that exists: its plan, record number and the context its jobs
    run in (the parent's for a child; the mapped checkout's for a multi-project pipeline)."""

    kind: str
    plan: Plan
    pipeline_id: int
    base: RunContext


class PipelineCreator:
    """Creates the downstream pipelines of one pipeline's trigger jobs."""

    def __init__(self, ctx: RunContext, settings: DownstreamSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._external: ExternalSource | None = None

    def mapped(self, spec: TriggerSpec) -> Path | None:
        """The local checkout a multi-project trigger's project is mapped to, if any."""
        source = self._external_source()
        mapped = getattr(source, "mapped_checkout", None)
        return mapped(spec.project) if mapped is not None and spec.project else None

    def _passed(self, job: PlannedJob, spec: TriggerSpec, say: TriggerLog) -> dict[str, VarValue]:
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

    def create_child(self, job: PlannedJob, spec: TriggerSpec, say: TriggerLog) -> Created:
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
            forget_pipeline(self.ctx.store, child_id)
            raise
        _warn(plan, say)
        return Created("child", plan, child_id, self.ctx)

    def create_project(
        self, job: PlannedJob, spec: TriggerSpec, checkout: Path, say: TriggerLog
    ) -> Created:
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
            forget_pipeline(store, child_id)
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
        return Created("project", plan, child_id, base)

    def _dynamic_sources(self, spec: TriggerSpec, say: TriggerLog) -> dict[tuple[str, str], str]:
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


def _warn(plan: Plan, say: TriggerLog) -> None:
    for warning in plan.warnings:
        if "points outside this pipeline" not in warning:  # needs:pipeline: handled here
            say(f"WARNING: {warning}")


def forget_pipeline(store: Store, pipeline_id: int) -> None:
    """A child that could not be created leaves no record (its number is not reused)."""
    with contextlib.suppress(OSError):
        store.pipeline_dir(pipeline_id).rmdir()
