"""Geometry of the page's SVG drawings: the stage graph with its `needs` lines, the timeline
(Gantt) with the critical path, and the history charts. Pure arithmetic on the page model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localci.report.pagemodel import JobView, PipelineView

NODE_W, NODE_H = 210, 42
COL_GAP, ROW_GAP = 64, 12
HEADER_H, PAD = 34, 12


@dataclass(frozen=True, slots=True)
class Node:
    job: JobView
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Column:
    stage: str
    x: int


@dataclass(frozen=True, slots=True)
class Edge:
    path: str
    source: str  # job keys, for highlighting
    target: str


@dataclass(frozen=True, slots=True)
class Graph:
    width: int
    height: int
    columns: tuple[Column, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    node_w: int = NODE_W
    node_h: int = NODE_H


def stage_graph(pipeline: PipelineView) -> Graph:
    """Stages as columns, jobs stacked in each, a curve from every needed job to its needer."""
    columns, nodes = [], []
    rows = 0
    for index, (stage, jobs) in enumerate(pipeline.stage_jobs()):
        x = PAD + index * (NODE_W + COL_GAP)
        columns.append(Column(stage, x))
        for row, job in enumerate(jobs):
            nodes.append(Node(job, x, HEADER_H + row * (NODE_H + ROW_GAP)))
        rows = max(rows, len(jobs))
    by_name = {node.job.name: node for node in nodes}
    edges = [
        _edge(by_name[need], node)
        for node in nodes
        for need in node.job.needs or ()
        if need in by_name
    ]
    width = PAD * 2 + max(1, len(columns)) * (NODE_W + COL_GAP) - COL_GAP
    height = HEADER_H + max(1, rows) * (NODE_H + ROW_GAP) + PAD
    return Graph(width, height, tuple(columns), tuple(nodes), tuple(edges))


def _edge(source: Node, target: Node) -> Edge:
    y1, y2 = source.y + NODE_H // 2, target.y + NODE_H // 2
    if source.x < target.x:
        x1, x2 = source.x + NODE_W, target.x
        bend = (x2 - x1) / 2
        path = f"M{x1},{y1} C{x1 + bend:.0f},{y1} {x2 - bend:.0f},{y2} {x2},{y2}"
    else:  # a need in the same (or a later) stage: around the left side
        x1, x2 = source.x, target.x
        path = f"M{x1},{y1} C{x1 - 28},{y1} {x2 - 28},{y2} {x2},{y2}"
    return Edge(path, source.job.key, target.job.key)


GANTT_LABEL_W, GANTT_BAR_AREA, GANTT_ROW = 190, 760, 22


@dataclass(frozen=True, slots=True)
class Bar:
    job: JobView
    y: int
    x: float
    width: float
    critical: bool


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    span_s: float
    max_parallel: int
    critical_s: float
    label_w: int = GANTT_LABEL_W


def timeline(pipeline: PipelineView) -> Timeline | None:
    """Jobs that ran, by start time, on one time axis; None when the record has no times."""
    timed = [j for j in pipeline.jobs if j.started_at is not None and j.finished_at is not None]
    if not timed:
        return None
    timed.sort(key=lambda j: (j.started_at or 0.0, j.name))
    origin = min(j.started_at or 0.0 for j in timed)
    span = max(max(j.finished_at or 0.0 for j in timed) - origin, 0.001)
    scale = GANTT_BAR_AREA / span
    critical = critical_path(pipeline)
    bars = tuple(
        Bar(
            job,
            HEADER_H + row * GANTT_ROW,
            GANTT_LABEL_W + ((job.started_at or 0.0) - origin) * scale,
            max(2.0, ((job.finished_at or 0.0) - (job.started_at or 0.0)) * scale),
            job.key in critical,
        )
        for row, job in enumerate(timed)
    )
    critical_s = sum(j.duration_s for j in timed if j.key in critical)
    return Timeline(
        width=GANTT_LABEL_W + GANTT_BAR_AREA + PAD,
        height=HEADER_H + len(timed) * GANTT_ROW + PAD,
        bars=bars,
        ticks=_ticks(span, scale),
        span_s=span,
        max_parallel=max_parallel(timed),
        critical_s=critical_s,
    )


def _ticks(span: float, scale: float) -> tuple[Tick, ...]:
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
                 if span / s <= 8), 7200.0)  # fmt: skip
    count = int(span / step) + 1
    return tuple(
        Tick(GANTT_LABEL_W + i * step * scale, _tick_label(i * step)) for i in range(count)
    )


def _tick_label(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    return (
        f"{int(seconds // 60)}m{int(seconds % 60):02d}s" if seconds % 60 else f"{seconds / 60:g}m"
    )


def max_parallel(jobs: Sequence[JobView]) -> int:
    """The most jobs running at one moment."""
    points = sorted(
        [(j.started_at or 0.0, 1) for j in jobs] + [(j.finished_at or 0.0, -1) for j in jobs],
        key=lambda p: (p[0], p[1]),
    )
    running = best = 0
    for _, delta in points:
        running += delta
        best = max(best, running)
    return best


def critical_path(pipeline: PipelineView) -> frozenset[str]:
    """Keys of the jobs the pipeline's end waited on: from the job that finished last, back
    through the predecessor that finished last (its `needs`, else every earlier stage)."""
    timed = {j.name: j for j in pipeline.jobs if j.finished_at is not None}
    if not timed:
        return frozenset()
    stage_index = {stage: i for i, stage in enumerate(pipeline.stages)}
    current = max(timed.values(), key=lambda j: j.finished_at or 0.0)
    path = {current.key}
    while True:
        before = _predecessors(current, timed, stage_index)
        if not before:
            return frozenset(path)
        current = max(before, key=lambda j: j.finished_at or 0.0)
        path.add(current.key)


def _predecessors(
    job: JobView, timed: dict[str, JobView], stage_index: dict[str, int]
) -> list[JobView]:
    if job.needs is not None:
        found = [timed[n] for n in job.needs if n in timed]
    else:
        mine = stage_index.get(job.stage, 0)
        found = [j for j in timed.values() if stage_index.get(j.stage, 0) < mine]
    start = job.started_at or 0.0
    return [j for j in found if (j.finished_at or 0.0) <= start + 0.5]
