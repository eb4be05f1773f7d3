"""Command line: the only module that knows click; maps errors to exit codes in one place."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import yaml

from localci import __version__
from localci.errors import ConfigError, LocalCIError, UsageError

if TYPE_CHECKING:
    from localci.app import ContextOptions, Loaded
    from localci.plan.model import Plan

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Options:
    """Global options every command shares."""

    directory: Path
    file: str


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="localci")
@click.option("-C", "--directory", type=click.Path(file_okay=False, path_type=Path),
              default=".", help="Run as if localci was started in DIR.")
@click.option("--file", "config_file", default=".gitlab-ci.yml", show_default=True,
              help="The pipeline file, relative to the project directory.")
@click.pass_context
def cli(ctx: click.Context, directory: Path, config_file: str) -> None:
    """Run a repository's GitLab CI pipeline locally: offline, no Docker, no runner."""
    if not directory.is_dir():
        raise UsageError(f"-C {directory}: no such directory")
    ctx.obj = Options(directory=directory.resolve(), file=config_file)


SOURCES = ("push", "web", "api", "schedule", "trigger", "pipeline", "parent_pipeline",
           "merge_request_event", "external", "external_pull_request_event", "chat",
           "webide", "ondemand_dast_scan", "security_orchestration_policy")


def context_options(func: F) -> F:
    """The options that choose what pipeline to simulate; shared by list/explain/run/graph."""
    options = [
        click.option("--branch", help="Simulate a push to this branch (default: the current one)."),
        click.option("--tag", help="Simulate a tag pipeline for this tag."),
        click.option("--source", type=click.Choice(SOURCES), default="push", show_default=True,
                     help="The pipeline source (CI_PIPELINE_SOURCE)."),
        click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
                     help="A pipeline variable (highest precedence); repeatable."),
        click.option("--variables-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="YAML or dotenv file of variables (default: "
                          ".localci/variables.yml or .env if present)."),
        click.option("--default-branch", help="Override CI_DEFAULT_BRANCH."),
        click.option("--mr-target", help="Target branch for --source merge_request_event."),
        click.option("--changes-since", metavar="REF",
                     help="Compare rules:changes against REF."),
        click.option("--protected", multiple=True, metavar="PATTERN",
                     help="Refs to treat as protected besides the default branch."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _context(kwargs: dict[str, Any]) -> ContextOptions:
    from localci.app import ContextOptions

    return ContextOptions(
        branch=kwargs.pop("branch"), tag=kwargs.pop("tag"), source=kwargs.pop("source"),
        variables=kwargs.pop("variables"), variables_file=kwargs.pop("variables_file"),
        default_branch=kwargs.pop("default_branch"), mr_target=kwargs.pop("mr_target"),
        changes_since=kwargs.pop("changes_since"), protected=kwargs.pop("protected"))


def _load(opts: Options, kwargs: dict[str, Any]) -> Loaded:
    from localci.app import load

    loaded = load(opts.directory, opts.file, _context(kwargs))
    for warning in loaded.pipeline.warnings:
        _echo_err(f"warning: {warning}")
    return loaded


def _plan(loaded: Loaded) -> Plan:
    from localci.plan import build_plan

    return build_plan(loaded.pipeline, loaded.context, user_variables=loaded.user_variables)


@cli.command()
@click.option("--strict", is_flag=True, help="Treat schema warnings as errors.")
@click.pass_obj
def lint(opts: Options, strict: bool) -> None:
    """Validate the configuration: exit 0 with a summary, or 3 with every error."""
    from localci.app import ContextOptions, load
    from localci.config.schema import schema_warnings

    pipeline = load(opts.directory, opts.file, ContextOptions()).pipeline
    findings = [*pipeline.warnings, *schema_warnings(opts.directory, pipeline.files)]
    for finding in findings:
        _echo_err(f"warning: {finding}")
    if strict and findings:
        raise ConfigError(f"{len(findings)} warning(s) with --strict")
    visible_stages = {job.stage for job in pipeline.jobs}
    includes = len(pipeline.files) - 1
    click.echo(f"{opts.file} is valid: {len(pipeline.jobs)} jobs in {len(visible_stages)} stages"
               f", {includes} included file{'s' if includes != 1 else ''}"
               + (f", {len(findings)} warning(s)" if findings else ""))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@context_options
@click.pass_obj
def config(opts: Options, as_json: bool, **kwargs: Any) -> None:
    """Print the merged configuration (includes, extends, !reference and default resolved)."""
    pipeline = _load(opts, kwargs).pipeline
    if as_json:
        click.echo(json.dumps(pipeline.merged, indent=2))
    else:
        click.echo(yaml.safe_dump(dict(pipeline.merged), sort_keys=False, allow_unicode=True,
                                  width=100), nl=False)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
@click.option("--all", "show_all", is_flag=True,
              help="Also show jobs that are not in the pipeline, with the reason.")
@context_options
@click.pass_obj
def list_jobs(opts: Options, as_json: bool, show_all: bool, **kwargs: Any) -> None:
    """The jobs of the pipeline for this branch (or --branch/--tag/--source), by stage."""
    from localci.report.listing import list_json, print_list

    plan = _plan(_load(opts, kwargs))
    if as_json:
        click.echo(json.dumps(list_json(plan), indent=2))
    else:
        print_list(plan, show_all=show_all)


@cli.command()
@click.argument("job")
@context_options
@click.pass_obj
def explain(opts: Options, job: str, **kwargs: Any) -> None:
    """Why JOB is (or is not) in the pipeline: every rule tried, with the values it saw."""
    from localci.plan import explain_job

    loaded = _load(opts, kwargs)
    for line in explain_job(loaded.pipeline, loaded.context, job,
                            user_variables=loaded.user_variables):
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every outcome into an exit code."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="localci", standalone_mode=False)
    except click.exceptions.Abort:
        _echo_err("interrupted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except LocalCIError as exc:
        _echo_err(f"localci: {exc.render()}")
        return exc.exit_code
    except KeyboardInterrupt:
        _echo_err("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        return _internal_error()
    return 0


def _internal_error() -> int:
    text = f"localci {__version__}, Python {sys.version.split()[0]}\n{traceback.format_exc()}"
    log = Path(tempfile.gettempdir()) / f"localci-crash-{os.getpid()}.log"
    try:
        log.write_text(text)
        where = f"details in {log}"
    except OSError:
        where = "and the crash log could not be written:\n" + text
    _echo_err(f"localci: internal error (a bug in localci, not in your pipeline); {where}")
    _echo_err("please report it with that file")
    return 4
