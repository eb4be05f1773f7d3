"""The pipeline page: one self-contained HTML file per run (inline CSS, JS and SVG, no
network), rendered with Jinja2's autoescaping, and the history page over recent runs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from localci import __version__
from localci.errors import UsageError
from localci.files import atomic_write_text, user_cache_dir
from localci.report.history import coverage_chart, duration_chart, history_rows, tests_chart
from localci.report.layout import stage_graph, timeline
from localci.report.logview import log_html
from localci.report.pagemodel import JobView, PipelineView, human_duration, pipeline_view
from localci.state import Store

PAGE_NAME = "pipeline.html"
HISTORY_NAME = "history.html"
TEMPLATES = Path(__file__).parent / "templates"
STATUS_ICONS = {
    "success": "✓",
    "failed": "✕",
    "warning": "!",
    "canceled": "⊘",
    "skipped": "»",
    "manual": "▶",
    "created": "○",
    "running": "◔",
    "blocked": "▶",
}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["size"] = _size
    env.filters["seconds"] = human_duration
    env.globals["icon"] = lambda status: STATUS_ICONS.get(status, "?")
    env.globals["version"] = __version__
    env.globals["stage_graph"] = stage_graph
    env.globals["all_jobs"] = all_jobs
    env.globals["log_html"] = log_html
    env.globals.update(
        duration_chart=duration_chart, tests_chart=tests_chart, coverage_chart=coverage_chart
    )
    return env


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs: compiling them costs more than rendering."""
    directory = user_cache_dir() / f"templates-{__version__}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile each time
    return jinja2.FileSystemBytecodeCache(str(directory))


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def warm_up() -> None:
    """Load (or compile) the page's templates ahead of use."""
    _environment().get_template("pipeline.html.j2")
    _environment().get_template("macros.j2")


def render_pipeline(pipeline: PipelineView) -> str:
    """The page's HTML text."""
    return (
        _environment()
        .get_template("pipeline.html.j2")
        .render(
            p=pipeline,
            timeline=timeline(pipeline),
            tests=pipeline.tests,
        )
    )


def all_jobs(pipeline: PipelineView) -> list[JobView]:
    """The pipeline's jobs and those of its downstream pipelines, at any depth."""
    out = []
    for job in pipeline.jobs:
        out.append(job)
        for child in job.downstream:
            out.extend(all_jobs(child))
    return out


def read_record(record_dir: Path) -> dict[str, Any]:
    path = record_dir / "pipeline.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no pipeline record in {record_dir}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"the record {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"the record {path} is not a pipeline record")
    return data


def write_pipeline_page(record_dir: Path, output: Path | None = None) -> Path:
    """Write the page of the pipeline recorded in `record_dir` (default: into it)."""
    target = (output or record_dir / PAGE_NAME).resolve()
    view = pipeline_view(read_record(record_dir), record_dir, target.parent)
    atomic_write_text(target, render_pipeline(view), durable=False)
    return target


def pipeline_page(project_dir: Path, pipeline_id: int | None, output: Path | None) -> Path:
    """`localci report`: the page of one pipeline (default: the latest top-level one)."""
    store = Store(project_dir)
    if pipeline_id is None:
        pipeline_id = store.latest_top_level_pipeline_id()
        if pipeline_id is None:
            raise UsageError("no run recorded yet in this project; run `localci run` first")
    record_dir = store.pipeline_dir(pipeline_id)
    if not (record_dir / "pipeline.json").is_file():
        raise UsageError(f"no pipeline #{pipeline_id} recorded in this project")
    return write_pipeline_page(record_dir, output)


def history_page(project_dir: Path, output: Path | None, *, limit: int = 30) -> Path:
    """`localci report --history`: recent pipelines with small charts, linking to their pages."""
    store = Store(project_dir)
    target = (output or store.path("pipelines") / HISTORY_NAME).resolve()
    rows = history_rows(store, target.parent, limit=limit, page=write_pipeline_page)
    if not rows:
        raise UsageError("no run recorded yet in this project; run `localci run` first")
    html = (
        _environment().get_template("history.html.j2").render(rows=rows, project=project_dir.name)
    )
    atomic_write_text(target, html, durable=False)
    return target
