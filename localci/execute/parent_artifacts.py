"""`needs:pipeline:job` in a child pipeline: artifacts and dotenv variables of a job of an
ancestor pipeline (usually `pipeline: $PARENT_PIPELINE_ID`), around the child's own hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from localci.execute.artifacts import read_record
from localci.execute.job import JobHooks
from localci.execute.workspace import Workspace
from localci.plan.model import PlannedJob
from localci.plan.variables import VarValue, expand_runner
from localci.state import Store


class ParentArtifacts(JobHooks):
    """A child's hooks: its own caches and artifacts, plus `needs:pipeline:job` artifacts (and
    dotenv) of an ancestor pipeline, usually `pipeline: $PARENT_PIPELINE_ID`."""

    def __init__(
        self,
        inner: JobHooks,
        store: Store,
        ancestors: Mapping[str, int],
        variables: Mapping[str, VarValue],
    ) -> None:
        self.inner = inner
        self.store = store
        self.ancestors = dict(ancestors)
        self.variables = variables

    def _parent_needs(self, job: PlannedJob) -> list[tuple[str, str, int | None]]:
        out = []
        values = {**job.predefined, **{k: v.value for k, v in job.yaml_variables.items()}}
        values.update({k: v.value for k, v in self.variables.items()})
        for need in job.spec.pipeline_needs:
            resolved = expand_runner(need.pipeline, values)
            out.append((need.job, resolved, self.ancestors.get(resolved)))
        return out

    def dotenv(self, job: PlannedJob) -> Mapping[str, VarValue]:
        variables = dict(self.inner.dotenv(job))
        for name, _, pipeline_id in self._parent_needs(job):
            record = read_record(self.store, pipeline_id, name) if pipeline_id else None
            if record is not None:
                variables.update({k: VarValue(v) for k, v in record.dotenv.items()})
        return variables

    def before(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        notes: list[str],
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.inner.before(job, ws, env, notes, log)
        for name, resolved, pipeline_id in self._parent_needs(job):
            if pipeline_id is None:
                notes.append(
                    f"needs:pipeline {resolved!r} is not a parent pipeline of this run: "
                    f"artifacts of {name!r} not downloaded"
                )
                continue
            from localci.execute.transfer import download_artifacts

            download_artifacts(self.store, pipeline_id, name, ws, notes, log)

    def after(
        self,
        job: PlannedJob,
        ws: Workspace,
        env: Mapping[str, str],
        succeeded: bool,
        log_text: Callable[[], str],
        notes: list[str],
        log: Callable[[str], None] | None = None,
    ) -> dict[str, object]:
        return self.inner.after(job, ws, env, succeeded, log_text, notes, log)
