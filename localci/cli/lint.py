"""`localci lint` and `localci config`: the configuration checked, or printed merged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from localci.cli.options import (
    Options,
    context_options,
    echo_err,
    include_options,
    include_settings,
    load,
    plan_of,
)
from localci.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from localci.app import Loaded
    from localci.config.model import Pipeline


@click.command()
@click.option("--strict", is_flag=True, help="Treat schema warnings as errors.")
@include_options
@click.pass_obj
def lint(opts: Options, /, strict: bool, **kwargs: Any) -> None:
    """Validate the configuration: exit 0 with a summary, or 3 with every error."""
    from localci.app import ContextOptions
    from localci.app import load as load_pipeline
    from localci.config.schema import schema_warnings

    options = ContextOptions(**include_settings(kwargs))
    pipeline = load_pipeline(opts.directory, opts.file, options).pipeline
    schema = schema_warnings(opts.directory, pipeline.files, pipeline.interpolated)
    findings = [*pipeline.warnings, *schema]
    for finding in findings:
        echo_err(f"warning: {finding}")
    if strict and findings:
        raise ConfigError(f"{len(findings)} warning(s) with --strict")
    visible_stages = {job.stage for job in pipeline.jobs}
    includes = len(pipeline.files) - 1
    click.echo(
        f"{opts.file} is valid: {len(pipeline.jobs)} jobs in {len(visible_stages)} stages"
        f", {includes} included file{'s' if includes != 1 else ''}"
        + (f", {len(findings)} warning(s)" if findings else "")
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.option(
    "--origins", is_flag=True, help="Show where each job and keyword came from (file, include)."
)
@click.option(
    "--child",
    "child_of",
    metavar="JOB",
    help="The merged configuration of the child pipeline trigger job JOB creates.",
)
@context_options
@click.pass_obj
def config(
    opts: Options, /, as_json: bool, origins: bool, child_of: str | None, **kwargs: Any
) -> None:
    """Print the merged configuration (includes, extends, !reference and default resolved)."""
    loaded = load(opts, kwargs)
    pipeline = loaded.pipeline if child_of is None else _child_pipeline(loaded, child_of)
    if origins:
        _print_origins(pipeline)
    elif as_json:
        import json

        click.echo(json.dumps(pipeline.merged, indent=2))
    else:
        import yaml

        click.echo(
            yaml.safe_dump(dict(pipeline.merged), sort_keys=False, allow_unicode=True, width=100),
            nl=False,
        )


def _child_pipeline(loaded: Loaded, name: str) -> Pipeline:
    from localci.plan.child import plan_child

    plan = plan_of(loaded)
    job = plan.job(name)
    if job is None or not job.spec.trigger:
        raise UsageError(f"--child {name}: not a trigger job of this pipeline")
    child = plan_child(job, plan, external=loaded.external)
    if child is None or child.pipeline is None:
        reason = child.reason if child is not None else "no child pipeline"
        raise UsageError(f"--child {name}: {reason}")
    return child.pipeline


def _print_origins(pipeline: Pipeline) -> None:
    width = max((len(key) for key in pipeline.origins), default=0)
    for key, trail in pipeline.origins.items():
        where, *via = (str(loc) for loc in trail)
        click.echo(f"{key:<{width}}  {where}" + "".join(f"  <- {v}" for v in via))
