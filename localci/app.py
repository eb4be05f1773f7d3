"""Glue between the stages for the CLI: context -> configuration -> plan (no click here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localci.config import load_pipeline
from localci.config.include_sources import (
    EXTERNAL_CONFIG_FILES,
    ExternalSource,
    IncludeOptions,
    ProjectTree,
)
from localci.config.model import Pipeline
from localci.errors import UsageError
from localci.plan.context import PipelineContext, changed_paths, detect_context
from localci.plan.variable_values import MASKING_HINT, VarValue, masking_problem
from localci.plan.variables import include_rule_variables

# Picked up automatically when present; git-ignored because .localci/ ignores itself.
DEFAULT_VARIABLE_FILES = (
    ".localci/variables.yml",
    ".localci/variables.yaml",
    ".localci/variables.env",
)


@dataclass(frozen=True)
class ContextOptions:
    """What the user asked to simulate (`--branch`, `--tag`, `--var`...)."""

    branch: str | None = None
    tag: str | None = None
    source: str = "push"
    default_branch: str | None = None
    mr_target: str | None = None
    changes_since: str | None = None
    protected: Sequence[str] = ()
    variables: Sequence[str] = ()
    masked_variables: Sequence[str] = ()
    variables_file: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    includes: IncludeOptions = field(default_factory=IncludeOptions)
    # Told about every include fetched from the network (what, from where).
    notify: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Loaded:
    """A loaded configuration with the context and user variables it was loaded for."""

    pipeline: Pipeline
    context: PipelineContext
    user_variables: Mapping[str, VarValue]
    # How includes from outside were read: child pipelines (`trigger:include`) read alike.
    external: ExternalSource | None = None


def load(directory: Path, config_file: str, options: ContextOptions) -> Loaded:
    """Detect the git context, read user variables, load the configuration for that context."""
    ctx = detect_context(
        directory,
        config_file=config_file,
        branch=options.branch,
        tag=options.tag,
        source=options.source,
        default_branch=options.default_branch,
        mr_target=options.mr_target,
        changes_since=options.changes_since,
        protected_refs=options.protected,
    )
    user = user_variables(directory, options)
    include_vars = {**include_rule_variables(ctx), **{k: v.value for k, v in user.items()}}

    def changed(patterns: Sequence[str], compare_to: str | None) -> bool:
        from localci.globs import fnmatch_ruby  # only for `include:rules:changes`

        paths = changed_paths(ctx, compare_to)
        return paths is None or any(fnmatch_ruby(p, f) for p in patterns for f in paths)

    external = _external_source(directory, options)
    pipeline = load_pipeline(
        directory, config_file, variables=include_vars, changed=changed, external=external
    )
    return Loaded(pipeline, ctx, user, external)


def _external_source(directory: Path, options: ContextOptions) -> ExternalSource:
    """The reader of includes from outside the repository; set up when first used unless
    options or `.localci/includes.yml` are given (their errors must show at once)."""
    if options.includes == IncludeOptions() and not any(
        (directory / name).exists() for name in EXTERNAL_CONFIG_FILES
    ):
        return _LazyExternalSource(directory, options.notify)
    from localci.config.external import external_source

    return external_source(directory, options.includes, notify=options.notify)


class _LazyExternalSource:
    """Most pipelines include nothing from outside: this skips importing the fetcher (HTTP,
    git, cache) and reading the origin remote for them."""

    def __init__(self, directory: Path, notify: Callable[[str], None] | None) -> None:
        self._directory = directory
        self._notify = notify
        self._source: ExternalSource | None = None

    def _made(self) -> ExternalSource:
        if self._source is None:
            from localci.config.external import external_source

            self._source = external_source(self._directory, IncludeOptions(), notify=self._notify)
        return self._source

    def remote(self, url: str, integrity: str | None) -> str:
        return self._made().remote(url, integrity)

    def template(self, name: str) -> str:
        return self._made().template(name)

    def project(self, project: str, ref: str | None) -> ProjectTree:
        return self._made().project(project, ref)

    def component(self, host: str, project: str, version: str) -> ProjectTree:
        return self._made().component(host, project, version)


def user_variables(directory: Path, options: ContextOptions) -> dict[str, VarValue]:
    """Variables file (explicit or default) < `--var` assignments."""
    out: dict[str, VarValue] = {}
    path = options.variables_file
    if path is None:
        path = next(
            (directory / p for p in DEFAULT_VARIABLE_FILES if (directory / p).is_file()), None
        )
    elif not path.is_absolute():
        path = Path.cwd() / path
    if path is not None:
        if not path.is_file():
            raise UsageError(f"--variables-file {path}: no such file")
        from localci.plan.variable_files import load_variables_file

        out.update(load_variables_file(path))
    for assignment in options.variables:
        name, value = _parse_assignment(assignment)
        masked = out[name].masked if name in out else False
        out[name] = VarValue(value, masked=masked)
    out.update(masked_assignments(options.masked_variables))
    return out


def masked_assignments(assignments: Sequence[str]) -> dict[str, VarValue]:
    """`--masked-var NAME=VALUE`: like `--var`, masked in every log; refused as GitLab would."""
    out: dict[str, VarValue] = {}
    for assignment in assignments:
        name, value = _parse_assignment(assignment)
        var = VarValue(value, masked=True)
        why = masking_problem(var)
        if why is not None:
            raise UsageError(
                f"--masked-var {name}: {name} cannot be masked: {why}\n    hint: {MASKING_HINT}"
            )
        out[name] = var
    return out


def _parse_assignment(assignment: str) -> tuple[str, str]:
    # Imported when used: most commands get no variables file and no `--var`.
    from localci.plan.variable_files import parse_assignment

    return parse_assignment(assignment)
