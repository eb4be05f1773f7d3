"""Which executor runs a job (`--executor auto|container|venv|host`), and the seam between the
job runner and an executor: a session that runs the job's programs in some place.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Literal, Protocol

from localci.execute.environment import RuntimeFacts
from localci.execute.image_tools import job_package_manager
from localci.execute.interpreters import request_for_image
from localci.execute.process import ProcessOutcome
from localci.execute.workspace import Workspace
from localci.plan.model import PlannedJob
from localci.plan.variables import VarValue

__all__ = [
    "EXECUTOR_MODES",
    "ContainerExecutor",
    "ScriptSession",
    "executor_for",
    "job_image",
    "services_not_started",
]

EXECUTOR_MODES = ("auto", "container", "venv", "host")
Place = Literal["container", "venv", "host"]


class ScriptSession(Protocol):
    """A job's place to run in: its environment as the job sees it (`env`), the same
    environment with this machine's paths for caches and artifacts (`host_env`), and `run`,
    which runs before_script+script (`after=False`) or after_script in a fresh shell."""

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def host_env(self) -> Mapping[str, str]: ...

    def run(
        self,
        commands: Sequence[str],
        *,
        after: bool,
        trace: bool,
        timeout_s: float | None,
        cancel: threading.Event | None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ProcessOutcome: ...


class ContainerExecutor(Protocol):
    """Runs the jobs `wants` accepts in containers, one session per job attempt."""

    def wants(self, job: PlannedJob) -> bool: ...

    def session(
        self,
        job: PlannedJob,
        ws: Workspace,
        facts: RuntimeFacts,
        dotenv: Mapping[str, VarValue],
        log: Callable[[str], None],
        notes: list[str],
        cancel: threading.Event,
    ) -> AbstractContextManager[ScriptSession]: ...


def job_image(job: PlannedJob, user: Mapping[str, VarValue] | None = None) -> str | None:
    """The job's image name (job or `default:`), with the job's variables expanded, as GitLab
    expands `image:` before the runner sees it; None when the job has no image."""
    image = job.spec.image
    if image is None or not image.name.strip():
        return None
    return expand_name(image.name, job, user)


def expand_name(name: str, job: PlannedJob, user: Mapping[str, VarValue] | None = None) -> str:
    """`name` with the job's variables (and the user's, which win) expanded, unknown ones
    empty, as the runner expands `image:` and `services:`."""
    if "$" not in name:
        return name
    values = {**job.predefined, **{k: v.value for k, v in job.yaml_variables.items()}}
    values.update({k: v.value for k, v in (user or {}).items()})
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ""), name)


def services_not_started(job: PlannedJob) -> str:
    """The warning for a job whose services cannot start: each service, its aliases, and
    what to do about it."""
    from localci.execute.container.services import service_aliases

    described = []
    for service in job.spec.services:
        image = expand_name(service.name, job)
        described.append(f"{image} as {', '.join(service_aliases(image, service.alias))}")
    named = "; ".join(described)
    return (
        f"services not started (the job runs outside a container): {named}. Install Docker or "
        "Podman to run them, or start the servers yourself and point the job's variables "
        "at them (--var HOST=localhost)"
    )


def executor_for(
    job: PlannedJob,
    mode: str,
    engine_usable: bool,
    user: Mapping[str, VarValue] | None = None,
) -> Place:
    """Where `job` runs under `--executor mode` (see README, "Executors").

    auto: a Python image in a venv, any other image in a container when an engine is usable,
    else on this machine; a Python image with `services:` in a container too, since only there
    can the job reach its services by their aliases, and one whose script runs the image's
    package manager (`apt-get install`...), which a venv does not have. container: every job
    with an image in its image; venv/host: never a container. A job without an image runs in
    a venv (host under `--executor host`).
    """
    if mode == "host":
        return "host"
    image = job_image(job, user)
    if mode == "venv" or image is None or not engine_usable:
        return "venv"
    if mode == "container" or request_for_image(image) is None or job.spec.services:
        return "container"
    if job_package_manager(job) is not None:
        return "container"
    return "venv"
