"""Reading back the records of past pipeline runs, `.localci/pipelines/<id>/pipeline.json`
and the job logs it names, for `localci logs`. The executor writes them (execute/pipeline.py,
execute/downstream.py for child pipelines); results.py is the status vocabulary they use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localci.errors import UsageError
from localci.state import Store


def read_pipeline(project_dir: Path, pipeline_id: int | None) -> dict[str, Any]:
    """The record of pipeline `pipeline_id` (default: the latest run)."""
    store = Store(project_dir)
    if pipeline_id is None:
        pipeline_id = store.latest_top_level_pipeline_id()
        if pipeline_id is None:
            raise UsageError("no run recorded yet in this project; run `localci run` first")
    path = store.pipeline_dir(pipeline_id) / "pipeline.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no pipeline #{pipeline_id} recorded in this project") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"the record of pipeline #{pipeline_id} cannot be read: {exc}") from None
    return data


NESTED = " > "


def all_jobs(record: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """The record's jobs, each followed by the jobs of its child pipeline (`trigger > job`)."""
    out: list[dict[str, Any]] = []
    for entry in record.get("jobs", []):
        name = f"{prefix}{entry['name']}"
        out.append({**entry, "name": name})
        downstream = entry.get("downstream")
        if isinstance(downstream, dict):
            out.extend(all_jobs(downstream, f"{name}{NESTED}"))
    return out


def job_log(record: dict[str, Any], job: str) -> str:
    """The log text of `job` in a pipeline record (`trigger > job` for a child's job, or the
    child job's own name when only one job has it)."""
    jobs = all_jobs(record)
    names = [entry["name"] for entry in jobs]
    entry = next((e for e in jobs if e["name"] == job), None)
    if entry is None:
        nested = [e for e in jobs if e["name"].rpartition(NESTED)[2] == job]
        entry = nested[0] if len(nested) == 1 else None
    if entry is None:
        listed = ", ".join(names) or "none"
        raise UsageError(f"pipeline #{record.get('id')} has no job {job!r} (jobs: {listed})")
    if not entry.get("log"):
        raise UsageError(
            f"job {job!r} did not run in pipeline #{record.get('id')} ({entry.get('status')})"
        )
    try:
        return Path(entry["log"]).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"the log of {job!r} cannot be read: {exc}") from None
