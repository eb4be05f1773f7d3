"""The end-of-run summary: per-job status, duration, tests, coverage; failed-log tails."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from localci.results import JobResult, RunResult, Status

TAIL_LINES = 30
UNBOUNDED_WIDTH = 1_000_000
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
    "unknown": ("result unknown: a downstream pipeline it depends on was not run", "yellow"),
}
# How a child pipeline's jobs are named under their trigger job (as in the live output).
NESTED = " > "


def flattened(jobs: Sequence[JobResult]) -> list[JobResult]:
    """Jobs with the jobs of their child pipelines right after them, named `trigger > job`."""
    out: list[JobResult] = []
    for job in jobs:
        out.append(job)
        if job.downstream is not None and job.downstream.jobs:
            children = flattened(job.downstream.jobs)
            out.extend(replace(child, name=f"{job.name}{NESTED}{child.name}") for child in children)
    return out


def downstream_lines(jobs: Sequence[JobResult], prefix: str = "") -> list[tuple[str, str]]:
    """One line per downstream pipeline: what it was, its status and what that meant."""
    lines: list[tuple[str, str]] = []
    for job in jobs:
        ds = job.downstream
        if ds is None:
            continue
        name = f"{prefix}{job.name}"
        if ds.kind == "project":
            text = f"{name}: downstream {ds.source} not run"
            if ds.unknown:
                text += f" (strategy: {ds.strategy}: the pipeline's result is unknown)"
            lines.append((text, "yellow"))
            continue
        how = f"strategy: {ds.strategy}" if ds.strategy else "no strategy: does not affect this one"
        style = "red" if ds.status == "failed" else "green" if ds.status == "success" else "yellow"
        lines.append((f"{name}: child pipeline #{ds.pipeline_id} {ds.status} ({how})", style))
        lines.extend(downstream_lines(ds.jobs, f"{name}{NESTED}"))
    return lines


def status_label(result: JobResult) -> tuple[str, str]:
    if result.failed_allowed and result.status is Status.FAILED:
        label, style = ("failed (allowed)", "yellow")
    else:
        label, style = STATUS_TEXT[result.status]
    if result.python_substitution:  # the job did not run on the Python its image names
        label += f" ({result.python_substitution.split(' (')[0]})"
    return label, style


def print_failed_tails(console: Console, result: RunResult) -> None:
    """The last lines of every failed job's log, with the path of the full log.

    The job's own colours (escape sequences in its log) are rendered as styles, which the
    console drops when colour is off (NO_COLOR, --no-color, a pipe): never raw `[93m`.
    Lines are not wrapped, so a path stays one line to copy.
    """
    for job in flattened(result.jobs):
        if job.status is not Status.FAILED or not job.log:
            continue
        label, style = status_label(job)
        console.print(
            Text(f"\n── {job.name} {label}: {job.reason} ──", style=style), soft_wrap=True
        )
        if job.unstarted_services:
            console.print(Text(_without_services(job), style="yellow"), soft_wrap=True)
        for line in _tail(Path(job.log), TAIL_LINES):
            console.print(Text.from_ansi(line), soft_wrap=True)
        console.print(Text(f"full log: {job.log}", style="dim"), soft_wrap=True)


def _without_services(job: JobResult) -> str:
    return f"ran without its services (no container engine): {'; '.join(job.unstarted_services)}"


def _tail(path: Path, count: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ["(the log could not be read)"]
    return lines[-count:]


COLUMNS = ("job", "stage", "status", "duration", "tests", "coverage")
SERVICES_COLUMN = "not started"
RIGHT_ALIGNED = frozenset({"duration", "coverage"})
# job, stage, (status, style), duration, tests, coverage[, services not started]
_Row = tuple[Any, ...]


def _columns(jobs: Sequence[JobResult]) -> tuple[str, ...]:
    """The summary's columns; "not started" (services) only when a job ran without them."""
    if any(job.unstarted_services for job in jobs):
        return (*COLUMNS, SERVICES_COLUMN)
    return COLUMNS


def _rows(jobs: Sequence[JobResult]) -> list[_Row]:
    with_services = len(_columns(jobs)) > len(COLUMNS)
    return [
        (
            job.name,
            job.stage,
            status_label(job),
            f"{job.duration_s:.1f}s" if job.attempts else "",
            tests_summary(job),
            f"{job.coverage:g}%" if job.coverage is not None else "",
            *(("; ".join(job.unstarted_services),) if with_services else ()),
        )
        for job in jobs
    ]


def summary_table(jobs: Sequence[JobResult]) -> Table:
    table = Table(pad_edge=False, show_edge=True)
    for column in _columns(jobs):
        table.add_column(
            column, justify="right" if column in RIGHT_ALIGNED else "left", overflow="fold"
        )
    for name, stage, (label, style), *rest in _rows(jobs):
        table.add_row(name, stage, Text(label, style=style), *rest)
    return table


def fast_summary_table(jobs: Sequence[JobResult], width: int) -> Text | None:
    """The table `summary_table` draws, built directly as text: rich lays out a 300-job table
    in ~200 ms, this in ~5 ms. None when a cell would need wrapping or any width is unusual
    (wide characters, control characters): rich then draws it."""
    rows = _rows(jobs)
    columns = _columns(jobs)
    cells = [[row[0], row[1], row[2][0], *row[3:]] for row in rows]
    if not all(cell.isprintable() and cell.isascii() for row in cells for cell in row):
        return None
    widths = [
        max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(columns)
    ]
    # pad_edge=False: no padding outside the first and the last column
    if sum(widths) + 2 * len(widths) - 2 + len(widths) + 1 > width:
        return None
    text = Text()
    _rule(text, widths, "┏━┳┓")
    _line(text, columns, widths, list(columns), "┃", header=True)
    _rule(text, widths, "┡━╇┩")
    for row, values in zip(rows, cells, strict=True):
        _line(text, columns, widths, values, "│", status_style=row[2][1])
    _rule(text, widths, "└─┴┘")
    return text


def _rule(text: Text, widths: list[int], chars: str) -> None:
    left, fill, cross, right = chars[0], chars[1], chars[2], chars[3]
    inner = [fill * (w + 2 - (i == 0) - (i == len(widths) - 1)) for i, w in enumerate(widths)]
    text.append(left + cross.join(inner) + right + "\n")


def _line(
    text: Text,
    columns: Sequence[str],
    widths: list[int],
    values: list[str],
    edge: str,
    *,
    header: bool = False,
    status_style: str = "",
) -> None:
    last = len(widths) - 1
    text.append(edge)
    for index, (value, width) in enumerate(zip(values, widths, strict=True)):
        right = columns[index] in RIGHT_ALIGNED
        padded = value.rjust(width) if right else value.ljust(width)
        style = "bold" if header else (status_style if index == 2 else "")
        if index:
            text.append(" ")
        text.append(padded, style=style)
        if index != last:
            text.append(" ")
        text.append(edge)
    text.append("\n")


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


def _print_services_advice(console: Console, jobs: Sequence[JobResult]) -> None:
    without = [job.name for job in jobs if job.unstarted_services]
    if without:
        console.print(
            Text(
                f"{len(without)} job(s) ran without their services: install a container engine "
                "(podman or docker), or run the servers locally and point the jobs at them "
                "with --var (each job's log says which hosts it expects)",
                style="yellow",
            ),
            soft_wrap=True,
        )


def print_summary(console: Console, result: RunResult) -> None:
    print_failed_tails(console, result)
    console.print()
    jobs = flattened(result.jobs)
    if jobs:
        # Off a terminal (a pipe, a CI log) the table takes the width it needs: never cut.
        width = console.width if console.is_terminal else UNBOUNDED_WIDTH
        fast = fast_summary_table(jobs, width)
        if fast is not None:
            console.print(fast, soft_wrap=True, end="")
        else:
            console.print(summary_table(jobs))
    for text, style in downstream_lines(result.jobs):
        console.print(Text(text, style=style))
    _print_services_advice(console, jobs)
    for job in jobs:
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
    if any(j.status is Status.FAILED for j in jobs):
        console.print(Text("see a job's log: localci logs JOB", style="dim"))
    print_page_line(console, result)


def prepare_page() -> None:
    """Import the page's modules and load its templates in the background while the jobs run
    (~0.1 s of CPU): at the end of the run only the page itself is left to write."""
    threading.Thread(target=_warm_up_page, name="localci-page-warm-up", daemon=True).start()


def _warm_up_page() -> None:
    try:
        from localci.report.html import warm_up

        warm_up()
    except Exception:  # noqa: S110 - the end of the run writes the page or says why not
        pass


def print_page_line(console: Console, result: RunResult) -> None:
    """Write the run's pipeline page into its records and end the summary with its path."""
    if not result.record_dir or not (Path(result.record_dir) / "pipeline.json").is_file():
        return
    from localci.errors import LocalCIError
    from localci.report.html import write_pipeline_page

    try:
        page = write_pipeline_page(Path(result.record_dir))
    except (OSError, LocalCIError) as exc:  # the run's outcome stands without its page
        console.print(Text(f"the pipeline page could not be written: {exc}", style="yellow"))
        return
    except Exception as exc:  # a bug in the page must not turn the run's outcome into a crash
        console.print(
            Text(f"the pipeline page could not be written (a bug in localci): {exc!r}", "yellow")
        )
        return
    console.print(Text.assemble("pipeline page: ", (str(page), "bold")), soft_wrap=True)
