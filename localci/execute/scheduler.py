"""Runs a plan's jobs in GitLab's order: stage barrier or `needs` DAG, `when`, failures.

The scheduler owns statuses and ordering only; running one job is delegated to a callable,
so the status rules are testable without starting any process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from localci import interrupts
from localci.plan.model import PlannedJob
from localci.results import JobResult, Status, composite, composite_of, contribution, decide

RunJob = Callable[[PlannedJob, threading.Event], JobResult]
Report = Callable[[JobResult], None]


@dataclass
class _State:
    """Mutable bookkeeping of one run (private to the scheduler)."""

    status: dict[str, Status]
    allowed: dict[str, bool]
    results: dict[str, JobResult] = field(default_factory=dict)
    running: dict[Future[JobResult], PlannedJob] = field(default_factory=dict)
    busy_groups: set[str] = field(default_factory=set)
    stop_starting: bool = False
    # Contributions of each stage's jobs, recomputed only for stages a status changed in: with
    # hundreds of jobs, recomputing every stage at every settle would be quadratic.
    stage_values: dict[int, frozenset[str]] = field(default_factory=dict)
    dirty_stages: set[int] = field(default_factory=set)


class Scheduler:
    """Decides, as predecessors settle, which jobs run, wait, or are skipped."""

    def __init__(
        self,
        jobs: Sequence[PlannedJob],
        run_job: RunJob,
        report: Report,
        *,
        max_parallel: int,
        manual: Sequence[str] = (),
        cancel_on_failure: bool = False,
        cancel: threading.Event | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self.run_job = run_job
        self.report = report
        self.max_parallel = max(1, max_parallel)
        self.manual = set(manual)
        self.cancel_on_failure = cancel_on_failure
        self.cancel = cancel or threading.Event()
        self.by_name = {job.name: job for job in self.jobs}
        self.stage_order = sorted({job.stage_index for job in self.jobs})
        self.by_stage: dict[int, list[PlannedJob]] = {}
        for job in self.jobs:
            self.by_stage.setdefault(job.stage_index, []).append(job)

    def run(self) -> dict[str, JobResult]:
        state = _State(
            status={j.name: Status.CREATED for j in self.jobs},
            allowed={j.name: j.allow_failure.allowed for j in self.jobs},
            dirty_stages=set(self.stage_order),
        )
        with ThreadPoolExecutor(
            max_workers=self.max_parallel, thread_name_prefix="localci-job"
        ) as pool:
            try:
                self._loop(state, pool)
            except BaseException:
                self.cancel.set()
                self._drain(state)
                self._cancel_remaining(state, "the pipeline was interrupted")
                raise
        return state.results

    def _loop(self, state: _State, pool: ThreadPoolExecutor) -> None:
        while True:
            interrupts.raise_if_requested()
            if self.cancel.is_set() or interrupts.requested():
                state.stop_starting = True
            progressed = self._settle(state, pool)
            if not state.running:
                if not progressed:
                    break
                continue
            done, _ = wait(list(state.running), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(state, state.running.pop(future), future.result())
        self._cancel_remaining(
            state, "blocked: waiting for a manual job that was not run", blocked=True
        )

    def _settle(self, state: _State, pool: ThreadPoolExecutor) -> bool:
        """Decide every job whose predecessors are settled; True if anything changed."""
        changed = False
        stage_status = self._stage_prefix_status(state)
        for job in [job for job in self.jobs if state.status[job.name] is Status.CREATED]:
            verdict = decide(
                job.when, self._predecessor_status(job, state, stage_status), dag=job.dag
            )
            if verdict == "wait":
                continue
            if verdict == "skip":
                self._set(
                    state,
                    job,
                    JobResult(
                        job.name,
                        job.stage,
                        Status.SKIPPED,
                        job.allow_failure.allowed,
                        reason=_skip_reason(job),
                    ),
                )
            elif state.stop_starting:
                self._set(state, job, _canceled(job, "not started: the pipeline was stopped"))
            elif (
                job.when == "manual"
                and job.name not in self.manual
                and job.group_name not in self.manual
            ):
                self._set(
                    state,
                    job,
                    JobResult(
                        job.name,
                        job.stage,
                        Status.MANUAL,
                        job.allow_failure.allowed,
                        reason=f"manual job: run it with `localci run --manual {job.name!r}`",
                    ),
                )
            elif not self._start(state, pool, job):
                continue
            changed = True
        return changed

    def _start(self, state: _State, pool: ThreadPoolExecutor, job: PlannedJob) -> bool:
        if len(state.running) >= self.max_parallel:
            return False
        group = job.spec.resource_group
        if group and group in state.busy_groups:
            return False
        if group:
            state.busy_groups.add(group)
        state.status[job.name] = Status.RUNNING
        state.dirty_stages.add(job.stage_index)
        state.running[pool.submit(self._run_one, job)] = job
        return True

    def _run_one(self, job: PlannedJob) -> JobResult:
        if job.when == "delayed" and job.start_in:
            _sleep_unless(self.cancel, _duration_s(job.start_in))
        if self.cancel.is_set():
            return _canceled(job, "canceled before it started")
        return self.run_job(job, self.cancel)

    def _finish(self, state: _State, job: PlannedJob, result: JobResult) -> None:
        if job.spec.resource_group:
            state.busy_groups.discard(job.spec.resource_group)
        self._set(state, job, result)
        failed = result.status is Status.FAILED and not result.allow_failure
        if failed and self.cancel_on_failure:
            state.stop_starting = True
            self.cancel.set()

    def _set(self, state: _State, job: PlannedJob, result: JobResult) -> None:
        state.status[job.name] = result.status
        state.allowed[job.name] = result.allow_failure
        state.dirty_stages.add(job.stage_index)
        state.results[job.name] = result
        self.report(result)

    def _stage_prefix_status(self, state: _State) -> Mapping[int, str]:
        """Composite of all jobs in stages before each stage index (stage mode, linear)."""
        for index in state.dirty_stages:
            state.stage_values[index] = frozenset(
                contribution(state.status[j.name], state.allowed[j.name])
                for j in self.by_stage[index]
            )
        state.dirty_stages.clear()
        out: dict[int, str] = {}
        seen: frozenset[str] = frozenset()
        for index in self.stage_order:
            out[index] = composite_of(seen, dag=False)
            seen |= state.stage_values[index]
        return out

    def _predecessor_status(
        self, job: PlannedJob, state: _State, stage_status: Mapping[int, str]
    ) -> str:
        if job.needs is None:
            return stage_status[job.stage_index]
        needs = [
            (state.status[n.job], state.allowed[n.job]) for n in job.needs if n.job in state.status
        ]
        return composite(needs, dag=True)

    def _drain(self, state: _State) -> None:
        for future, job in list(state.running.items()):
            try:
                result = future.result()
            except Exception as exc:  # the job runner failed: report, never hide it
                result = _canceled(job, f"localci failed while running the job: {exc}")
            self._set(state, job, result)
        state.running.clear()

    def _cancel_remaining(self, state: _State, reason: str, *, blocked: bool = False) -> None:
        for job in self.jobs:
            if state.status[job.name] is Status.CREATED:
                if blocked:
                    result = JobResult(
                        job.name,
                        job.stage,
                        Status.CREATED,
                        job.allow_failure.allowed,
                        reason=reason,
                    )
                else:
                    result = _canceled(job, reason)
                self._set(state, job, result)


def _canceled(job: PlannedJob, reason: str) -> JobResult:
    return JobResult(job.name, job.stage, Status.CANCELED, job.allow_failure.allowed, reason=reason)


def _skip_reason(job: PlannedJob) -> str:
    if job.when == "on_failure":
        return "when: on_failure, and nothing before it failed"
    if job.dag:
        return "a job it needs did not succeed"
    return "an earlier stage failed"


def _sleep_unless(cancel: threading.Event, seconds: float) -> None:
    cancel.wait(seconds)


def _duration_s(text: str) -> float:
    from localci.execute.durations import parse_duration

    return parse_duration(text) or 0.0
