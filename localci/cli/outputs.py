"""What runs leave behind: `localci logs`, `report` (the HTML page), `artifacts`, `cache`,
`prune`."""

from __future__ import annotations

from pathlib import Path

import click

from localci.cli.completion import complete_jobs
from localci.cli.options import Options, echo_err
from localci.errors import UsageError


@click.command()
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


@click.command()
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
            echo_err("localci: no web browser found; open the file above yourself")


@click.group()
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


@click.command()
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


@click.command()
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    help="How many of the newest runs to keep (default: keep_pipelines, else 50).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.pass_obj
def prune(opts: Options, /, keep: int | None, dry_run: bool) -> None:
    """Remove old runs from .localci/pipelines, keeping the newest, their child pipelines and
    each job's newest artifacts (what --stage and `localci run JOB` hand on)."""
    from localci.execute.retention import DEFAULT_KEEP, prune_pipelines
    from localci.settings import load_settings
    from localci.state import Store

    if keep is None:
        keep = load_settings(opts.directory).keep_pipelines or DEFAULT_KEEP
    outcome = prune_pipelines(Store(opts.directory), keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(outcome.removed)} run(s), {_size(outcome.freed_bytes)}; "
        f"kept {len(outcome.kept)}"
    )
    if outcome.busy:
        click.echo(f"in use, left alone: {', '.join(f'#{i}' for i in outcome.busy)}")


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
