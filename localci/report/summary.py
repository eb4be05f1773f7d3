"""The end-of-run summary: per-job status, duration, tests, coverage; failed-log tails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from localci.execute.results import JobResult, RunResult, Status

TAIL_LINES = 30
STATUS_TEXT = {
    Status.SUCCESS: ("passed", "green"),
    Status.FAILED: ("failed", "red"),
    Status.CANCELED: ("canceled", "magenta"),
    Status.SKIPPED: ("skipped", "dim"),
    Status.MANUAL: ("manual", "cyan"),
    Status.CREATED: ("blocked", "yellow"),
    Status.RUNNING: ("running", "blue"),
}
PIPELINE_TEXT = {
    "success": ("passed", "green"),
    "failed": ("failed", "red"),
    "canceled": ("canceled", "magenta"),
    "blocked": ("blocked (waiting for a manual job)", "yellow"),
    "skipped": ("skipped (no job ran)", "dim"),
}


def status_label(result: JobResult) -> tuple[str, str]:
    if result.failed_allowed and result.status is Status.FAILED:
        return ("failed (allowed)", "yellow")
    return STATUS_TEXT[result.status]


def print_failed_tails(console: Console, result: RunResult) -> None:
    """The last lines of every failed job's log, with the path of the full log."""
    for job in result.jobs:
        if job.status is not Status.FAILED or not job.log:
            continue
        label, style = status_label(job)
        console.print(Text(f"\n── {job.name} {label}: {job.reason} ──", style=style))
        for line in _tail(Path(job.log), TAIL_LINES):
            console.print(Text(line))
        console.print(Text(f"full log: {job.log}", style="dim"))


def _tail(path: Path, count: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ["(the log could not be read)"]
    return lines[-count:]


def summary_table(jobs: Sequence[JobResult]) -> Table:
    table = Table(pad_edge=False, show_edge=True)
    for column in ("job", "stage", "status", "duration", "tests", "coverage"):
        table.add_column(
            column,
            justify="right" if column in ("duration", "coverage") else "left",
            overflow="fold",
        )
    for job in jobs:
        label, style = status_label(job)
        table.add_row(
            job.name,
            job.stage,
            Text(label, style=style),
            f"{job.duration_s:.1f}s" if job.attempts else "",
            tests_summary(job),
            f"{job.coverage:g}%" if job.coverage is not None else "",
        )
    return table


def tests_summary(job: JobResult) -> str:
    """'4 passed, 1 failed, 2 skipped' from the job's junit counts ('' without a report)."""
    tests = job.tests
    if tests is None:
        return ""
    parts = [f"{tests.passed} passed"]
    if tests.failed or tests.errors:
        parts.append(f"{tests.failed + tests.errors} failed")
    if tests.skipped:
        parts.append(f"{tests.skipped} skipped")
    return ", ".join(parts)


def print_summary(console: Console, result: RunResult) -> None:
    print_failed_tails(console, result)
    console.print()
    if result.jobs:
        console.print(summary_table(result.jobs))
    for job in result.jobs:
        if job.tests and job.tests.failed_names:
            console.print(Text(f"{job.name}: failed tests:", style="red"))
            for name in job.tests.failed_names[:20]:
                console.print(Text(f"  - {name}"))
    label, style = PIPELINE_TEXT.get(result.status, (result.status, ""))
    console.print(
        Text.assemble(
            f"Pipeline #{result.pipeline_id} ",
            (label, f"bold {style}"),
            f" in {result.duration_s:.1f}s",
        )
    )
    if any(j.status is Status.FAILED for j in result.jobs):
        console.print(Text("see a job's log: localci logs JOB", style="dim"))
