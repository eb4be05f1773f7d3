"""Job and pipeline outcomes, and GitLab's status arithmetic (docs/SEMANTICS.md §5.1, §5.4)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    """A job's status as GitLab names it."""

    CREATED = "created"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    MANUAL = "manual"

    @property
    def complete(self) -> bool:
        return self in COMPLETE


COMPLETE = frozenset({Status.SUCCESS, Status.FAILED, Status.CANCELED, Status.SKIPPED})


@dataclass(frozen=True, slots=True)
class TestSummary:
    """Counts from `artifacts:reports:junit` files."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    failed_names: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors


@dataclass(frozen=True, slots=True)
class Downstream:
    """The pipeline a trigger job created (or could not run): shown nested under the job.

    `kind` is "child" or "project"; `status` a pipeline status, "running" while a child
    runs in the background, or "not run" (a multi-project pipeline localci cannot run).
    """

    kind: str
    source: str
    strategy: str | None = None
    status: str = "not run"
    pipeline_id: int | None = None
    jobs: tuple[JobResult, ...] = ()
    record_dir: str | None = None

    @property
    def unknown(self) -> bool:
        """A pipeline the trigger job depends on whose result nobody knows."""
        return self.status == "not run" and self.strategy in ("depend", "mirror")


@dataclass(frozen=True, slots=True)
class JobResult:
    """What happened to one job of the plan."""

    name: str
    stage: str
    status: Status
    allow_failure: bool = False
    exit_code: int | None = None
    duration_s: float = 0.0
    log: str | None = None
    reason: str = ""
    attempts: int = 0
    tests: TestSummary | None = None
    coverage: float | None = None
    notes: tuple[str, ...] = ()
    # Wall-clock (epoch seconds) bounds of the job's attempts, for the pipeline page's timeline.
    started_at: float | None = None
    finished_at: float | None = None
    downstream: Downstream | None = None
    python_substitution: str = ""  # "ran on 3.11 instead of 3.9": the image's Python is missing
    # Services the job ran without (image and host names), for the summary and failure tail.
    unstarted_services: tuple[str, ...] = ()

    @property
    def failed_allowed(self) -> bool:
        return self.status in (Status.FAILED, Status.CANCELED) and self.allow_failure


@dataclass(frozen=True, slots=True)
class RunResult:
    """A whole pipeline run."""

    pipeline_id: int
    status: str
    jobs: tuple[JobResult, ...]
    duration_s: float
    record_dir: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.status in ("success", "blocked", "skipped")


def contribution(status: Status, allow_failure: bool) -> str:
    """How one predecessor counts in a composite status."""
    if allow_failure and status in (Status.FAILED, Status.CANCELED):
        return "success_with_warnings"
    if allow_failure and status is Status.MANUAL:
        return "ignored"
    return status.value


def composite(predecessors: Iterable[tuple[Status, bool]], *, dag: bool) -> str:
    """GitLab's composite status of a job's predecessors (status/composite.rb)."""
    values = {contribution(status, allowed) for status, allowed in predecessors}
    return composite_of(values, dag=dag)


def composite_of(values: Set[str], *, dag: bool) -> str:
    """`composite` from the set of the predecessors' contributions."""
    if not values:
        return "success"
    settled = {"success", "failed", "canceled", "skipped", "success_with_warnings"}
    if dag and values & {"skipped", "ignored"}:
        return "skipped"
    if dag and not values <= settled:
        return "pending"
    if values <= {"skipped", "ignored"}:
        return "skipped"
    ok = {"success", "skipped", "success_with_warnings", "ignored"}
    if values <= ok:
        return "success"
    if values <= ok | {"canceled"}:
        return "canceled"
    if values & {"running", "created"}:
        return "running"
    if "manual" in values:
        return "manual"
    return "failed"


# Which composite lets a job run, by its `when` (process_build_service.rb).
RUNS_ON: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    # when: (stage mode, DAG mode)
    "on_success": (frozenset({"success", "skipped"}), frozenset({"success"})),
    "manual": (frozenset({"success", "skipped"}), frozenset({"success"})),
    "delayed": (frozenset({"success", "skipped"}), frozenset({"success"})),
    "on_failure": (frozenset({"failed"}), frozenset({"failed"})),
    "always": (
        frozenset({"success", "failed", "skipped"}),
        frozenset({"success", "failed", "skipped"}),
    ),
}


def decide(when: str, status: str, *, dag: bool) -> str:
    """'wait' until predecessors settle; then 'run' or 'skip' by the job's `when`."""
    if status not in ("success", "failed", "canceled", "skipped"):
        return "wait"
    stage_mode, dag_mode = RUNS_ON.get(when, RUNS_ON["on_success"])
    return "run" if status in (dag_mode if dag else stage_mode) else "skip"


def pipeline_status(jobs: Iterable[tuple[Status, bool]]) -> str:
    """The pipeline's status from all its jobs: success, failed, canceled, blocked, skipped."""
    status = composite(jobs, dag=False)
    return {"manual": "blocked", "running": "blocked", "created": "blocked"}.get(status, status)


def with_downstream_status(status: str, results: Iterable[JobResult]) -> str:
    """A passing pipeline whose `strategy: depend` trigger could not run is "unknown", never
    "success": its result depends on a downstream pipeline localci did not run."""
    if status in ("success", "skipped") and any(
        r.downstream is not None and r.downstream.unknown for r in results
    ):
        return "unknown"
    return status
