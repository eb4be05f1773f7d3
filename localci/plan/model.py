"""The plan: which jobs GitLab would create for one pipeline context, and how they relate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from localci.config.model import (
    AllowFailure,
    Artifacts,
    Cache,
    Environment,
    Image,
    Job,
    Retry,
    Service,
)
from localci.plan.context import PipelineContext
from localci.plan.variables import VarValue


@dataclass(frozen=True, slots=True)
class PlannedNeed:
    """One resolved need: `job` is a concrete (parallel-expanded) job name."""

    job: str
    artifacts: bool = True
    optional: bool = False


@dataclass(frozen=True, slots=True)
class PipelineNeed:
    """A `needs:pipeline:job` of a child pipeline's job: `job`'s artifacts and dotenv from the
    pipeline `pipeline` names (an expression, usually `$PARENT_PIPELINE_ID`, expanded when
    the job runs)."""

    job: str
    pipeline: str


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What running one job takes from its configuration, `default:` already applied: the
    executor and the reports read this, never the configuration model (`PlannedJob.job`).

    `retry` is `Retry()` (no retry) for a job without `retry:`; `timeout` is the configured
    duration text (the executor parses it and falls back to its default); `unsupported` names
    the keywords localci does not emulate for this job.
    """

    trigger: bool
    before_script: tuple[str, ...]
    script: tuple[str, ...]
    after_script: tuple[str, ...]
    image: Image | None
    services: tuple[Service, ...]
    cache: tuple[Cache, ...]
    artifacts: Artifacts | None
    coverage: str | None
    timeout: str | None
    retry: Retry
    environment: Environment | None
    resource_group: str | None
    pipeline_needs: tuple[PipelineNeed, ...]
    unsupported: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job instance as GitLab would create it (or would leave out, `included=False`).

    `needs` is None in stage mode (no `needs:` keyword); an empty tuple is DAG mode with no
    predecessor. `artifact_sources` lists the jobs whose artifacts and dotenv this job
    receives, in extraction order. For a job left out (`included=False`) `needs` only shows
    its configured needs, expanded to instance names but neither checked nor filtered, and
    `artifact_sources` is empty. `spec` is what running it takes; `job`, its configuration,
    is for the planner and for listing the configuration itself.
    """

    name: str
    group_name: str
    stage: str
    stage_index: int
    job: Job
    spec: JobSpec
    included: bool
    when: str
    allow_failure: AllowFailure
    needs: tuple[PlannedNeed, ...] | None
    artifact_sources: tuple[str, ...]
    yaml_variables: Mapping[str, VarValue]
    predefined: Mapping[str, str]
    node_index: int | None
    node_total: int
    start_in: str | None
    reason: str

    @property
    def manual(self) -> bool:
        return self.when == "manual"

    @property
    def dag(self) -> bool:
        """True when the job is scheduled by `needs` instead of the stage barrier."""
        return self.needs is not None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the executor needs to know about one pipeline, decided up front."""

    context: PipelineContext
    stages: tuple[str, ...]
    jobs: tuple[PlannedJob, ...]
    created: bool
    workflow_reason: str
    name: str | None = None
    user_variables: Mapping[str, VarValue] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    _index: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lookups by name are hot in the executor; index once instead of scanning per call.
        index = {job.name: position for position, job in enumerate(self.jobs)}
        object.__setattr__(self, "_index", index)

    @property
    def included(self) -> tuple[PlannedJob, ...]:
        """The jobs that are part of the pipeline, in definition order."""
        if not self.created:
            return ()
        return tuple(job for job in self.jobs if job.included)

    def job(self, name: str) -> PlannedJob | None:
        position = self._index.get(name)
        return None if position is None else self.jobs[position]

    def group(self, group_name: str) -> tuple[PlannedJob, ...]:
        """Every instance of a (possibly parallel) job, by its configured name."""
        return tuple(job for job in self.jobs if job.group_name == group_name)

    def stage_jobs(self, stage: str) -> tuple[PlannedJob, ...]:
        """The included jobs of one stage, in definition order."""
        return tuple(job for job in self.included if job.stage == stage)

    def ordered(self) -> tuple[PlannedJob, ...]:
        """Included jobs in GitLab's display order: by stage, then definition order."""
        return tuple(sorted(self.included, key=lambda job: job.stage_index))
