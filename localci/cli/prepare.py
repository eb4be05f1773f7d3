"""Getting this machine and repository ready: `localci doctor`, `pull` and `hook`."""

from __future__ import annotations

import os
from typing import Any

import click

from localci.cli.completion import complete_jobs, complete_stages
from localci.cli.options import Options, context_options, load, make_console, plan_of
from localci.errors import UsageError


@click.command()
@click.pass_obj
def doctor(opts: Options, /) -> None:
    """What runs depend on here: Python interpreters (and the image tags they serve), git, uv,
    the container engine, free disk in .localci/."""
    from localci.report.pythons import print_doctor

    if not print_doctor(make_console(None), opts.directory, os.environ):
        raise SystemExit(3)


@click.command()
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

    plan = plan_of(load(opts, kwargs))
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


HOOKS = click.Choice(["pre-push", "pre-commit"])


@click.group()
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
