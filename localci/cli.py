"""Command line: the only module that knows click; maps errors to exit codes in one place."""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import yaml

from localci import __version__, interrupts
from localci.completion import (
    complete_branches,
    complete_jobs,
    complete_pipeline_jobs,
    complete_stages,
)
from localci.errors import ConfigError, GitError, LocalCIError, UsageError
from localci.help_examples import add_examples

if TYPE_CHECKING:
    from rich.console import Console

    from localci.app import ContextOptions, Loaded
    from localci.config.model import Pipeline
    from localci.execute.pipeline import RunOptions
    from localci.execute.placement import Placement
    from localci.plan.model import Plan, PlannedJob
    from localci.results import RunResult

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
@click.option(
    "-C",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Run as if localci was started in DIR.",
)
@click.option(
    "--file",
    "config_file",
    default=".gitlab-ci.yml",
    show_default=True,
    help="The pipeline file, relative to the project directory.",
)
@click.pass_context
def cli(ctx: click.Context, directory: Path, config_file: str) -> None:
    """Run a repository's GitLab CI pipeline locally: offline, no Docker, no runner."""
    if not directory.is_dir():
        raise UsageError(f"-C {directory}: no such directory")
    ctx.obj = Options(directory=directory.resolve(), file=config_file)


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


def _include_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    from localci.config.includes import IncludeOptions

    includes = IncludeOptions(
        offline=kwargs.pop("offline"),
        refresh=kwargs.pop("refresh_includes"),
        mapping=tuple(kwargs.pop("include_map")),
    )
    return {"includes": includes, "notify": lambda message: _echo_err(f"localci: {message}")}


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
        **_include_options(kwargs),
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cycle collection while loading, planning and printing: they make (almost) no cyclic
    garbage, and collections scanning the growing heap were a third of a 5,000-job `list`."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(opts: Options, /, kwargs: dict[str, Any]) -> Loaded:
    from localci.app import load

    with _gc_paused():
        loaded = load(opts.directory, opts.file, _context(kwargs))
    for warning in loaded.pipeline.warnings:
        _echo_err(f"warning: {warning}")
    return loaded


def _plan(loaded: Loaded) -> Plan:
    from localci.plan import build_plan

    with _gc_paused():
        return build_plan(loaded.pipeline, loaded.context, user_variables=loaded.user_variables)


@cli.command()
@click.option("--strict", is_flag=True, help="Treat schema warnings as errors.")
@include_options
@click.pass_obj
def lint(opts: Options, /, strict: bool, **kwargs: Any) -> None:
    """Validate the configuration: exit 0 with a summary, or 3 with every error."""
    from localci.app import ContextOptions, load
    from localci.config.schema import schema_warnings

    pipeline = load(opts.directory, opts.file, ContextOptions(**_include_options(kwargs))).pipeline
    schema = schema_warnings(opts.directory, pipeline.files, pipeline.interpolated)
    findings = [*pipeline.warnings, *schema]
    for finding in findings:
        _echo_err(f"warning: {finding}")
    if strict and findings:
        raise ConfigError(f"{len(findings)} warning(s) with --strict")
    visible_stages = {job.stage for job in pipeline.jobs}
    includes = len(pipeline.files) - 1
    click.echo(
        f"{opts.file} is valid: {len(pipeline.jobs)} jobs in {len(visible_stages)} stages"
        f", {includes} included file{'s' if includes != 1 else ''}"
        + (f", {len(findings)} warning(s)" if findings else "")
    )


@cli.command()
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
    loaded = _load(opts, kwargs)
    pipeline = loaded.pipeline if child_of is None else _child_pipeline(loaded, child_of)
    if origins:
        _print_origins(pipeline)
    elif as_json:
        click.echo(json.dumps(pipeline.merged, indent=2))
    else:
        click.echo(
            yaml.safe_dump(dict(pipeline.merged), sort_keys=False, allow_unicode=True, width=100),
            nl=False,
        )


def _child_pipeline(loaded: Loaded, name: str) -> Pipeline:
    from localci.plan.child import plan_child

    plan = _plan(loaded)
    job = plan.job(name)
    if job is None or job.job.trigger is None:
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


@cli.command("list")
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
    with _gc_paused():  # from the imports on: most of localci is imported here
        from localci.report.listing import json_text, list_json, print_list

        loaded = _load(opts, kwargs)
        plan = _plan(loaded)
        if as_json:
            click.echo(json_text(list_json(plan, external=loaded.external)))
        else:
            print_list(plan, show_all=show_all, external=loaded.external)


@cli.command()
@click.argument("job", shell_complete=complete_pipeline_jobs)
@context_options
@click.pass_obj
def explain(opts: Options, /, job: str, **kwargs: Any) -> None:
    """Why JOB is (or is not) in the pipeline: every rule tried, with the values it saw."""
    from localci.plan import explain_job

    loaded = _load(opts, kwargs)
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

    for line in child_lines(_plan(loaded), loaded.external, only=name):
        click.echo(f"downstream: {line}")


@cli.command("run")
@click.argument("job_names", nargs=-1, metavar="[JOB]...", shell_complete=complete_jobs)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    shell_complete=complete_stages,
    help="Only the jobs of this stage; repeatable.",
)
@click.option(
    "--needs", "with_needs", is_flag=True, help="With JOB/--stage: also run what they need."
)
@click.option("--manual", multiple=True, metavar="JOB", help="Run this manual job; repeatable.")
@click.option(
    "-j",
    "--jobs",
    "max_parallel",
    type=click.IntRange(1, 64),
    default=os.cpu_count() or 2,
    show_default="CPU count",
    help="Jobs run at once.",
)
@click.option("--python", help="Interpreter for every job's venv (version like 3.11, or a path).")
@click.option(
    "--timeout",
    "timeout",
    metavar="DURATION",
    help="Default job timeout (default 1h; a job's `timeout:` wins).",
)
@click.option("--dry-run", is_flag=True, help="Show what would run; run nothing.")
@click.option(
    "--full-history",
    is_flag=True,
    help="Give jobs the whole git history (default: GIT_DEPTH, else 20 like GitLab).",
)
@click.option(
    "--executor",
    type=click.Choice(["auto", "container", "venv", "host"]),
    help="Where jobs with an image run (default: .localci/config.yml, else auto).",
)
@click.option(
    "--allow-host", is_flag=True, default=None, help="As root, run non-emulated images here."
)
@click.option(
    "--install-python",
    is_flag=True,
    help="First install (with uv) the Python versions the jobs' images name and this "
    "machine lacks.",
)
@click.option(
    "--json-report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON report of the run to this file.",
)
@click.option("-v", "--verbose", is_flag=True, help="Stream every line of every job.")
@click.option("-q", "--quiet", is_flag=True, help="Only the summary.")
@click.option("--no-tty", is_flag=True, help="Plain line output even on a terminal.")
@click.option("--color/--no-color", default=None, help="Force colours on or off.")
@context_options
@click.pass_obj
def run_command(
    opts: Options,
    /,
    job_names: tuple[str, ...],
    stages: tuple[str, ...],
    with_needs: bool,
    manual: tuple[str, ...],
    max_parallel: int,
    python: str | None,
    timeout: str | None,
    dry_run: bool,
    executor: str | None,
    allow_host: bool | None,
    full_history: bool,
    install_python: bool,
    json_report: Path | None,
    verbose: bool,
    quiet: bool,
    no_tty: bool,
    color: bool | None,
    **kwargs: Any,
) -> None:
    """Run the pipeline for this branch (or --branch/--tag), or some of its jobs."""
    from localci.execute.durations import parse_duration
    from localci.execute.pipeline import RunOptions
    from localci.plan import select_jobs

    offline = bool(kwargs["offline"])
    downstream = _downstream_options(kwargs)
    loaded = _load(opts, kwargs)
    plan = _plan(loaded)
    console = _console(color)
    if not plan.created:
        console.print(
            f"No pipeline is created for {plan.context.ref}: {plan.workflow_reason}", markup=False
        )
        return
    selection = select_jobs(plan, stages=stages, names=job_names, with_needs=with_needs)
    jobs = list(selection.ordered())
    if not dry_run and not plan.context.is_git_repo:
        # Workspaces are snapshots of a git working tree (tracked + untracked, not ignored).
        raise GitError(
            f"`localci run` needs a git repository: jobs run in a snapshot of its "
            f"working tree, and {plan.context.project_dir} is not one; run "
            "`git init` there (nothing needs to be committed) and try again"
        )
    placement = _placement(plan, jobs, executor, allow_host, console, refuse=not dry_run)
    if dry_run:
        from localci.report.listing import print_list

        print_list(
            selection,
            show_all=False,
            console=console,
            external=loaded.external,
            in_containers=placement.in_containers(),
        )
        _print_job_interpreters(console, jobs, python, placement.in_containers())
        return
    if install_python:
        _install_pythons(console, jobs, python)
    seconds = parse_duration(timeout) if timeout else None
    if timeout and seconds is None:
        raise UsageError(f"--timeout {timeout!r}: not a duration (e.g. 30m, 1h 30m, 600)")
    options = RunOptions(
        max_parallel=max_parallel,
        manual=(*manual, *job_names),
        python=python,
        timeout_s=seconds,
        color=console.is_terminal,
        offline=offline,
        cancel_on_failure=loaded.pipeline.workflow.on_job_failure == "all",
        executor=placement.mode,
        engine=placement.engine,
        full_history=full_history,
        **downstream,
    )
    result = _execute(
        selection,
        jobs,
        options,
        console,
        verbosity=0 if quiet else 2 if verbose else 1,
        plain=no_tty,
    )
    if json_report is not None:
        _write_report(json_report, result)
    if not result.passed:
        raise SystemExit(1)


def _placement(
    plan: Plan,
    jobs: list[PlannedJob],
    executor: str | None,
    allow_host: bool | None,
    console: Console,
    *,
    refuse: bool,
) -> Placement:
    """Where each job runs, printed as the run header; a root user is refused (exit 2) jobs
    whose image would run on this machine, unless they allow it."""
    from localci.execute.placement import place_jobs
    from localci.settings import load_settings

    settings = load_settings(plan.context.project_dir)
    placement = place_jobs(
        jobs, executor or settings.executor, settings.engine, plan.user_variables
    )
    if placement.mode == "container" and placement.probed and placement.engine is None:
        from localci.execute.container.engine import EngineError

        raise EngineError(
            "--executor container: no container engine answers here; start Docker or install "
            "Podman (README, Executors), or choose --executor auto"
        )
    lines = placement.header()
    if not refuse and placement.where():  # --dry-run: every job's place
        lines = [*(lines[:1] or [f"Executor: {placement.mode}"]), *placement.where(), *lines[1:]]
    for line in lines:
        console.print(line, markup=False, highlight=False)
    refusal = placement.refusal()
    allowed = settings.allow_host if allow_host is None else allow_host
    if refuse and refusal and not allowed:
        raise UsageError(refusal)
    return placement


@cli.command()
@click.option(
    "--executor",
    type=click.Choice(["auto", "container"]),
    help="`container` also pulls the Python images `auto` runs in venvs.",
)
@context_options
@click.pass_obj
def pull(opts: Options, /, executor: str | None, **kwargs: Any) -> None:
    """Pull every image and service image the pipeline's container jobs use (for offline)."""
    from localci.execute.container.images import pull as pull_image
    from localci.execute.placement import images_to_pull, place_jobs
    from localci.settings import load_settings

    plan = _plan(_load(opts, kwargs))
    settings = load_settings(plan.context.project_dir)
    jobs = list(plan.ordered())
    mode = executor or ("container" if settings.executor == "container" else "auto")
    placement = place_jobs(jobs, mode, settings.engine, plan.user_variables)
    if placement.engine is None:
        if placement.probed:
            raise UsageError("no container engine answers: install Docker or Podman (see README)")
        click.echo("No job of this pipeline runs in a container; nothing to pull.")
        return
    from localci.execute.container.engine import EngineError
    from localci.execute.container.executor import qualified_image
    from localci.execute.container.images import image_present

    engine, missing = placement.engine, []
    for image, platform in images_to_pull(jobs, placement, plan.user_variables):
        name = qualified_image(engine, image)
        try:
            pull_image(engine, name, platform=platform, log=click.echo)
        except EngineError as exc:
            if not image_present(engine, name):
                missing.append(name)
            click.echo(f"{'kept the local' if name not in missing else 'no'} image {name}: {exc}")
    if missing:
        raise EngineError(f"could not pull {', '.join(missing)} (messages above)")
    click.echo(f"Images ready in {engine.describe()}.")


def _downstream_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What child pipelines need from the command line: which user variables are pipeline
    variables (`--var`, forwarded only with `trigger:forward:pipeline_variables`) and how
    `trigger:include` reads files from outside the project."""
    from localci.plan.variable_files import parse_assignment

    names = frozenset(parse_assignment(text)[0] for text in kwargs.get("variables", ()))
    includes = _include_options(dict(kwargs))
    return {
        "pipeline_variable_names": names,
        "includes": includes["includes"],
        "notify": includes["notify"],
    }


def _print_job_interpreters(
    console: Console, jobs: list[PlannedJob], python: str | None, in_containers: frozenset[str]
) -> None:
    from localci.report.pythons import print_job_interpreters

    venv_jobs = [job for job in jobs if job.name not in in_containers]
    if venv_jobs:  # the others' place and image are in the header
        print_job_interpreters(console, venv_jobs, python, os.environ)


def _install_pythons(console: Console, jobs: list[PlannedJob], python: str | None) -> None:
    from localci.report.pythons import install_missing_pythons

    installed = install_missing_pythons(jobs, python, os.environ)
    if installed:
        console.print(f"Installed Python {', '.join(installed)} with uv", markup=False)


@cli.command()
@click.pass_obj
def doctor(opts: Options, /) -> None:
    """What runs depend on here: Python interpreters (and the image tags they serve), git, uv,
    the container engine, free disk in .localci/."""
    from localci.report.pythons import print_doctor

    if not print_doctor(_console(None), opts.directory, os.environ):
        raise SystemExit(3)


def _console(color: bool | None) -> Console:
    from rich.console import Console

    if color is None:
        return Console(highlight=False)
    return Console(highlight=False, force_terminal=color or None, no_color=not color)


def _execute(
    plan: Plan,
    jobs: list[PlannedJob],
    options: RunOptions,
    console: Console,
    *,
    verbosity: int,
    plain: bool,
) -> RunResult:
    from localci.execute.pipeline import run_pipeline
    from localci.report.plain import PlainReporter

    try:
        from localci.execute.transfer import TransferHooks
    except ImportError:  # pragma: no cover - during development of the cache module
        hooks = None
    else:
        hooks = TransferHooks
    if plain or not console.is_terminal or console.is_dumb_terminal:
        reporter = PlainReporter(console, verbosity=verbosity)
        return run_pipeline(plan, jobs, options, reporter, hooks_factory=hooks)
    from localci.report.live import LiveReporter

    with LiveReporter(console, verbosity=verbosity) as live:
        return run_pipeline(plan, jobs, options, live, hooks_factory=hooks)


def _write_report(path: Path, result: RunResult) -> None:
    from localci.execute.pipeline import job_json
    from localci.files import atomic_write_json

    status = "success" if result.passed else "failed"
    if result.status == "unknown":
        status = "unknown"
    atomic_write_json(
        path.resolve(),
        {
            "status": status,
            "pipeline": result.pipeline_id,
            "jobs": [job_json(j) for j in result.jobs],
        },
    )


@cli.command()
@click.argument("job", required=False, shell_complete=complete_jobs)
@click.option("--pipeline", "pipeline_id", type=int, help="Pipeline number (default: latest).")
@click.pass_obj
def logs(opts: Options, /, job: str | None, pipeline_id: int | None) -> None:
    """Print a job's log from a run (without JOB: list the run's jobs)."""
    from localci.run_records import all_jobs, job_log, read_pipeline

    record = read_pipeline(opts.directory, pipeline_id)
    if job is None:
        for entry in all_jobs(record):
            click.echo(f"{entry['name']:<30} {entry['status']:<10} {entry.get('log') or ''}")
        return
    click.echo(job_log(record, job), nl=False)


@cli.command()
@click.option("--pipeline", "pipeline_id", type=int, help="Pipeline number (default: latest).")
@click.option("--history", is_flag=True, help="The recent pipelines with charts, not one run.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page here instead of into the run's records.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the web browser.")
@click.pass_obj
def report(
    opts: Options, /, pipeline_id: int | None, history: bool, output: Path | None, open_page: bool
) -> None:
    """Write a run's self-contained HTML page (graph, logs, tests, timeline, artifacts)."""
    from localci.report.html import history_page, pipeline_page

    if history and pipeline_id is not None:
        raise UsageError("--history shows every recent pipeline; leave out --pipeline")
    page = (
        history_page(opts.directory, output)
        if history
        else pipeline_page(opts.directory, pipeline_id, output)
    )
    click.echo(str(page))
    if open_page:
        import webbrowser

        if not webbrowser.open(page.as_uri()):
            _echo_err("localci: no web browser found; open the file above yourself")


@cli.command()
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

    loaded = _load(opts, kwargs)
    plan = _plan(loaded)
    render_graph(
        plan,
        fmt,
        _console(None),
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
        child = plan_child(job, plan, external=loaded.external) if job.job.trigger else None
        if child is not None and child.plan is not None and child.plan.created:
            children[job.name] = child.plan
    return children


HOOKS = click.Choice(["pre-push", "pre-commit"])


@cli.group()
def hook() -> None:
    """Run the pipeline before every push (a git hook)."""


@hook.command("install")
@click.argument("job_names", nargs=-1, metavar="[JOB]...", shell_complete=complete_jobs)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    shell_complete=complete_stages,
    help="Only this stage; repeatable.",
)
@click.option("--hook", "hook_name", type=HOOKS, default="pre-push", show_default=True)
@click.option(
    "--force", is_flag=True, help="Replace a foreign hook (kept as <hook>.local-backup, run first)."
)
@click.pass_obj
def hook_install(
    opts: Options,
    /,
    job_names: tuple[str, ...],
    stages: tuple[str, ...],
    hook_name: str,
    force: bool,
) -> None:
    """Install a git hook that runs the pipeline (or some stages/jobs) for the pushed branch."""
    from localci.hooks import install_hook

    path = install_hook(opts.directory, stages=stages, jobs=job_names, hook=hook_name, force=force)
    click.echo(f"installed {path}; skip it once with `git push --no-verify`")


@hook.command("uninstall")
@click.option("--hook", "hook_name", type=HOOKS, default="pre-push", show_default=True)
@click.pass_obj
def hook_uninstall(opts: Options, /, hook_name: str) -> None:
    """Remove localci's hook (a hook localci did not write is left alone)."""
    from localci.hooks import uninstall_hook

    done = uninstall_hook(opts.directory, hook_name)
    click.echo(
        f"removed localci's {hook_name} hook" if done else f"no {hook_name} hook of localci's here"
    )


@cli.group()
def cache() -> None:
    """Inspect or clear the job caches of this project (.localci/cache)."""


@cache.command("list")
@click.pass_obj
def cache_list(opts: Options, /) -> None:
    """Every cache entry: key, size, files, when and by which job it was saved."""
    from localci.execute.transfer import list_caches
    from localci.state import Store

    entries = list_caches(Store(opts.directory))
    if not entries:
        click.echo("no caches saved yet")
    for entry in entries:
        click.echo(
            f"{entry.key:<40} {_size(entry.size_bytes):>9} {entry.files:>7} files  "
            f"saved {entry.saved_at} by {entry.from_job}"
        )


@cache.command("clear")
@click.argument("key", required=False)
@click.pass_obj
def cache_clear(opts: Options, /, key: str | None) -> None:
    """Remove one cache entry (KEY) or all of them."""
    from localci.execute.transfer import clear_caches
    from localci.state import Store

    removed = clear_caches(Store(opts.directory), key)
    if key is not None and removed == 0:
        raise UsageError(f"no cache with key {key!r}; `localci cache list` shows the keys")
    click.echo(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'}")


@cli.command()
@click.argument("job", required=False, shell_complete=complete_jobs)
@click.option("--pipeline", "pipeline_id", type=int, help="Pipeline number (default: latest).")
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy the job's artifacts into this directory.",
)
@click.pass_obj
def artifacts(
    opts: Options, /, job: str | None, pipeline_id: int | None, dest: Path | None
) -> None:
    """List the artifacts of a run, or copy a job's artifacts out (--to DIR)."""
    from localci.execute.transfer import copy_artifacts, list_artifacts
    from localci.state import Store

    store = Store(opts.directory)
    if dest is not None:
        if job is None:
            raise UsageError("--to needs a JOB whose artifacts to copy")
        copied = copy_artifacts(store, pipeline_id, job, dest.resolve())
        click.echo(f"copied {len(copied)} file(s) to {dest}")
        return
    infos = list_artifacts(store, pipeline_id, job)
    if not infos:
        click.echo("no artifacts recorded" + (f" for {job!r}" if job else ""))
    for info in infos:
        state = " (expired)" if info.expired else ""
        reports = f"  reports: {', '.join(info.reports)}" if info.reports else ""
        click.echo(
            f"#{info.pipeline_id} {info.job:<30} {info.files:>6} files "
            f"{_size(info.size_bytes):>9}{state}  {info.path}{reports}"
        )


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


add_examples(cli)  # after every command is defined: each --help ends with real examples


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every outcome into an exit code."""
    code = 130
    try:
        code = run(argv)
    except KeyboardInterrupt:
        pass  # a late Ctrl-C (while printing the outcome): keep the outcome's code
    finally:
        _ignore_late_signals()
    sys.exit(code)


def _ignore_late_signals() -> None:
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def run(argv: list[str] | None = None) -> int:
    interrupts.reset()
    interrupts.install()
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
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
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
    import tempfile
    import traceback

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
