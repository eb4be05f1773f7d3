"""`localci list`: the plan as JSON (a shape other tools use) or as a table by stage."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from localci.plan.model import Plan, PlannedJob

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from localci.config.include_sources import ExternalSource


def list_json(
    plan: Plan, *, external: ExternalSource | None = None, depth: int = 0
) -> list[dict[str, Any]]:
    """One object per visible job in definition order; `when` is "never" when excluded.

    A trigger job in the pipeline gets a `child` object: its downstream pipeline's planned
    jobs in this same shape, or `planned: false` and why (dynamic, multi-project, errors).
    """
    out = []
    for job in plan.jobs:
        entry = _job_json(plan, job)
        if job.spec.trigger and job.included and plan.created:
            entry["child"] = _child_json(plan, job, external, depth)
        out.append(entry)
    return out


def _child_json(
    plan: Plan, job: PlannedJob, external: ExternalSource | None, depth: int
) -> dict[str, Any]:
    from localci.plan.child import plan_child

    child = plan_child(job, plan, external=external, depth=depth)
    assert child is not None
    spec = child.spec
    out: dict[str, Any] = {
        "kind": "child" if spec.is_child else "project",
        "source": spec.describe(),
        "strategy": spec.strategy,
        "planned": child.plan is not None and child.plan.created,
    }
    if child.reason:
        out["reason"] = child.reason
    if child.plan is not None and child.plan.created:
        out["jobs"] = list_json(child.plan, external=external, depth=depth + 1)
    return out


def child_lines(
    plan: Plan, external: ExternalSource | None = None, *, only: str | None = None
) -> list[str]:
    """One line per trigger job of the pipeline (or of the job or parallel group `only`): its
    downstream pipeline and planned jobs."""
    triggers = [
        job
        for job in plan.ordered()
        if job.spec.trigger and only in (None, job.name, job.group_name)
    ]
    if not triggers:
        return []
    from localci.plan.child import plan_child

    lines = []
    for job in triggers:
        child = plan_child(job, plan, external=external)
        assert child is not None
        strategy = f", strategy: {child.spec.strategy}" if child.spec.strategy else ""
        head = f"{job.name} triggers {child.spec.describe()}{strategy}"
        if child.plan is not None and child.plan.created:
            names = ", ".join(j.name for j in child.plan.ordered())
            lines.append(f"{head}: child pipeline of {len(child.plan.included)} job(s): {names}")
        else:
            lines.append(f"{head}: {child.reason}")
    return lines


def _job_json(plan: Plan, job: PlannedJob) -> dict[str, Any]:
    included = job.included and plan.created
    out: dict[str, Any] = {
        "name": job.name,
        "description": job.job.description,
        "stage": job.stage,
        "when": job.when if included else "never",
        "allow_failure": job.allow_failure.as_json(),
    }
    if job.needs is not None:
        out["needs"] = [
            {"job": n.job, "artifacts": n.artifacts, "optional": n.optional} for n in job.needs
        ]
    out["reason"] = job.reason if plan.created or not job.included else plan.workflow_reason
    return out


def print_list(
    plan: Plan,
    *,
    show_all: bool,
    console: Console | None = None,
    external: ExternalSource | None = None,
    in_containers: frozenset[str] = frozenset(),
) -> None:
    """A table grouped by stage: job, when, allow_failure, needs (and the reason with --all);
    then the jobs whose services will not start (all but those `in_containers`)."""
    if console is None and _plain_output():
        lines = _plain_lines(plan, show_all, external, in_containers)
        if lines is not None:
            sys.stdout.write("".join(line + "\n" for line in lines))
            return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False)
    if not console.is_terminal:
        # Plain output (a pipe, a CI log) is never cut or wrapped to 80 columns.
        console = _unbounded(console)
    ctx = plan.context
    kind = "tag" if ctx.ref_is_tag else "branch"
    console.print(
        Text.assemble(
            "Pipeline for ",
            kind,
            " ",
            (ctx.ref, "bold"),
            f" ({ctx.source})",
            f": {plan.name}" if plan.name else "",
        )
    )
    if not plan.created:
        console.print(Text.assemble(("No pipeline is created: ", "yellow"), plan.workflow_reason))
        if not show_all:
            return
    table = Table(show_lines=False, pad_edge=False)
    for column in ("stage", "job", "when", "allow failure", "needs"):
        table.add_column(column)
    if show_all:
        table.add_column("reason", overflow="fold")
    for job in _ordered(plan, show_all):
        table.add_row(*_row(plan, job, show_all))
    console.print(table)
    for line in child_lines(plan, external) if plan.created else ():
        console.print(Text(line))
    excluded = sum(1 for j in plan.jobs if not (j.included and plan.created))
    if excluded and not show_all:
        console.print(f"{excluded} job(s) not in this pipeline; `localci list --all` shows why")
    jobs = [job for job in _ordered(plan, show_all=False) if job.name not in in_containers]
    _print_services(plan, jobs, console)


def _unbounded(console: Console) -> Console:
    from rich.console import Console

    return Console(
        file=console.file,
        highlight=False,
        width=1_000_000,
        no_color=console.no_color,
        force_terminal=False,
        color_system=None,
    )


def _print_services(plan: Plan, jobs: list[PlannedJob], console: Console) -> None:
    """Jobs whose services will not be started, grouped by what they would have needed."""
    from rich.text import Text

    for line in _services_lines(plan, jobs):
        console.print(Text(line, style="yellow"), soft_wrap=True)


def _services_lines(plan: Plan, jobs: list[PlannedJob]) -> list[str]:
    jobs = [job for job in jobs if job.spec.services]
    if not jobs:
        return []
    from localci.plan.services import unstarted_services_note

    by_note: dict[str, list[str]] = {}
    for job in jobs:
        note = unstarted_services_note(job, plan.user_variables)
        if note:
            by_note.setdefault(note, []).append(job.name)
    return [f"{', '.join(names)}: {note}" for note, names in by_note.items()]


def _ordered(plan: Plan, show_all: bool) -> list[PlannedJob]:
    jobs = [j for j in plan.jobs if show_all or (j.included and plan.created)]
    return sorted(jobs, key=lambda j: j.stage_index)


def _row(plan: Plan, job: PlannedJob, show_all: bool) -> list[Text]:
    from rich.text import Text

    included = job.included and plan.created
    cells = _cells(plan, job, show_all)
    # Text, not markup: job names like `test: [3.11]` and reasons contain brackets.
    row = [Text(cell) for cell in cells]
    row[1].stylize("" if included else "dim")
    return row


def _cells(plan: Plan, job: PlannedJob, show_all: bool) -> list[str]:
    included = job.included and plan.created
    when = job.when if included else "never"
    allow = job.allow_failure
    allow_text = (
        f"exit codes {', '.join(map(str, allow.exit_codes))}"
        if allow.exit_codes
        else "yes"
        if allow.allowed
        else ""
    )
    if job.needs is None:
        needs = ""
    else:
        needs = ", ".join(n.job + ("?" if n.optional else "") for n in job.needs) or "[] (none)"
    row = [job.stage, job.name, when, allow_text, needs]
    if show_all:
        row.append(job.reason)
    return row


# --------------------------------------------------------------------------- plain output

_COLUMNS = ("stage", "job", "when", "allow failure", "needs", "reason")


def _plain_output() -> bool:
    """Whether rich would print plain text here (no terminal, nothing forcing one): then the
    same table is written without importing rich, a third of a short `localci list`."""
    forced = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS")
    if any(os.environ.get(name) for name in forced):
        return False
    try:
        return not sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _plain_lines(
    plan: Plan,
    show_all: bool,
    external: ExternalSource | None,
    in_containers: frozenset[str],
) -> list[str] | None:
    """The lines rich prints for print_list without a terminal, or None where only rich
    renders them right (wide or control characters, an empty table)."""
    ctx = plan.context
    kind = "tag" if ctx.ref_is_tag else "branch"
    name = f": {plan.name}" if plan.name else ""
    head = [f"Pipeline for {kind} {ctx.ref} ({ctx.source}){name}"]
    if not plan.created:
        head.append(f"No pipeline is created: {plan.workflow_reason}")
    if not _simple(head):
        return None
    if not plan.created and not show_all:
        return head
    rows = [_cells(plan, job, show_all) for job in _ordered(plan, show_all)]
    if not rows or not all(_simple(row) for row in rows):
        return None
    table = _plain_table(list(_COLUMNS[: len(rows[0])]), rows)
    tail = child_lines(plan, external) if plan.created else []
    excluded = sum(1 for j in plan.jobs if not (j.included and plan.created))
    if excluded and not show_all:
        tail.append(f"{excluded} job(s) not in this pipeline; `localci list --all` shows why")
    jobs = [job for job in _ordered(plan, show_all=False) if job.name not in in_containers]
    tail += _services_lines(plan, jobs)
    lines = [line for text in tail for line in text.split("\n")]  # a reason may have hints
    return [*head, *table, *lines] if _simple(lines) else None


def _simple(texts: list[str]) -> bool:
    # Printable ASCII only: one character is one column and there are no line breaks.
    return all(text.isascii() and text.isprintable() for text in texts)


def _plain_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """rich's Table(pad_edge=False) with its default box (HEAVY_HEAD), at unbounded width."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    last = len(widths) - 1

    def pad(cells: list[str]) -> list[str]:
        return [
            ("" if i == 0 else " ") + cell.ljust(widths[i]) + ("" if i == last else " ")
            for i, cell in enumerate(cells)
        ]

    def rule(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * len(cell) for cell in pad(header)) + right

    return [
        rule("┏", "━", "┳", "┓"),
        "┃" + "┃".join(pad(header)) + "┃",
        rule("┡", "━", "╇", "┩"),
        *("│" + "│".join(pad(row)) + "│" for row in rows),
        rule("└", "─", "┴", "┘"),
    ]
