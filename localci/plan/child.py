"""Downstream pipelines of trigger jobs (`trigger:`): what a trigger asks for, the child
pipeline's configuration, context and variables, and its plan (GitLab's Ci::Bridge rules).

Shared by `run` (which plans a child when its trigger job runs, after a dynamic child's
generating job) and `list`/`explain`/`graph` (which plan the children they can without running).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from localci.config import load_pipeline_from_source
from localci.config.include_sources import DirectorySource, ExternalSource
from localci.config.model import Pipeline
from localci.errors import ConfigError, LocalCIError, Problem
from localci.plan.context import PipelineContext
from localci.plan.model import Plan, PlannedJob
from localci.plan.variables import VarValue, expand_gitlab, include_rule_variables

# GitLab: "You can nest child pipelines up to two levels deep" (parent -> child -> grandchild).
MAX_CHILD_DEPTH = 2
MAX_DEPTH_MESSAGE = "You reached the maximum depth of child pipelines"
STRATEGIES = ("depend", "mirror")
# The root of a child configuration: GitLab builds it as `include: <trigger:include>`.
_ROOT = ".localci-trigger.yml"
_ARTIFACT_DIR = ".localci-artifact"


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One trigger job's `trigger:` as GitLab reads it."""

    includes: tuple[Mapping[str, Any], ...] = ()
    project: str | None = None
    branch: str | None = None
    strategy: str | None = None
    forward_yaml: bool = True
    forward_pipeline: bool = False
    inputs: Mapping[str, Any] | None = None

    @property
    def is_child(self) -> bool:
        return bool(self.includes)

    @property
    def mirrors_status(self) -> bool:
        """True when the trigger job takes the downstream pipeline's status."""
        return self.strategy in STRATEGIES

    @property
    def dynamic_sources(self) -> tuple[tuple[str, str], ...]:
        """(job, artifact path) of every `artifact:` include: known only after that job ran."""
        return tuple(
            (str(entry["job"]), str(entry["artifact"]))
            for entry in self.includes
            if "artifact" in entry
        )

    def describe(self) -> str:
        if self.project is not None:
            return f"project {self.project}" + (f" ({self.branch})" if self.branch else "")
        parts = []
        for entry in self.includes:
            if "artifact" in entry:
                parts.append(f"artifact {entry['artifact']} of job {entry['job']}")
            else:
                kind = next(iter(k for k in entry if k != "inputs"), "local")
                parts.append(f"{kind} {entry[kind]}")
        return ", ".join(parts)


def trigger_spec(trigger: Mapping[str, Any]) -> TriggerSpec:
    """Normalise a job's `trigger:` mapping (the string form is already `{project: ...}`)."""
    raw = trigger.get("include")
    entries: list[Mapping[str, Any]] = []
    for item in raw if isinstance(raw, list) else ([raw] if raw is not None else []):
        entries.append({"local": item} if isinstance(item, str) else dict(item))
    raw_forward = trigger.get("forward")
    forward: Mapping[str, Any] = raw_forward if isinstance(raw_forward, dict) else {}
    strategy = trigger.get("strategy")
    project = trigger.get("project")
    inputs = trigger.get("inputs")
    return TriggerSpec(
        includes=tuple(entries),
        project=str(project) if project is not None else None,
        branch=str(trigger["branch"]) if trigger.get("branch") is not None else None,
        strategy=str(strategy) if strategy is not None else None,
        forward_yaml=bool(forward.get("yaml_variables", True)),
        forward_pipeline=bool(forward.get("pipeline_variables", False)),
        inputs=dict(inputs) if isinstance(inputs, dict) else None,
    )


def job_trigger(job: PlannedJob) -> TriggerSpec | None:
    trigger = job.job.trigger
    return None if trigger is None else trigger_spec(trigger)


# ---------------------------------------------------------------------------- context, variables


def child_context(parent: PipelineContext) -> PipelineContext:
    """The child runs on the parent's commit and ref, with source `parent_pipeline`."""
    return replace(parent, source="parent_pipeline")


def downstream_variables(
    job: PlannedJob,
    spec: TriggerSpec,
    *,
    dotenv: Mapping[str, VarValue],
    project_variables: Mapping[str, VarValue],
    pipeline_variables: Mapping[str, VarValue],
) -> dict[str, VarValue]:
    """The variables a trigger job passes down (Ci::Bridge#downstream_variables).

    Its YAML variables (own + inherited global ones) unless `forward:yaml_variables: false`,
    then the parent's pipeline variables (`--var`) with `forward:pipeline_variables: true`;
    later ones win. Values are expanded in the trigger job's scope, so `$CI_PIPELINE_ID`
    becomes the parent's id.
    """
    scope: dict[str, VarValue] = {k: VarValue(v) for k, v in job.predefined.items()}
    scope.update(job.yaml_variables)
    scope.update(dotenv)
    scope.update(project_variables)
    scope.update(pipeline_variables)
    expanded = expand_gitlab(scope)
    out: dict[str, VarValue] = {}
    if spec.forward_yaml:
        out.update({name: expanded[name] for name in job.yaml_variables})
    if spec.forward_pipeline:
        out.update(pipeline_variables)
    return out


# ---------------------------------------------------------------------------- configuration


class _OverlaySource:
    """The project's files plus the generated root file and dynamic artifacts."""

    def __init__(self, project_dir: Path, extra: Mapping[str, str]) -> None:
        self._base = DirectorySource(project_dir)
        self._extra = dict(extra)

    def read(self, path: str) -> str | None:
        if path in self._extra:
            return self._extra[path]
        return self._base.read(path)

    def list_files(self) -> Sequence[str]:
        return self._base.list_files()


def artifact_include_path(job: str, artifact: str) -> str:
    """Where the generated configuration of `job` appears among the child's files."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in job)
    return f"{_ARTIFACT_DIR}/{safe}/{artifact.lstrip('/')}"


def load_child_pipeline(
    project_dir: Path,
    spec: TriggerSpec,
    ctx: PipelineContext,
    *,
    user_variables: Mapping[str, VarValue],
    artifacts: Mapping[tuple[str, str], str] | None = None,
    external: ExternalSource | None = None,
    changed: Callable[[Sequence[str], str | None], bool] | None = None,
) -> Pipeline:
    """Load the child configuration `include: <trigger:include>` for context `ctx`.

    `artifacts` holds the text of each `artifact:` include by (job, path); a missing one is
    a ConfigError (the generating job did not produce it).
    """
    extra: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    for entry in spec.includes:
        item = dict(entry)
        if "artifact" in item:
            key = (str(item.pop("job", "")), str(item.pop("artifact")))
            text = (artifacts or {}).get(key)
            if text is None:
                raise ConfigError(
                    Problem(
                        f"artifact {key[1]!r} of job {key[0]!r} is not available",
                        hint="the job must run before the trigger job and upload that file "
                        "as an artifact (`needs:` it from the trigger job)",
                    )
                )
            path = artifact_include_path(*key)
            extra[path] = text
            item["local"] = path
        if spec.inputs and "inputs" not in item:
            item["inputs"] = dict(spec.inputs)
        entries.append(item)
    import json

    # JSON is YAML; `default=str` keeps YAML dates and the like as the text they were.
    extra[_ROOT] = json.dumps({"include": entries}, default=str)
    variables = {
        **include_rule_variables(ctx),
        **{name: var.value for name, var in user_variables.items()},
    }
    source = _OverlaySource(project_dir, extra)
    return load_pipeline_from_source(
        source, _ROOT, variables=variables, changed=changed, external=external
    )


# ---------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """A child pipeline planned without running anything (for list/explain/graph), or why not."""

    spec: TriggerSpec
    plan: Plan | None = None
    pipeline: Pipeline | None = None
    reason: str = ""


def plan_child(
    job: PlannedJob,
    parent: Plan,
    *,
    external: ExternalSource | None = None,
    depth: int = 0,
) -> ChildPlan | None:
    """The static plan of `job`'s child pipeline (None if `job` is not a trigger job)."""
    from localci.plan.planner import build_plan

    spec = job_trigger(job)
    if spec is None:
        return None
    if not spec.is_child:
        return ChildPlan(spec, reason=f"downstream {spec.describe()}: not planned locally")
    if depth >= MAX_CHILD_DEPTH:
        return ChildPlan(spec, reason=MAX_DEPTH_MESSAGE)
    if spec.dynamic_sources:
        jobs = ", ".join(sorted({j for j, _ in spec.dynamic_sources}))
        return ChildPlan(
            spec, reason=f"a dynamic child pipeline, generated by {jobs} when the pipeline runs"
        )
    ctx = child_context(parent.context)
    user = {
        **parent.user_variables,
        **downstream_variables(
            job, spec, dotenv={}, project_variables=parent.user_variables, pipeline_variables={}
        ),
    }
    try:
        pipeline = load_child_pipeline(
            ctx.project_dir, spec, ctx, user_variables=user, external=external
        )
        plan = build_plan(pipeline, ctx, user_variables=user, pipeline_id=2)
    except LocalCIError as exc:
        return ChildPlan(spec, reason=f"the child pipeline could not be created: {exc.render()}")
    if not plan.created:
        return ChildPlan(spec, plan, pipeline, f"no child pipeline: {plan.workflow_reason}")
    return ChildPlan(spec, plan, pipeline)
