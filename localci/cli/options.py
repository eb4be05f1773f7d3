"""What the commands share: the global options, the options that choose the pipeline to
simulate, and loading and planning it (with the garbage collector paused)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from localci.cli.completion import complete_branches

if TYPE_CHECKING:
    from rich.console import Console

    from localci.app import ContextOptions, Loaded
    from localci.plan.model import Plan

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Options:
    """Global options every command shares."""

    directory: Path
    file: str


def echo_err(text: str) -> None:
    click.echo(text, err=True)


SOURCES = (
    "push",
    "web",
    "api",
    "schedule",
    "trigger",
    "pipeline",
    "parent_pipeline",
    "merge_request_event",
    "external",
    "external_pull_request_event",
    "chat",
    "webide",
    "ondemand_dast_scan",
    "security_orchestration_policy",
)


def include_options(func: F) -> F:
    """How includes from outside the repository are read; shared by lint and context_options."""
    options = [
        click.option(
            "--offline",
            is_flag=True,
            help="Never use the network: includes only from localci's cache "
            "(and pip only from its cache in `run`).",
        ),
        click.option(
            "--refresh-includes",
            is_flag=True,
            help="Fetch remote, template, project and component includes again.",
        ),
        click.option(
            "--include-map",
            multiple=True,
            metavar="PROJECT=DIR",
            help="Read includes of PROJECT (group/project, host/group/project or a host) "
            "from the local directory DIR; repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def context_options(func: F) -> F:
    """The options that choose what pipeline to simulate; shared by list/explain/run/graph."""
    options = [
        click.option(
            "--branch",
            shell_complete=complete_branches,
            help="Simulate a push to this branch (default: the current one).",
        ),
        click.option("--tag", help="Simulate a tag pipeline for this tag."),
        click.option(
            "--source",
            type=click.Choice(SOURCES),
            default="push",
            show_default=True,
            help="The pipeline source (CI_PIPELINE_SOURCE).",
        ),
        click.option(
            "--var",
            "variables",
            multiple=True,
            metavar="KEY=VALUE",
            help="A pipeline variable (highest precedence); repeatable.",
        ),
        click.option(
            "--masked-var",
            "masked_variables",
            multiple=True,
            metavar="KEY=VALUE",
            help="Like --var, and masked in every log and report (GitLab's masking rules).",
        ),
        click.option(
            "--variables-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="YAML or dotenv file of variables (default: "
            ".localci/variables.yml or .env if present).",
        ),
        click.option("--default-branch", help="Override CI_DEFAULT_BRANCH."),
        click.option("--mr-target", help="Target branch for --source merge_request_event."),
        click.option("--changes-since", metavar="REF", help="Compare rules:changes against REF."),
        click.option(
            "--protected",
            multiple=True,
            metavar="PATTERN",
            help="Refs to treat as protected besides the default branch.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return include_options(func)


def include_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The include options taken out of `kwargs`, and how fetching an include is reported."""
    from localci.config.includes import IncludeOptions

    includes = IncludeOptions(
        offline=kwargs.pop("offline"),
        refresh=kwargs.pop("refresh_includes"),
        mapping=tuple(kwargs.pop("include_map")),
    )
    return {"includes": includes, "notify": lambda message: echo_err(f"localci: {message}")}


def _context(kwargs: dict[str, Any]) -> ContextOptions:
    from localci.app import ContextOptions

    return ContextOptions(
        branch=kwargs.pop("branch"),
        tag=kwargs.pop("tag"),
        source=kwargs.pop("source"),
        variables=kwargs.pop("variables"),
        masked_variables=kwargs.pop("masked_variables"),
        variables_file=kwargs.pop("variables_file"),
        default_branch=kwargs.pop("default_branch"),
        mr_target=kwargs.pop("mr_target"),
        changes_since=kwargs.pop("changes_since"),
        protected=kwargs.pop("protected"),
        **include_settings(kwargs),
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cycle collection while loading, planning and printing: they make (almost) no cyclic
    garbage, and collections scanning the growing heap were a third of a 5,000-job `list`."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(opts: Options, /, kwargs: dict[str, Any]) -> Loaded:
    """The configuration for the context options in `kwargs`; its warnings go to stderr."""
    from localci.app import load as load_pipeline

    with gc_paused():
        loaded = load_pipeline(opts.directory, opts.file, _context(kwargs))
    for warning in loaded.pipeline.warnings:
        echo_err(f"warning: {warning}")
    return loaded


def plan_of(loaded: Loaded) -> Plan:
    from localci.plan import build_plan

    with gc_paused():
        return build_plan(loaded.pipeline, loaded.context, user_variables=loaded.user_variables)


def make_console(color: bool | None) -> Console:
    """rich's console; `color` None lets rich decide from the terminal and NO_COLOR."""
    from rich.console import Console

    if color is None:
        return Console(highlight=False)
    return Console(highlight=False, force_terminal=color or None, no_color=not color)
