"""Test helpers for the planner: pipelines from YAML text, contexts, facts, and plans."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from localci.config import load_pipeline_from_text
from localci.config.model import DEFAULT_STAGES, Job, Pipeline, Workflow
from localci.plan import Plan, StaticFacts, build_plan, explain_job
from localci.plan.context import MergeRequest, PipelineContext
from localci.plan.variables import VarValue

SHA = "1234567890abcdef1234567890abcdef12345678"


def pipeline(text: str, **files: str) -> Pipeline:
    """A resolved pipeline from YAML text (dedented); `files` are extra files for includes."""
    return load_pipeline_from_text(
        textwrap.dedent(text), {k: textwrap.dedent(v) for k, v in files.items()}
    )


def context(
    ref: str = "main",
    *,
    tag: bool = False,
    source: str = "push",
    mr_target: str | None = None,
    **fields: Any,
) -> PipelineContext:
    """A synthetic context: a branch push on `ref` unless told otherwise."""
    merge_request = None
    if source == "merge_request_event":
        merge_request = MergeRequest(source_branch=ref, target_branch=mr_target or "main")
    values: dict[str, Any] = {
        "project_dir": Path("/nonexistent/project"),
        "ref": ref,
        "ref_is_tag": tag,
        "sha": SHA,
        "source": source,
        "default_branch": "main",
        "project_path": "group/project",
        "merge_request": merge_request,
        "commit_message": "a commit\n",
        "commit_title": "a commit",
    }
    values.update(fields)
    return PipelineContext(**values)


def facts(
    changed: Iterable[str] | None = None,
    files: Iterable[str] = (),
    compared: Mapping[str, Iterable[str] | None] | None = None,
) -> StaticFacts:
    """Repository facts: `changed=None` means "no push information" (changes always true)."""
    return StaticFacts(
        changed=None if changed is None else frozenset(changed),
        file_list=tuple(files),
        compared={k: None if v is None else frozenset(v) for k, v in (compared or {}).items()},
    )


def user_vars(**values: str) -> dict[str, VarValue]:
    return {name: VarValue(value) for name, value in values.items()}


def plan(
    text: str | Pipeline,
    ref: str = "main",
    *,
    changed: Iterable[str] | None = None,
    files: Iterable[str] = (),
    compared: Mapping[str, Iterable[str] | None] | None = None,
    user: Mapping[str, str] | None = None,
    **ctx: Any,
) -> Plan:
    """Plan YAML text (or a Pipeline) for a context built from `ref` and `ctx`."""
    config = pipeline(text) if isinstance(text, str) else text
    return build_plan(
        config,
        context(ref, **ctx),
        user_variables=user_vars(**(user or {})),
        facts=facts(changed, files, compared),
    )


def explain(
    text: str,
    name: str,
    ref: str = "main",
    *,
    changed: Iterable[str] | None = None,
    files: Iterable[str] = (),
    user: Mapping[str, str] | None = None,
    **ctx: Any,
) -> list[str]:
    return explain_job(
        pipeline(text),
        context(ref, **ctx),
        name,
        user_variables=user_vars(**(user or {})),
        facts=facts(changed, files),
    )


def included(result: Plan) -> list[str]:
    """Names of the jobs in the pipeline, definition order."""
    return [job.name for job in result.included]


def make_job(name: str, stage: str = "test", **fields: Any) -> Job:
    """A config Job built directly (for shapes YAML makes tedious, like 1,000 jobs)."""
    return Job(name=name, stage=stage, script=fields.pop("script", ("true",)), **fields)


def make_pipeline(
    *jobs: Job, stages: Iterable[str] = DEFAULT_STAGES, workflow: Workflow | None = None
) -> Pipeline:
    return Pipeline(
        stages=tuple(stages),
        variables=(),
        workflow=workflow or Workflow(),
        jobs=tuple(jobs),
        files=(".gitlab-ci.yml",),
        merged={},
    )
