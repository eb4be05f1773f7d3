"""`localci list`, `explain` and `graph`: the planned pipeline shown, nothing run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from localci.cli.completion import complete_pipeline_jobs
from localci.cli.options import (
    Options,
    context_options,
    gc_paused,
    load,
    make_console,
    plan_of,
)

if TYPE_CHECKING:
    from localci.app import Loaded
    from localci.plan.model import Plan


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also show jobs that are not in the pipeline, with the reason.",
)
@context_options
@click.pass_obj
def list_jobs(opts: Options, /, as_json: bool, show_all: bool, **kwargs: Any) -> None:
    """The jobs of the pipeline for this branch (or --branch/--tag/--source), by stage."""
    with gc_paused():  # from the imports on: most of localci is imported here
        from localci.report.listing import list_json, print_list

        loaded = load(opts, kwargs)
        plan = plan_of(loaded)
        if as_json:
            from localci.report.json_text import json_text

            click.echo(json_text(list_json(plan, external=loaded.external)))
        else:
            print_list(plan, show_all=show_all, external=loaded.external)


@click.command()
@click.argument("job", shell_complete=complete_pipeline_jobs)
@context_options
@click.pass_obj
def explain(opts: Options, /, job: str, **kwargs: Any) -> None:
    """Why JOB is (or is not) in the pipeline: every rule tried, with the values it saw."""
    from localci.plan import explain_job

    loaded = load(opts, kwargs)
    for line in explain_job(
        loaded.pipeline, loaded.context, job, user_variables=loaded.user_variables
    ):
        click.echo(line)
    _explain_child(loaded, job)


def _explain_child(loaded: Loaded, name: str) -> None:
    """For a trigger job: the downstream pipeline it creates and the jobs planned in it."""
    if not any(j.name == name and j.trigger is not None for j in loaded.pipeline.jobs):
        return
    from localci.report.listing import child_lines

    for line in child_lines(plan_of(loaded), loaded.external, only=name):
        click.echo(f"downstream: {line}")


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot"]),
    default="text",
    show_default=True,
)
@click.option(
    "--stage-edges", is_flag=True, help="mermaid/dot: also draw stage order for jobs without needs."
)
@context_options
@click.pass_obj
def graph(opts: Options, /, fmt: str, stage_edges: bool, **kwargs: Any) -> None:
    """The pipeline's stages, jobs and needs: a table, or Mermaid / Graphviz DOT source."""
    from localci.report.graph import render_graph

    loaded = load(opts, kwargs)
    plan = plan_of(loaded)
    render_graph(
        plan,
        fmt,
        make_console(None),
        stage_edges=stage_edges,
        children=_child_plans(loaded, plan) if fmt != "text" else None,
    )
    if fmt == "text" and plan.created:
        from localci.report.listing import child_lines

        for line in child_lines(plan, loaded.external):
            click.echo(line)


def _child_plans(loaded: Loaded, plan: Plan) -> dict[str, Plan]:
    """The child pipelines of the plan's trigger jobs that can be planned without running."""
    from localci.plan.child import plan_child

    children = {}
    for job in plan.ordered():
        child = plan_child(job, plan, external=loaded.external) if job.spec.trigger else None
        if child is not None and child.plan is not None and child.plan.created:
            children[job.name] = child.plan
    return children
