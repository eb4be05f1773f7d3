"""Frozen, typed model of a resolved pipeline configuration (the loader's output)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localci.errors import Location

DEFAULT_STAGES = (".pre", "build", "test", "deploy", ".post")


@dataclass(frozen=True, slots=True)
class Variable:
    """A YAML variable: `NAME: value` or `NAME: {value, description, expand, options}`."""

    name: str
    value: str
    expand: bool = True
    description: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Changes:
    """`changes:` of a rule or of only/except: globs, optionally compared to a ref."""

    paths: tuple[str, ...]
    compare_to: str | None = None


@dataclass(frozen=True, slots=True)
class Need:
    """One entry of `needs:`. `matrix` selects instances of a parallel:matrix job."""

    job: str
    artifacts: bool = True
    optional: bool = False
    matrix: tuple[Mapping[str, tuple[str, ...]], ...] | None = None
    # needs:project / needs:pipeline point outside this pipeline; localci cannot honour them.
    external: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of `rules:` (job, workflow or include). Clauses absent are None."""

    if_: str | None = None
    changes: Changes | None = None
    exists: tuple[str, ...] | None = None
    when: str | None = None
    allow_failure: bool | None = None
    variables: tuple[Variable, ...] = ()
    needs: tuple[Need, ...] | None = None
    start_in: str | None = None
    interruptible: bool | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class RefPolicy:
    """`only:` or `except:` in its full form (the short list form is `refs`)."""

    refs: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    changes: Changes | None = None
    kubernetes: str | None = None


@dataclass(frozen=True, slots=True)
class Parallel:
    """`parallel: N` (count) or `parallel: matrix:` (list of key -> values)."""

    count: int | None = None
    matrix: tuple[Mapping[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class CacheKeyFiles:
    """`cache:key:files` with optional `prefix` (hashed from git blob SHAs)."""

    files: tuple[str, ...]
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Cache:
    """One cache definition of a job."""

    key: str | CacheKeyFiles = "default"
    paths: tuple[str, ...] = ()
    untracked: bool = False
    policy: str = "pull-push"
    when: str = "on_success"
    fallback_keys: tuple[str, ...] = ()
    unprotect: bool = False


@dataclass(frozen=True, slots=True)
class Artifacts:
    """`artifacts:` of a job."""

    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    untracked: bool = False
    when: str = "on_success"
    name: str | None = None
    expire_in: str | None = None
    reports: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    expose_as: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """`retry:`; max 0..2, `when` failure reasons, `exit_codes`."""

    max: int = 0
    when: tuple[str, ...] = ("always",)
    exit_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AllowFailure:
    """`allow_failure: bool` or `allow_failure: {exit_codes: [...]}`."""

    allowed: bool = False
    exit_codes: tuple[int, ...] = ()

    def as_json(self) -> bool | dict[str, list[int]]:
        if self.exit_codes:
            return {"exit_codes": list(self.exit_codes)}
        return self.allowed


@dataclass(frozen=True, slots=True)
class Image:
    """`image:` (string or mapping form). A python:X.Y image picks a venv's interpreter; the
    container executor uses the rest. `entrypoint` None keeps the image's own; `pull_policy`
    is empty when not given (the engine's `always` default applies)."""

    name: str
    entrypoint: tuple[str, ...] | None = None
    pull_policy: tuple[str, ...] = ()
    user: str | None = None  # docker:user
    platform: str | None = None  # docker:platform


@dataclass(frozen=True, slots=True)
class Service:
    """One `services:` entry: its image plus `alias` (comma-separated aliases allowed),
    `command`, and `variables` that apply to the service container only."""

    image: Image
    alias: str | None = None
    command: tuple[str, ...] | None = None
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.image.name


@dataclass(frozen=True, slots=True)
class Environment:
    """`environment:`; sets CI_ENVIRONMENT_* only, no deployment is tracked."""

    name: str
    url: str | None = None
    action: str = "start"
    deployment_tier: str | None = None


@dataclass(frozen=True, slots=True)
class Inherit:
    """`inherit:`; True = everything, False = nothing, tuple = those names only."""

    default: bool | tuple[str, ...] = True
    variables: bool | tuple[str, ...] = True


@dataclass(frozen=True, slots=True)
class Job:
    """A visible job after include/extends/!reference/default resolution.

    `when` and `allow_failure` are the job-level values as written (None when absent),
    because rules decide the defaults; the planner computes the effective ones.
    """

    name: str
    stage: str
    script: tuple[str, ...] = ()
    before_script: tuple[str, ...] = ()
    after_script: tuple[str, ...] = ()
    variables: tuple[Variable, ...] = ()
    rules: tuple[Rule, ...] | None = None
    only: RefPolicy | None = None
    except_: RefPolicy | None = None
    when: str | None = None
    allow_failure: AllowFailure | None = None
    start_in: str | None = None
    needs: tuple[Need, ...] | None = None
    dependencies: tuple[str, ...] | None = None
    parallel: Parallel | None = None
    cache: tuple[Cache, ...] = ()
    artifacts: Artifacts | None = None
    image: Image | None = None
    services: tuple[Service, ...] = ()
    timeout: str | None = None
    retry: Retry | None = None
    environment: Environment | None = None
    coverage: str | None = None
    tags: tuple[str, ...] = ()
    resource_group: str | None = None
    interruptible: bool | None = None
    trigger: Mapping[str, Any] | None = None
    inherit: Inherit = field(default_factory=Inherit)
    description: str = ""
    location: Location | None = None
    # Keys localci knows it cannot emulate (release, secrets...), for warnings.
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Workflow:
    """`workflow:`; rules None means no workflow:rules at all."""

    rules: tuple[Rule, ...] | None = None
    name: str | None = None
    on_job_failure: str = "none"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The whole resolved configuration: what the planner consumes.

    `merged` is the fully merged mapping in the shape of GitLab's "full configuration"
    view (top-level keywords plus one key per visible job), for `localci config`.
    `origins` maps each top-level key to where it was last defined, followed by the
    `include:` entries that led to that file (innermost first), for `localci config --origins`.
    `interpolated` holds, per file with `spec:inputs`, its content after interpolation: what
    GitLab validates, and so what the schema check reads.
    """

    stages: tuple[str, ...]
    variables: tuple[Variable, ...]
    workflow: Workflow
    jobs: tuple[Job, ...]
    files: tuple[str, ...]
    merged: Mapping[str, Any]
    warnings: tuple[str, ...] = ()
    origins: Mapping[str, tuple[Location, ...]] = field(default_factory=dict)
    interpolated: Mapping[str, Any] = field(default_factory=dict)

    def job(self, name: str) -> Job | None:
        return next((j for j in self.jobs if j.name == name), None)
