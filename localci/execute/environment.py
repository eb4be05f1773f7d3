"""The one owner of a job's environment: every executor (venv, host, container) asks here.

Layering follows GitLab (lowest first): predefined and runtime variables, the job's YAML
variables, dotenv variables from needed jobs, then the user's variables (`--var`, variables
file). The result is GitLab-expanded, then runner-expanded, with file-type variables written
to a directory the job can read, and laid over the base environment the executor supplies (the
user's filtered environment on the host, nothing in a container: there the image provides it).
The runner's own `GIT_*` settings, which shape the workspace before any executor starts, come
from the same layers (`git_variables`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localci.plan.model import PlannedJob
from localci.plan.variables import VarValue, expand_gitlab, expand_runner, runtime_variables

__all__ = [
    "DROPPED_ENV",
    "JobPaths",
    "RuntimeFacts",
    "git_variables",
    "host_base",
    "job_environment",
    "runner_environment",
]

# Variables of the user's shell that would break a job's isolation or localci's own control.
DROPPED_ENV = frozenset(
    {
        "VIRTUAL_ENV",
        "PYTHONHOME",
        "PYTHONPATH",
        "CONDA_PREFIX",
        "PIP_USER",
        "__PYVENV_LAUNCHER__",
        "PYTHONSTARTUP",
        "BASH_ENV",
    }
)


@dataclass(frozen=True, slots=True)
class JobPaths:
    """Where the job's directories are, as the job sees them, and where file variables go.

    `file_dir` is the host directory file-type variables are written to; `visible_file_dir`
    is the same directory as the job sees it (a container mounts it elsewhere).
    """

    project_dir: Path
    builds_dir: Path
    file_dir: Path
    visible_file_dir: Path


@dataclass(frozen=True, slots=True)
class RuntimeFacts:
    """What only a running job has: its id, start time, timeout, paths and executor settings."""

    job_id: int
    started_at: str
    timeout_s: int
    paths: JobPaths
    pip_cache_dir: Path | None = None
    offline: bool = False
    disposable: bool = False  # a container thrown away after the job (Docker executor)


def host_base(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's environment a host job starts from: minus localci's own settings and the
    variables that would break a job's isolation."""
    source = os.environ if environ is None else environ
    return {
        k: v for k, v in source.items() if not k.startswith("LOCALCI_") and k not in DROPPED_ENV
    }


def job_environment(
    job: PlannedJob,
    facts: RuntimeFacts,
    dotenv: Mapping[str, VarValue],
    user_variables: Mapping[str, VarValue],
    base: Mapping[str, str],
) -> dict[str, str]:
    """The complete environment of `job`'s script: `base` overlaid with its variables."""
    layers: dict[str, VarValue] = {
        name: VarValue(value) for name, value in {**job.predefined, **_runtime(job, facts)}.items()
    }
    layers.update(job.yaml_variables)
    layers.update(dotenv)
    layers.update(user_variables)
    if facts.pip_cache_dir is not None and "PIP_CACHE_DIR" not in layers:
        layers["PIP_CACHE_DIR"] = VarValue(str(facts.pip_cache_dir))
    if facts.offline and "PIP_NO_INDEX" not in layers:
        layers["PIP_NO_INDEX"] = VarValue("1")
    expanded = expand_gitlab(layers)
    paths = facts.paths
    paths.file_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # secrets: the user's only
    variables = runner_environment(expanded, paths.file_dir, visible_dir=paths.visible_file_dir)
    return {**base, **variables}


def git_variables(job: PlannedJob, user_variables: Mapping[str, VarValue]) -> dict[str, str]:
    """The job's GIT_* runner settings (YAML, then the user's variables), expanded."""
    values = {**job.predefined, **{k: v.value for k, v in job.yaml_variables.items()}}
    values.update({k: v.value for k, v in user_variables.items()})
    return {
        name: expand_runner(value, values) if "$" in value else value
        for name, value in values.items()
        if name.startswith("GIT_")
    }


def runner_environment(
    variables: Mapping[str, VarValue], file_dir: Path, *, visible_dir: Path | None = None
) -> dict[str, str]:
    """The job's final environment (§10.3.2) from GitLab-expanded variables.

    Run by the executor, never while planning: it writes files.

    Each non-raw value is runner-expanded once against the unexpanded set (a reference to a
    file variable gives its path). File variables are written to `file_dir/NAME` (mode 0600)
    and the environment holds that path as the job sees it: under `visible_dir` when given
    (a container mounts `file_dir` there), else under `file_dir`.
    """
    shown = file_dir if visible_dir is None else visible_dir
    lookup = {name: str(shown / name) if var.file else var.value for name, var in variables.items()}
    env: dict[str, str] = {}
    for name, var in variables.items():
        value = var.value if var.raw else expand_runner(var.value, lookup)
        if var.file:
            _write_secret(file_dir, name, value)
            value = str(shown / name)
        env[name] = value
    return env


def _write_secret(file_dir: Path, name: str, value: str) -> str:
    file_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = file_dir / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(value.encode())
    return str(path)


def _runtime(job: PlannedJob, facts: RuntimeFacts) -> dict[str, str]:
    env = job.spec.environment
    variables = runtime_variables(
        project_dir=facts.paths.project_dir,
        builds_dir=facts.paths.builds_dir,
        job_id=facts.job_id,
        started_at=facts.started_at,
        timeout_s=facts.timeout_s,
        environment=None if env is None else (env.name, env.url, env.action, env.deployment_tier),
    )
    if facts.disposable:
        # What GitLab's Docker executor says instead of the shell executor's shared machine.
        del variables["CI_SHARED_ENVIRONMENT"]
        variables["CI_DISPOSABLE_ENVIRONMENT"] = "true"
    return variables
