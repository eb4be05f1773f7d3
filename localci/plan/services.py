"""What a job's `image:` and `services:` are once its variables are in, and what to tell a
user whose services cannot be started (no container engine): each service, the host names
the job would reach it by, and what to do instead.

Host-name derivation lives in `localci.config.services` (`host_names`), shared with any
executor that does start services.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from localci.config.services import host_names
from localci.plan.model import PlannedJob
from localci.plan.variables import CircularVariableError, VarValue, expand_gitlab

_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True, slots=True)
class JobService:
    """One service of a job: its image with variables expanded and its host names."""

    image: str
    names: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.image} (host {' or '.join(self.names)})" if self.names else self.image


def job_values(job: PlannedJob, user: Mapping[str, VarValue] | None = None) -> dict[str, str]:
    """The variable values a job's keywords are expanded with: predefined, then the job's
    YAML variables, then the user's (`--var`, variables files), as GitLab orders them."""
    merged = {k: VarValue(v) for k, v in job.predefined.items()}
    merged.update(job.yaml_variables)
    merged.update(user or {})
    try:
        expanded = expand_gitlab(merged)
    except CircularVariableError:
        expanded = merged
    return {name: var.value for name, var in expanded.items()}


def expand_name(text: str, values: Mapping[str, str]) -> str:
    """`$VAR` and `${VAR}` in an image name replaced (unknown ones by nothing, as the runner)."""
    if "$" not in text:
        return text
    return _REFERENCE.sub(lambda m: values.get(m.group(1) or m.group(2), ""), text)


def image_name(job: PlannedJob, user: Mapping[str, VarValue] | None = None) -> str | None:
    """The job's `image:` name as the runner would pull it, or None without `image:`."""
    if job.spec.image is None:
        return None
    return expand_name(job.spec.image.name, job_values(job, user))


def job_services(
    job: PlannedJob, user: Mapping[str, VarValue] | None = None
) -> tuple[JobService, ...]:
    """Each `services:` entry with its image expanded and every host name it would have."""
    if not job.spec.services:
        return ()
    values = job_values(job, user)
    out = []
    for service in job.spec.services:
        image = expand_name(service.name, values)
        out.append(JobService(image, host_names(image, service.alias)))
    return tuple(out)


def unstarted_services_note(
    job: PlannedJob, user: Mapping[str, VarValue] | None = None
) -> str | None:
    """One paragraph for a job whose services are not started: which, and what to do."""
    services = job_services(job, user)
    if not services:
        return None
    listed = "; ".join(service.describe() for service in services)
    return (
        f"services not started: {listed}. The job runs on this machine without them; to have "
        "them, install a container engine (podman or docker), or run each server locally and "
        f"point the job at it, {_variable_advice(job, services, user)}"
    )


def _variable_advice(
    job: PlannedJob, services: tuple[JobService, ...], user: Mapping[str, VarValue] | None
) -> str:
    names = [name for service in services for name in service.names]
    values = job_values(job, user)
    suggestions = []
    for variable in job.yaml_variables:
        value = values.get(variable, "")
        local = _with_localhost(value, names)
        if local != value:
            suggestions.append(f"--var {variable}={local}")
    if suggestions:
        return "e.g. " + " ".join(suggestions[:3])
    return "e.g. --var DB_HOST=localhost for the variable your job reads the host from"


def _with_localhost(value: str, names: list[str]) -> str:
    """`value` with a service host name (the whole value, or after `@` or `//`) -> localhost."""
    for name in names:
        if value == name:
            return "localhost"
        pattern = re.compile(rf"(?<=[@/]){re.escape(name)}(?=[:/?]|$)")
        if pattern.search(value):
            return pattern.sub("localhost", value)
    return value
