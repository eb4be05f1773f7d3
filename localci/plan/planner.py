"""Pipeline creation as GitLab does it (docs/SEMANTICS.md §0 steps 7-8): the resolved config and a
pipeline context in, a `Plan` out; plus job selection for `run` and `explain` for humans."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from localci.config.model import Job, Pipeline, Retry, Variable
from localci.errors import PlanError, Problem, UsageError
from localci.plan.context import PipelineContext, describe_changes_base
from localci.plan.job_graph import GraphJob, Instance, expand_jobs, resolve_graph
from localci.plan.model import JobSpec, PipelineNeed, Plan, PlannedJob, PlannedNeed
from localci.plan.repo_facts import GitFacts, RepoFacts
from localci.plan.rules import (
    Decision,
    RuleEvaluator,
    Scope,
    WorkflowDecision,
    decide_job,
    decide_workflow,
    job_allow_failure,
)
from localci.plan.variables import (
    JOB_ONLY_VARIABLES,
    VarValue,
    job_variables,
    pipeline_variables,
    utc_now,
)

EDGE_STAGES = (".pre", ".post")
_EMPTY: Mapping[str, VarValue] = MappingProxyType({})


def _yaml_layer(variables: Iterable[Variable]) -> dict[str, VarValue]:
    return {var.name: VarValue(var.value, raw=not var.expand) for var in variables}


class _PlainValues(Mapping[str, VarValue]):
    """Plain strings as `VarValue`s, made only when a decision reads them (most read the
    plain strings only)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> VarValue:
        return VarValue(self._raw[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class _Planner:
    """One planning run: the pipeline-wide layers are computed once and shared by all jobs."""

    def __init__(
        self,
        pipeline: Pipeline,
        ctx: PipelineContext,
        user_variables: Mapping[str, VarValue],
        pipeline_id: int,
        facts: RepoFacts | None,
    ) -> None:
        self.pipeline = pipeline
        self.ctx = ctx
        self.user = dict(user_variables)
        self.pipeline_id = pipeline_id
        self.evaluator = RuleEvaluator(ctx, facts if facts is not None else GitFacts(ctx))
        self.instances = expand_jobs(pipeline.jobs)
        self.stage_index = {stage: index for index, stage in enumerate(pipeline.stages)}
        self.globals = _yaml_layer(pipeline.variables)
        self.created_at = utc_now()
        self.predefined = self._predefined(None)
        self._inherited: dict[bool | tuple[str, ...], Mapping[str, VarValue]] = {}
        self._inherited_raw: dict[bool | tuple[str, ...], Mapping[str, str]] = {}
        self.user_raw = {name: var.value for name, var in self.user.items()}
        self.name: str | None = None

    # ---- workflow ------------------------------------------------------------------------------

    def workflow(self, trace: list[str] | None = None) -> WorkflowDecision:
        scope = Scope([self.rules_predefined, self.globals, self.user])
        decision = decide_workflow(self.pipeline.workflow, self.evaluator, scope, trace)
        if decision.created:
            self.globals.update(_yaml_layer(decision.variables))
            self.name = self._pipeline_name()
            if self.name is not None:
                self.predefined = self._predefined(self.name)
        return decision

    def _predefined(self, name: str | None) -> dict[str, str]:
        predefined = pipeline_variables(
            self.ctx,
            pipeline_id=self.pipeline_id,
            pipeline_iid=self.pipeline_id,
            pipeline_name=name,
            created_at=self.created_at,
        )
        # What `rules` see: the pipeline-level predefined variables without the job-only ones.
        self.rules_predefined_raw = {
            k: v for k, v in predefined.items() if k not in JOB_ONLY_VARIABLES
        }
        self.rules_predefined = {k: VarValue(v) for k, v in self.rules_predefined_raw.items()}
        return predefined

    def _pipeline_name(self) -> str | None:
        template = self.pipeline.workflow.name
        if not template:
            return None
        scope = Scope([self.rules_predefined, self.globals, self.user])
        return scope.expand_text(template).strip() or None

    # ---- jobs ----------------------------------------------------------------------------------

    def inherited_globals(self, job: Job) -> Mapping[str, VarValue]:
        """Global (and workflow) variables the job inherits (`inherit:variables`)."""
        allowed = job.inherit.variables
        if allowed not in self._inherited:
            if allowed is True:
                layer: Mapping[str, VarValue] = MappingProxyType(self.globals)
            elif allowed is False:
                layer = _EMPTY
            else:
                layer = {k: v for k, v in self.globals.items() if k in allowed}
            self._inherited[allowed] = layer
            self._inherited_raw[allowed] = {name: var.value for name, var in layer.items()}
        return self._inherited[allowed]

    def job_predefined(self, instance: Instance) -> dict[str, str]:
        """The job-level predefined variables (`CI_JOB_NAME`, `CI_NODE_*`...)."""
        return job_variables(
            job_name=instance.name,
            group_name=instance.group_name,
            stage=instance.job.stage,
            node_index=instance.node_index,
            node_total=instance.node_total,
        )

    def own_variables(self, instance: Instance) -> dict[str, VarValue]:
        """Job YAML variables with the matrix values over them."""
        layer = _yaml_layer(instance.job.variables)
        layer.update((key, VarValue(value)) for key, value in instance.matrix)
        return layer

    def decide(
        self,
        instance: Instance,
        job_level: Mapping[str, str],
        own: Mapping[str, VarValue],
        trace: list[str] | None = None,
    ) -> Decision:
        inherited = self.inherited_globals(instance.job)
        own_raw = {name: var.value for name, var in own.items()}
        scope = Scope(
            [self.rules_predefined, _PlainValues(job_level), inherited, own, self.user],
            [
                self.rules_predefined_raw,
                job_level,
                self._inherited_raw[instance.job.inherit.variables],
                own_raw,
                self.user_raw,
            ],
        )
        return decide_job(
            instance.job,
            self.evaluator,
            scope,
            workflow_rules=self.pipeline.workflow.rules is not None,
            trace=trace,
        )

    def stage_of(self, job: Job, problems: list[Problem]) -> int:
        index = self.stage_index.get(job.stage)
        if index is None:
            problems.append(
                Problem(
                    f"chosen stage {job.stage} does not exist; available stages are "
                    + ", ".join(self.pipeline.stages),
                    job.location,
                    job=job.name,
                    path="stage",
                )
            )
            return len(self.pipeline.stages)
        return index

    # ---- the whole plan ------------------------------------------------------------------------

    def plan(self) -> Plan:
        problems: list[Problem] = []
        workflow = self.workflow()
        problems.extend(workflow.problems)
        entries: list[tuple[Instance, Decision, Mapping[str, str], Mapping[str, VarValue]]] = []
        for instance in self.instances:
            job_level = self.job_predefined(instance)
            own = self.own_variables(instance)
            if workflow.created:
                decision = self.decide(instance, job_level, own)
            else:
                decision = _not_created(instance.job, workflow.reason)
            problems.extend(decision.problems)
            entries.append((instance, decision, job_level, own))
        graph_jobs = [
            GraphJob(
                instance,
                self.stage_of(instance.job, problems),
                decision.included,
                decision.needs,
                decision.needs_path,
            )
            for instance, decision, _, _ in entries
        ]
        graph = resolve_graph(graph_jobs)
        problems.extend(graph.problems)
        if problems:
            raise PlanError(problems)
        jobs = [
            self.planned(
                gj,
                decision,
                job_level,
                own,
                needs=graph.needs.get(gj.name),
                sources=graph.artifact_sources.get(gj.name, ()),
            )
            for gj, (_, decision, job_level, own) in zip(graph_jobs, entries, strict=True)
        ]
        return self.assemble(jobs, workflow, graph.warnings)

    def planned(
        self,
        gj: GraphJob,
        decision: Decision,
        job_level: Mapping[str, str],
        own: Mapping[str, VarValue],
        *,
        needs: tuple[PlannedNeed, ...] | None,
        sources: tuple[str, ...],
    ) -> PlannedJob:
        instance = gj.instance
        inherited = self.inherited_globals(instance.job)
        if own or decision.rule_variables:
            variables: Mapping[str, VarValue] = {
                **inherited,
                **own,
                **_yaml_layer(decision.rule_variables),
            }
        else:
            variables = inherited
        return PlannedJob(
            name=instance.name,
            group_name=instance.group_name,
            stage=instance.job.stage,
            stage_index=gj.stage_index,
            job=instance.job,
            spec=job_spec(instance.job),
            included=decision.included,
            when=decision.when,
            allow_failure=decision.allow_failure,
            needs=needs,
            artifact_sources=sources,
            yaml_variables=variables,
            predefined={**self.predefined, **job_level},
            node_index=instance.node_index,
            node_total=instance.node_total,
            start_in=decision.start_in,
            reason=decision.reason,
        )

    def assemble(
        self, jobs: list[PlannedJob], workflow: WorkflowDecision, warnings: Sequence[str]
    ) -> Plan:
        created, reason = workflow.created, workflow.reason
        if created:
            created, reason = _has_real_jobs(jobs, reason)
        if not created:
            jobs = [_drop(job, reason) for job in jobs]
        used = {job.stage for job in jobs if job.included}
        stages = tuple(stage for stage in self.pipeline.stages if stage in used)
        return Plan(
            context=self.ctx,
            stages=stages,
            jobs=tuple(jobs),
            created=created,
            workflow_reason=reason,
            name=self.name if created else None,
            user_variables=MappingProxyType(self.user),
            warnings=tuple(warnings),
        )


def job_spec(job: Job) -> JobSpec:
    """What running `job` takes from its configuration (see `JobSpec`)."""
    return JobSpec(
        trigger=job.trigger is not None,
        before_script=job.before_script,
        script=job.script,
        after_script=job.after_script,
        image=job.image,
        services=job.services,
        cache=job.cache,
        artifacts=job.artifacts,
        coverage=job.coverage,
        timeout=job.timeout,
        retry=job.retry or Retry(),
        environment=job.environment,
        resource_group=job.resource_group,
        pipeline_needs=tuple(
            PipelineNeed(need.job, need.external.removeprefix("pipeline "))
            for need in job.needs or ()
            if need.external is not None and need.external.startswith("pipeline ") and need.job
        ),
        unsupported=job.unsupported,
    )


def _not_created(job: Job, reason: str) -> Decision:
    return Decision(
        False,
        "never",
        job_allow_failure(job),
        job.needs,
        "needs",
        (),
        None,
        f"pipeline not created: {reason}",
    )


def _has_real_jobs(jobs: Sequence[PlannedJob], reason: str) -> tuple[bool, str]:
    included = [job for job in jobs if job.included]
    if not included:
        return False, "no jobs: rules/only/except left every job out"
    if all(job.stage in EDGE_STAGES for job in included):
        return False, "only .pre/.post jobs are left, and GitLab creates no pipeline for those"
    return True, reason


def _drop(job: PlannedJob, reason: str) -> PlannedJob:
    if not job.included:
        return job
    return replace(
        job,
        included=False,
        when="never",
        artifact_sources=(),
        reason=f"pipeline not created: {reason}",
    )


# ---- public API --------------------------------------------------------------------------------


def build_plan(
    pipeline: Pipeline,
    ctx: PipelineContext,
    *,
    user_variables: Mapping[str, VarValue] = _EMPTY,
    pipeline_id: int = 1,
    facts: RepoFacts | None = None,
) -> Plan:
    """Decide the pipeline GitLab would create for `ctx`: workflow, every job's rules or
    only/except, `when`/`allow_failure` defaults, needs and artifact sources.

    `user_variables` are the pipeline-level variables (variables file, `--var`): visible to
    rules and passed through on the plan. `facts` replaces git for `changes`/`exists` (tests).
    Raises PlanError carrying every problem found.
    """
    return _Planner(pipeline, ctx, user_variables, pipeline_id, facts).plan()


def select_jobs(
    plan: Plan, *, stages: Sequence[str] = (), names: Sequence[str] = (), with_needs: bool = False
) -> Plan:
    """Keep the jobs of `stages` and the jobs named (a concrete name, or a parallel job's
    name for all its instances); with `with_needs` also everything they transitively need
    (`needs` of DAG jobs, the artifact sources of stage-mode jobs).

    Kept jobs still name their original needs and artifact sources, which may now lie
    outside the plan: the executor takes those from an earlier run.
    """
    if not stages and not names:
        return plan
    wanted: dict[str, None] = {}
    for stage in stages:
        wanted.update(dict.fromkeys(_stage_names(plan, stage)))
    for name in names:
        wanted.update(dict.fromkeys(_named(plan, name)))
    if with_needs:
        wanted = _closure(plan, wanted)
    kept = tuple(job for job in plan.jobs if job.name in wanted)
    used = {job.stage for job in kept}
    return replace(plan, jobs=kept, stages=tuple(s for s in plan.stages if s in used))


def _stage_names(plan: Plan, stage: str) -> list[str]:
    if stage not in plan.stages:
        listed = ", ".join(plan.stages) or "none"
        raise UsageError(f"stage {stage!r} has no job in this pipeline (stages: {listed})")
    return [job.name for job in plan.included if job.stage == stage]


def _named(plan: Plan, name: str) -> list[str]:
    found = plan.job(name)
    matches = [found] if found is not None else list(plan.group(name))
    if not matches:
        raise UsageError(f"no job named {name!r}" + _suggest(name, _all_names(plan.jobs)))
    included = [job.name for job in matches if job.included and plan.created]
    if not included:
        raise UsageError(f"job {name!r} is not in this pipeline: {matches[0].reason}")
    return included


def _closure(plan: Plan, wanted: Mapping[str, None]) -> dict[str, None]:
    out = dict(wanted)
    queue = list(wanted)
    while queue:
        job = plan.job(queue.pop())
        if job is None:
            continue
        sources = [n.job for n in job.needs] if job.needs is not None else job.artifact_sources
        for name in sources:
            if name not in out:
                out[name] = None
                queue.append(name)
    return out


def _all_names(jobs: Iterable[PlannedJob]) -> list[str]:
    names: dict[str, None] = {}
    for job in jobs:
        names[job.name] = None
        names[job.group_name] = None
    return list(names)


def _suggest(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    if not close:
        close = [k for k in known if name.lower() in k.lower()][:5]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


# ---- explain -----------------------------------------------------------------------------------


def explain_job(
    pipeline: Pipeline,
    ctx: PipelineContext,
    name: str,
    *,
    user_variables: Mapping[str, VarValue] = _EMPTY,
    facts: RepoFacts | None = None,
) -> list[str]:
    """Why `name` is (not) in the pipeline, step by step: the workflow verdict, every rule
    tried with its clauses and the variable values its expressions saw, the deciding clause,
    then the effective when / allow_failure / needs / variables."""
    planner = _Planner(pipeline, ctx, user_variables, 1, facts)
    instances = [i for i in planner.instances if name in (i.name, i.group_name)]
    if not instances:
        known = [*_all_names_of(planner.instances)]
        raise UsageError(f"no job named {name!r}" + _suggest(name, known))
    lines = [
        f"pipeline for {_describe_context(ctx)}",
        describe_changes_base(ctx),
        "workflow:",
    ]
    trace: list[str] = []
    workflow = planner.workflow(trace)
    lines.extend(f"  {line}" for line in trace)
    verdict = "created" if workflow.created else "NOT created"
    lines.append(f"  => pipeline {verdict}: {workflow.reason}")
    plan, errors = _try_plan(pipeline, ctx, user_variables, facts)
    for instance in instances:
        lines.append("")
        lines.extend(_explain_instance(planner, instance, workflow, plan))
    if errors:
        lines.append("")
        lines.append("the pipeline cannot be created:")
        lines.extend(f"  {problem.render()}" for problem in errors)
    return _redact(lines, user_variables)


def _all_names_of(instances: Iterable[Instance]) -> list[str]:
    names: dict[str, None] = {}
    for instance in instances:
        names[instance.name] = None
        names[instance.group_name] = None
    return list(names)


def _describe_context(ctx: PipelineContext) -> str:
    kind = "tag" if ctx.ref_is_tag else "ref"
    return f"{kind} {ctx.ref!r}, source {ctx.source}, commit {ctx.sha[:8]}"


def _try_plan(
    pipeline: Pipeline, ctx: PipelineContext, user: Mapping[str, VarValue], facts: RepoFacts | None
) -> tuple[Plan | None, list[Problem]]:
    try:
        return build_plan(pipeline, ctx, user_variables=user, facts=facts), []
    except PlanError as exc:
        return None, exc.problems


def _explain_instance(
    planner: _Planner, instance: Instance, workflow: WorkflowDecision, plan: Plan | None
) -> list[str]:
    job = instance.job
    where = f" ({job.location})" if job.location else ""
    lines = [f"job {instance.name!r}, stage {job.stage}{where}"]
    if not workflow.created:
        lines.append("  not evaluated: the pipeline is not created")
        return lines
    trace: list[str] = []
    decision = planner.decide(
        instance, planner.job_predefined(instance), planner.own_variables(instance), trace
    )
    lines.append("  " + _mechanism(job, planner.pipeline.workflow.rules is not None))
    lines.extend(f"  {line}" for line in trace)
    lines.append(f"  => {'included' if decision.included else 'NOT included'}: {decision.reason}")
    planned = plan.job(instance.name) if plan is not None else None
    if planned is not None and planned.included and plan is not None and plan.created:
        lines.extend(f"  {line}" for line in _final_values(planned))
    elif planned is not None and plan is not None and not plan.created:
        lines.append(f"  => {plan.workflow_reason}")
    return lines


def _mechanism(job: Job, workflow_rules: bool) -> str:
    if job.rules is not None:
        return f"rules ({len(job.rules)}), first match wins:"
    if job.only is None and job.except_ is None:
        if workflow_rules:
            return "no rules/only/except; workflow:rules exist, so no default `only`"
        return "no rules/only/except: default `only: [branches, tags]`"
    return "only/except:"


def _final_values(job: PlannedJob) -> list[str]:
    lines = [
        f"when: {job.when}" + (f" (start_in {job.start_in})" if job.start_in else ""),
        f"allow_failure: {_allow_text(job)}",
    ]
    if job.needs is None:
        lines.append("needs: none (stage mode: waits for every earlier stage)")
    else:
        listed = ", ".join(
            n.job
            + ("" if n.artifacts else " (no artifacts)")
            + (" (optional)" if n.optional else "")
            for n in job.needs
        )
        lines.append(f"needs: [{listed}]")
    lines.append(f"artifacts from: [{', '.join(job.artifact_sources)}]")
    lines.append("variables:" if job.yaml_variables else "variables: none")
    lines.extend(
        f"  {k}={v.value}" + (" (raw)" if v.raw else "") for k, v in job.yaml_variables.items()
    )
    return lines


def _allow_text(job: PlannedJob) -> str:
    allow = job.allow_failure
    if allow.exit_codes:
        return f"exit codes {', '.join(map(str, allow.exit_codes))}"
    return str(allow.allowed).lower()


def _redact(lines: list[str], user: Mapping[str, VarValue]) -> list[str]:
    secrets = sorted(
        (v.value for v in user.values() if v.masked and len(v.value) >= 4), key=len, reverse=True
    )
    if not secrets:
        return lines
    out = []
    for line in lines:
        masked = line
        for secret in secrets:
            masked = masked.replace(secret, "[MASKED]")
        out.append(masked)
    return out
