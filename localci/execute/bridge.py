"""The trigger job's side of a downstream pipeline (GitLab's Ci::Bridge): its log, its status
taken from the downstream pipeline's, the downstream jobs shown under it, and the downstream
pipeline's record.

Status as on GitLab: without `strategy` the trigger job succeeds once the child is created and
the child runs on its own (its failure does not fail the parent); with `strategy: depend` the
job takes the child's result (success -> success, canceled -> canceled, failed/skipped ->
failed); `strategy: mirror` mirrors it (skipped stays skipped, blocked stays blocked).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from localci.events import Event, JobFinished, JobOutput, JobStarted, Notice
from localci.files import atomic_write_json
from localci.plan.model import Plan, PlannedJob
from localci.results import Downstream, JobResult, Status

NAME_SEPARATOR = " > "
_MIRROR = {
    "success": Status.SUCCESS,
    "failed": Status.FAILED,
    "canceled": Status.CANCELED,
    "skipped": Status.SKIPPED,
    "blocked": Status.CREATED,
}
_DEPEND = {**_MIRROR, "skipped": Status.FAILED}


def bridge_status(strategy: str | None, child_id: int, child_status: str) -> tuple[Status, str]:
    """The status (and its reason) of a trigger job that waited for its downstream pipeline."""
    table = _DEPEND if strategy == "depend" else _MIRROR
    status = table.get(child_status, Status.FAILED)
    reason = "" if status is Status.SUCCESS else f"downstream pipeline #{child_id} {child_status}"
    if child_status == "blocked":
        reason = f"downstream pipeline #{child_id} is blocked by a manual job"
    return status, reason


class TriggerLog:
    """The trigger job's log: every line to its file and to the reporters."""

    def __init__(self, log: TextIO, name: str, emit: Callable[[Event], None]) -> None:
        self.log = log
        self.name = name
        self.emit = emit

    def __call__(self, line: str) -> None:
        self.log.write(line + "\n")
        self.log.flush()
        self.emit(JobOutput(self.name, line))


def nested_name(trigger: str, job: str) -> str:
    """How a child's job is shown: under its trigger job."""
    return f"{trigger}{NAME_SEPARATOR}{job}"


def nested_emit(emit: Callable[[Event], None], trigger: PlannedJob) -> Callable[[Event], None]:
    """The parent's reporters see the child's jobs named `trigger > job`, in the trigger's
    stage; the child's own pipeline events are not theirs to see."""

    def nested(event: Event) -> None:
        if isinstance(event, JobStarted):
            emit(JobStarted(nested_name(trigger.name, event.name), trigger.stage, event.attempt))
        elif isinstance(event, JobOutput):
            emit(JobOutput(nested_name(trigger.name, event.name), event.line))
        elif isinstance(event, JobFinished):
            result = event.result
            emit(
                JobFinished(
                    replace(
                        result, name=nested_name(trigger.name, result.name), stage=trigger.stage
                    )
                )
            )
        elif isinstance(event, Notice):
            name = nested_name(trigger.name, event.job) if event.job else trigger.name
            emit(Notice(event.text, name))

    return nested


def downstream_json(downstream: Downstream) -> dict[str, object]:
    from localci.execute.pipeline import job_json

    return {
        "kind": downstream.kind,
        "source": downstream.source,
        "strategy": downstream.strategy,
        "status": downstream.status,
        "pipeline": downstream.pipeline_id,
        "record_dir": downstream.record_dir,
        "jobs": [job_json(j) for j in downstream.jobs],
    }


def write_child_record(
    record: Path,
    plan: Plan,
    child_id: int,
    status: str,
    results: Mapping[str, JobResult],
    duration: float,
    parent_id: int,
    trigger: PlannedJob,
) -> None:
    from localci.execute.pipeline import job_json

    ctx = plan.context
    atomic_write_json(
        record / "pipeline.json",
        {
            "id": child_id,
            "status": status,
            "ref": ctx.ref,
            "tag": ctx.ref_is_tag,
            "sha": ctx.sha,
            "source": ctx.source,
            "parent": {"pipeline": parent_id, "job": trigger.name},
            "duration_s": round(duration, 3),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "jobs": [job_json(r) for r in results.values()],
        },
    )
