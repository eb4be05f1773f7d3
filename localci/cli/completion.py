"""Shell completion (bash, zsh, fish through click): the job and stage names of the pipeline in
the directory being completed in, and local branches for `--branch`.

Completion runs on every Tab: it plans exactly as `localci list` does (never more), reads
includes only from localci's cache (never the network), and any failure completes nothing
rather than printing an error into the user's prompt."""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from localci.plan.model import Plan

__all__ = ["complete_branches", "complete_jobs", "complete_pipeline_jobs", "complete_stages"]


def complete_jobs(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Names of the jobs in this branch's pipeline (those `localci run` would run)."""
    plan = _plan(ctx)
    names = [job.name for job in plan.included] if plan else []
    return _items(names, incomplete, already=_already(ctx, param))


def complete_pipeline_jobs(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Names of every job of the configuration, also those this pipeline leaves out (for
    `explain`, which says why)."""
    plan = _plan(ctx)
    return _items([job.name for job in plan.jobs] if plan else [], incomplete)


def complete_stages(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The pipeline's stages that have jobs in this branch's pipeline."""
    plan = _plan(ctx)
    used = {job.stage for job in plan.included} if plan else set()
    stages = [stage for stage in plan.stages if stage in used] if plan else []
    return _items(stages, incomplete, already=_already(ctx, param))


def complete_branches(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The repository's local branches."""
    from localci.errors import LocalCIError
    from localci.git import run_git

    try:
        proc = run_git(
            _directory(ctx), "for-each-ref", "--format=%(refname:short)", "refs/heads/", timeout=5
        )
    except LocalCIError:
        return []
    branches = os.fsdecode(proc.stdout).split() if proc.returncode == 0 else []
    return _items(branches, incomplete)


def _directory(ctx: click.Context) -> Path:
    directory = ctx.find_root().params.get("directory")
    return Path(directory) if directory else Path()


def _plan(ctx: click.Context) -> Plan | None:
    """The plan `localci list` would print for the options typed so far; None if there is
    none (no pipeline file, an invalid one, not a git repository...)."""
    from localci.app import ContextOptions, load
    from localci.config.includes import IncludeOptions
    from localci.errors import LocalCIError
    from localci.plan import build_plan

    root = ctx.find_root().params
    params = ctx.params
    options = ContextOptions(
        branch=params.get("branch"),
        tag=params.get("tag"),
        source=params.get("source") or "push",
        includes=IncludeOptions(offline=True),
    )
    try:
        loaded = load(_directory(ctx), root.get("config_file") or ".gitlab-ci.yml", options)
        return build_plan(loaded.pipeline, loaded.context, user_variables=loaded.user_variables)
    except (LocalCIError, OSError, ValueError):
        return None


def _already(ctx: click.Context, param: click.Parameter) -> set[str]:
    """The values already given for a repeatable argument or option (offered only once)."""
    value = ctx.params.get(param.name or "")
    return set(value) if isinstance(value, tuple | list) else set()


def _items(
    names: list[str], incomplete: str, already: AbstractSet[str] = frozenset()
) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem  # only when completing: not on each start

    seen = set(already)
    items = []
    for name in names:
        if name.startswith(incomplete) and name not in seen:
            seen.add(name)
            items.append(CompletionItem(name))
    return items
