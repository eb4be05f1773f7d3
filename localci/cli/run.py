"""`localci run`: plan, place each job (venv, host or container), run, report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from localci.cli.completion import complete_jobs, complete_stages
from localci.cli.options import (
    Options,
    context_options,
    include_settings,
    load,
    make_console,
    plan_of,
)
from localci.errors import GitError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from localci.execute.pipeline import RunOptions
    from localci.execute.placement import Placement
    from localci.plan.model import Plan, PlannedJob
    from localci.results import RunResult


@click.command("run")
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
    loaded = load(opts, kwargs)
    plan = plan_of(loaded)
    console = make_console(color)
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
    _prune_old_runs(plan, console)
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


def _downstream_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What child pipelines need from the command line: which user variables are pipeline
    variables (`--var`, forwarded only with `trigger:forward:pipeline_variables`) and how
    `trigger:include` reads files from outside the project."""
    from localci.plan.variable_files import parse_assignment

    names = frozenset(parse_assignment(text)[0] for text in kwargs.get("variables", ()))
    includes = include_settings(dict(kwargs))
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
    from localci.execute.transfer import TransferHooks as hooks
    from localci.report.plain import PlainReporter

    if plain or not console.is_terminal or console.is_dumb_terminal:
        reporter = PlainReporter(console, verbosity=verbosity)
        return run_pipeline(plan, jobs, options, reporter, hooks_factory=hooks)
    from localci.report.live import LiveReporter

    with LiveReporter(console, verbosity=verbosity) as live:
        return run_pipeline(plan, jobs, options, live, hooks_factory=hooks)


def _prune_old_runs(plan: Plan, console: Console) -> None:
    """After a run: old runs beyond `keep_pipelines` go (see execute/retention.py). A failure
    to prune is a warning; it never changes the run's outcome."""
    from localci.errors import StateError
    from localci.execute.retention import prune_after_run
    from localci.settings import load_settings
    from localci.state import Store

    keep = load_settings(plan.context.project_dir).keep_pipelines
    if keep is None:
        return
    try:
        outcome = prune_after_run(Store(plan.context.project_dir), keep)
    except (OSError, StateError) as exc:
        console.print(f"warning: old runs were not pruned: {exc}", markup=False)
        return
    if outcome is not None and outcome.removed:
        console.print(
            f"Removed {len(outcome.removed)} old run(s) from .localci/pipelines "
            f"(keep_pipelines: {keep}; see `localci prune`)",
            markup=False,
            highlight=False,
        )


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
