"""The recent pipelines of a project for `localci report --history`: one row per run, and the
geometry of its small charts (duration, tests, coverage over time)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from localci.state import Store

PAGE_NAME = "pipeline.html"
CHART_W, CHART_H = 300, 64
MAX_BAR_STEP = 24.0


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    status: str
    ref: str
    sha: str
    created_at: str
    duration_s: float
    jobs: int
    passed: int
    failed: int
    coverage: float | None
    href: str


@dataclass(frozen=True, slots=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    status: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[ChartBar, ...]
    line: str  # an SVG polyline's points ('' for bar charts)
    top: str  # the value at the chart's top edge
    width: int = CHART_W
    height: int = CHART_H


def history_rows(
    store: Store, page_dir: Path, *, limit: int, page: Callable[[Path], Path]
) -> list[HistoryRow]:
    """The last `limit` recorded pipelines, newest first; pages that are missing are written."""
    rows = []
    for pipeline_id in _recent_ids(store, limit):
        record_dir = store.pipeline_dir(pipeline_id)
        record = _read(record_dir / "pipeline.json")
        if record is None:
            continue
        page_path = record_dir / PAGE_NAME
        if not page_path.is_file():
            page(record_dir)
        rows.append(_row(pipeline_id, record, quote(os.path.relpath(page_path, page_dir))))
    return rows


def _recent_ids(store: Store, limit: int) -> list[int]:
    try:
        names = [p.name for p in store.path("pipelines").iterdir() if p.name.isdigit()]
    except OSError:
        return []
    return sorted((int(n) for n in names), reverse=True)[:limit]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _row(pipeline_id: int, record: dict[str, Any], href: str) -> HistoryRow:
    jobs = [j for j in record.get("jobs") or () if isinstance(j, dict)]
    tests = [j["tests"] for j in jobs if isinstance(j.get("tests"), dict)]
    coverages = [float(j["coverage"]) for j in jobs if isinstance(j.get("coverage"), (int, float))]
    return HistoryRow(
        id=pipeline_id,
        status=str(record.get("status") or "unknown"),
        ref=str(record.get("ref") or ""),
        sha=str(record.get("sha") or "")[:8],
        created_at=str(record.get("created_at") or ""),
        duration_s=float(record.get("duration_s") or 0.0),
        jobs=len(jobs),
        passed=sum(int(t.get("passed") or 0) for t in tests),
        failed=sum(int(t.get("failed") or 0) + int(t.get("errors") or 0) for t in tests),
        coverage=round(sum(coverages) / len(coverages), 2) if coverages else None,
        href=href,
    )


def duration_chart(rows: Sequence[HistoryRow]) -> Chart:
    """One bar per pipeline, oldest on the left, coloured by status."""
    ordered = list(reversed(rows))
    top = max((r.duration_s for r in ordered), default=0.0) or 1.0
    return Chart(_bars(ordered, [r.duration_s / top for r in ordered], "{:.1f}s", "duration"),
                 "", f"{top:.1f}s")  # fmt: skip


def tests_chart(rows: Sequence[HistoryRow]) -> Chart:
    """Failed tests as red bars over the total (passed + failed) in grey."""
    ordered = list(reversed(rows))
    top = max((r.passed + r.failed for r in ordered), default=0) or 1
    step = min(MAX_BAR_STEP, CHART_W / max(1, len(ordered)))
    bars = []
    for index, row in enumerate(ordered):
        total_h = (row.passed + row.failed) / top * (CHART_H - 4)
        failed_h = row.failed / top * (CHART_H - 4)
        x = index * step + 1
        title = f"#{row.id}: {row.passed} passed, {row.failed} failed"
        bars.append(ChartBar(x, CHART_H - total_h, step - 2, total_h - failed_h, "success", title))
        if failed_h:
            bars.append(ChartBar(x, CHART_H - failed_h, step - 2, failed_h, "failed", title))
    return Chart(tuple(bars), "", str(top))


def coverage_chart(rows: Sequence[HistoryRow]) -> Chart:
    """Mean coverage of the pipeline's jobs as a line (0-100 %)."""
    ordered = [r for r in reversed(rows) if r.coverage is not None]
    step = CHART_W / max(1, len(ordered) - 1) if len(ordered) > 1 else 0.0
    height = CHART_H - 4
    points = " ".join(
        f"{i * step if step else CHART_W / 2:.1f},{CHART_H - (r.coverage or 0) / 100 * height:.1f}"
        for i, r in enumerate(ordered)
    )
    return Chart((), points, "100%")


def _bars(
    rows: Sequence[HistoryRow], ratios: Sequence[float], fmt: str, what: str
) -> tuple[ChartBar, ...]:
    step = min(MAX_BAR_STEP, CHART_W / max(1, len(rows)))
    return tuple(
        ChartBar(
            i * step + 1,
            CHART_H - max(1.0, ratio * (CHART_H - 4)),
            step - 2,
            max(1.0, ratio * (CHART_H - 4)),
            row.status,
            f"#{row.id}: {what} {fmt.format(row.duration_s)}, {row.status}",
        )
        for i, (row, ratio) in enumerate(zip(rows, ratios, strict=True))
    )
