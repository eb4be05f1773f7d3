"""Where each job of a run goes (container, venv, host), decided before anything runs, so
that the run header and `--dry-run` can say it and a root user is stopped before a job that
would change this machine starts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from localci.execute.container.engine import Engine, detect_engine
from localci.execute.container.services import service_aliases
from localci.execute.executors import Place, executor_for, expand_name, job_image
from localci.execute.image_tools import job_package_manager
from localci.execute.interpreters import request_for_image
from localci.plan.model import PlannedJob
from localci.plan.variables import VarValue

__all__ = ["JobPlace", "Placement", "images_to_pull", "place_jobs"]


@dataclass(frozen=True, slots=True)
class JobPlace:
    job: str
    place: Place
    image: str | None
    services: tuple[str, ...]  # "image (alias, alias)" of each service
    package_manager: str | None = None  # the image's `apt-get`/`apk`... the script runs

    @property
    def unemulated(self) -> bool:
        """An image localci does not stand in for, yet the job runs on this machine."""
        return (
            self.place != "container"
            and self.image is not None
            and (
                request_for_image(self.image) is None
                or self.place == "host"
                or self.package_manager is not None
            )
        )

    def unemulated_line(self) -> str:
        """The run header's line for an unemulated job."""
        if self.package_manager is not None and request_for_image(self.image or "") is not None:
            return (
                f"  {self.job}: runs `{self.package_manager}`, the package manager of image "
                f"{self.image}, which a virtualenv does not provide; "
                "the job runs on this machine's tools"
            )
        return (
            f"  {self.job}: image {self.image} is not emulated; "
            "the job runs on this machine's tools"
        )


@dataclass(frozen=True, slots=True)
class Placement:
    mode: str
    engine: Engine | None
    jobs: tuple[JobPlace, ...]
    probed: bool = False  # whether an engine was looked for

    def header(self) -> list[str]:
        """The run header's lines: the executor, the engine, the jobs that run unemulated.
        Nothing when no job has an image localci does not emulate."""
        if not self.probed and not any(e.unemulated or e.services for e in self.jobs):
            return []
        engine = self.engine.describe() if self.engine else "none found"
        if not self.probed:
            engine = f"not used (--executor {self.mode})"
        lines = [f"Executor: {self.mode}; container engine: {engine}"]
        lines += [entry.unemulated_line() for entry in self.jobs if entry.unemulated]
        return lines

    def in_containers(self) -> frozenset[str]:
        """The names of the jobs that run in a container."""
        return frozenset(entry.job for entry in self.jobs if entry.place == "container")

    def where(self) -> list[str]:
        """For `--dry-run`: where each job with an image runs."""
        return [
            f"  {entry.job}: {entry.place} ({entry.image})"
            for entry in self.jobs
            if entry.image is not None
        ]

    def refusal(self) -> str | None:
        """Why a root user may not run this selection on the host, or None."""
        risky = [entry for entry in self.jobs if entry.unemulated]
        if not risky or os.geteuid() != 0:
            return None
        named = ", ".join(f"{entry.job} (image {entry.image})" for entry in risky)
        return (
            f"refusing to run as root on this machine the jobs meant for a container: {named}. "
            "Their scripts (apt-get install, edits under /etc...) would change this machine. "
            "Install Docker or Podman so they run in their images, or pass --allow-host "
            "(or `allow_host: true` in .localci/config.yml) to run them here anyway"
        )


def place_jobs(
    jobs: Sequence[PlannedJob],
    mode: str,
    preferred_engine: str | None,
    user: Mapping[str, VarValue] | None = None,
) -> Placement:
    """Each job's place; the engine is looked for only when some job could use it."""
    engine = None
    probed = mode in ("auto", "container") and any(
        executor_for(job, mode, True, user) == "container" for job in jobs
    )
    if probed:
        engine = detect_engine(preferred_engine)
    places = tuple(
        JobPlace(
            job.name,
            executor_for(job, mode, engine is not None, user),
            job_image(job, user),
            tuple(_service_text(job, index, user) for index in range(len(job.spec.services))),
            job_package_manager(job),
        )
        for job in jobs
    )
    return Placement(mode, engine, places, probed)


def images_to_pull(
    jobs: Sequence[PlannedJob],
    placement: Placement,
    user: Mapping[str, VarValue] | None = None,
) -> list[tuple[str, str | None]]:
    """(image, platform) of every job placed in a container and of its services, once each."""
    placed = {entry.job for entry in placement.jobs if entry.place == "container"}
    out: list[tuple[str, str | None]] = []
    for job in jobs:
        if job.name not in placed or job.spec.image is None:
            continue
        wanted = [(job_image(job, user) or "", job.spec.image.platform)]
        wanted += [(expand_name(s.name, job, user), s.image.platform) for s in job.spec.services]
        out += [item for item in wanted if item[0] and item not in out]
    return out


def _service_text(job: PlannedJob, index: int, user: Mapping[str, VarValue] | None) -> str:
    service = job.spec.services[index]
    image = expand_name(service.name, job, user)
    return f"{image} ({', '.join(service_aliases(image, service.alias))})"
