"""`localci graph`: the plan's stages, jobs and needs as a terminal table, Mermaid or Graphviz DOT.

Only the jobs in the pipeline are drawn; node ids are generated, so any job name is safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from localci.errors import UsageError
from localci.plan.model import Plan, PlannedJob

FORMATS = ("text", "mermaid", "dot")
COLUMN_MIN_WIDTH = 18
MERMAID_ESCAPES = {
    '"': "#quot;",
    "#": "#35;",
    "&": "#38;",
    "<": "#60;",
    ">": "#62;",
    "`": "#96;",
    "\n": " ",
}
DOT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}


@dataclass(frozen=True, slots=True)
class Edge:
    """`source` must finish before `target` starts; `optional` for `needs: optional: true`."""

    source: str
    target: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Graph:
    """The drawable part of a plan: non-empty stages in order, their jobs, and the edges."""

    stages: tuple[tuple[str, tuple[PlannedJob, ...]], ...]
    edges: tuple[Edge, ...]
    ids: Mapping[str, str]


def build_graph(plan: Plan, *, stage_edges: bool = False) -> Graph:
    """Needs edges always; with `stage_edges`, also previous stage -> each stage-mode job."""
    stages: dict[str, list[PlannedJob]] = {}
    for job in plan.ordered():
        stages.setdefault(job.stage, []).append(job)
    ordered = tuple((stage, tuple(jobs)) for stage, jobs in stages.items())
    ids = {job.name: f"j{n}" for n, job in enumerate(j for _, jobs in ordered for j in jobs)}
    edges: list[Edge] = []
    previous: tuple[PlannedJob, ...] = ()
    for _, jobs in ordered:
        for job in jobs:
            edges.extend(_edges(job, previous if stage_edges else (), ids))
        previous = jobs
    return Graph(ordered, tuple(edges), ids)


def _edges(
    job: PlannedJob, previous: Sequence[PlannedJob], ids: Mapping[str, str]
) -> Iterator[Edge]:
    if job.needs is None:
        for before in previous:
            yield Edge(before.name, job.name)
        return
    for need in job.needs:
        if need.job in ids:
            yield Edge(need.job, job.name, need.optional)


def render_graph(
    plan: Plan,
    fmt: str,
    console: Console,
    *,
    stage_edges: bool = False,
    children: Mapping[str, Plan] | None = None,
) -> None:
    """Print the plan's graph in `fmt` (text, mermaid or dot); `children` are the planned
    child pipelines by trigger job (drawn as clusters hanging off their trigger job)."""
    if fmt == "text":
        console.print(graph_table(plan, console.width))
        return
    source = graph_source(plan, fmt, stage_edges=stage_edges, children=children)
    console.out(source, highlight=False, end="")


def graph_source(
    plan: Plan,
    fmt: str,
    *,
    stage_edges: bool = False,
    children: Mapping[str, Plan] | None = None,
) -> str:
    """The Mermaid or DOT source of the plan's graph, ending with a newline."""
    graph = build_graph(plan, stage_edges=stage_edges)
    comment = "" if plan.created else f"no pipeline is created: {plan.workflow_reason}"
    if fmt == "mermaid":
        lines = list(mermaid_lines(graph, comment))
        lines.extend(_child_lines(graph, children or {}, mermaid=True))
        return "\n".join(lines) + "\n"
    if fmt == "dot":
        lines = list(dot_lines(graph, comment))
        lines[-1:-1] = _child_lines(graph, children or {}, mermaid=False)
        return "\n".join(lines) + "\n"
    raise UsageError(f"graph format {fmt!r}: expected one of {', '.join(FORMATS)}")


def _child_lines(graph: Graph, children: Mapping[str, Plan], *, mermaid: bool) -> Iterator[str]:
    """Each child pipeline as a cluster of its jobs and needs, linked from its trigger job."""
    for number, (trigger, plan) in enumerate(children.items()):
        if trigger not in graph.ids:
            continue
        child = build_graph(plan)
        ids = {name: f"c{number}{node}" for name, node in child.ids.items()}
        jobs = [job for _, stage_jobs in child.stages for job in stage_jobs]
        title = f"child pipeline of {trigger}"
        if mermaid:
            yield f'    subgraph c{number}["{mermaid_label(title)}"]'
            yield from (f'        {ids[j.name]}["{mermaid_label(j.name)}"]' for j in jobs)
            yield "    end"
            yield f"    {graph.ids[trigger]} -.-> c{number}"
            yield from (f"    {ids[e.source]} --> {ids[e.target]}" for e in child.edges)
        else:
            yield f"    subgraph cluster_c{number} {{"
            yield f"        label={dot_string(title)}; style=dashed;"
            yield from (f"        {ids[j.name]} [label={dot_string(j.name)}];" for j in jobs)
            yield "    }"
            yield from (
                f"    {graph.ids[trigger]} -> {ids[j.name]} [style=dotted];"
                for j in jobs
                if not j.dag or not j.needs
            )
            yield from (f"    {ids[e.source]} -> {ids[e.target]};" for e in child.edges)


def mermaid_label(text: str) -> str:
    return "".join(MERMAID_ESCAPES.get(char, char) for char in text)


def mermaid_lines(graph: Graph, comment: str = "") -> Iterator[str]:
    yield "flowchart LR"
    if comment:
        yield f"    %% {comment.replace(chr(10), ' ')}"
    manual = False
    for number, (stage, jobs) in enumerate(graph.stages):
        yield f'    subgraph s{number}["{mermaid_label(stage)}"]'
        yield "        direction TB"
        for job in jobs:
            manual = manual or job.manual
            suffix = ":::manual" if job.manual else ""
            yield f'        {graph.ids[job.name]}["{mermaid_label(job.name)}"]{suffix}'
        yield "    end"
    for edge in graph.edges:
        arrow = "-.->" if edge.optional else "-->"
        yield f"    {graph.ids[edge.source]} {arrow} {graph.ids[edge.target]}"
    if manual:
        yield "    classDef manual stroke-dasharray: 5 5"


def dot_string(text: str) -> str:
    return '"' + "".join(DOT_ESCAPES.get(char, char) for char in text) + '"'


def dot_lines(graph: Graph, comment: str = "") -> Iterator[str]:
    yield "digraph pipeline {"
    if comment:
        yield f"    // {comment.replace(chr(10), ' ')}"
    yield "    rankdir=LR;"
    yield '    node [shape=box, style="rounded"];'
    for number, (stage, jobs) in enumerate(graph.stages):
        yield f"    subgraph cluster_s{number} {{"
        yield f"        label={dot_string(stage)};"
        for job in jobs:
            style = ', style="rounded,dashed"' if job.manual else ""
            yield f"        {graph.ids[job.name]} [label={dot_string(job.name)}{style}];"
        yield "    }"
    for edge in graph.edges:
        style = " [style=dashed]" if edge.optional else ""
        yield f"    {graph.ids[edge.source]} -> {graph.ids[edge.target]}{style};"
    yield "}"


def job_text(job: PlannedJob) -> Text:
    """A job as the text graph shows it: name, a note on `when`, and what it needs."""
    text = Text(job.name, style="bold")
    notes = []
    if job.manual:
        notes.append("manual")
    elif job.when not in ("on_success", "manual"):
        notes.append(job.when.replace("_", " ") + (f" {job.start_in}" if job.start_in else ""))
    if job.allow_failure.allowed and not job.manual:
        notes.append("allow failure")
    if notes:
        text.append(f" ({', '.join(notes)})", style="dim")
    if job.needs is not None:
        names = ", ".join(need.job + ("?" if need.optional else "") for need in job.needs)
        text.append(f"\n  ← needs: {names or 'nothing (starts at once)'}", style="cyan")
    return text


def graph_table(plan: Plan, width: int) -> Group | Table:
    """Stages as columns when they fit in `width`, else one section per stage."""
    graph = build_graph(plan)
    if not plan.created:
        return Group(Text(f"No pipeline is created: {plan.workflow_reason}", style="yellow"))
    if not graph.stages:
        return Group(Text("The pipeline has no jobs.", style="yellow"))
    if len(graph.stages) * (COLUMN_MIN_WIDTH + 3) <= width:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for stage, _ in graph.stages:
            table.add_column(Text(stage, style="bold underline"), overflow="fold")
        table.add_row(*(_cell(jobs) for _, jobs in graph.stages))
        return table
    sections: list[Text] = []
    for stage, jobs in graph.stages:
        sections.append(Text(stage, style="bold underline"))
        for job in jobs:
            line = job_text(job)
            line.pad_left(2)
            sections.append(Text("\n  ").join(line.split("\n")))
    return Group(*sections)


def _cell(jobs: Sequence[PlannedJob]) -> Text:
    return Text("\n").join(job_text(job) for job in jobs)
