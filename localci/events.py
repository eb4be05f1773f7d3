"""Events the executor emits while a pipeline runs; reporters render them (never the reverse)."""

from __future__ import annotations

from dataclasses import dataclass

from localci.results import JobResult, RunResult


@dataclass(frozen=True, slots=True)
class PipelineStarted:
    pipeline_id: int
    jobs: tuple[tuple[str, str, str], ...]  # (name, stage, when) in display order
    record_dir: str


@dataclass(frozen=True, slots=True)
class JobStarted:
    name: str
    stage: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class JobOutput:
    name: str
    line: str


@dataclass(frozen=True, slots=True)
class JobFinished:
    result: JobResult


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning or information for the user, optionally about one job."""

    text: str
    job: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineFinished:
    result: RunResult


Event = PipelineStarted | JobStarted | JobOutput | JobFinished | Notice | PipelineFinished
