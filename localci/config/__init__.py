"""The configuration loader: `.gitlab-ci.yml` and its includes -> a resolved `Pipeline`.

A pure function of the files read (plus the few variables GitLab allows in `include`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from localci.config.include_sources import (
    DirectorySource,
    ExternalSource,
    FileSource,
    IncludeContext,
    MemorySource,
)
from localci.config.includes import collapse_repeats, key_origins, load_file
from localci.config.model import Pipeline
from localci.config.model_builder import build_pipeline
from localci.errors import ConfigError, Location, Problem

__all__ = ["Pipeline", "load_pipeline", "load_pipeline_from_source", "load_pipeline_from_text"]


def load_pipeline(
    project_dir: Path,
    config_file: str = ".gitlab-ci.yml",
    *,
    variables: Mapping[str, str] | None = None,
    changed: Callable[[Sequence[str], str | None], bool] | None = None,
    external: ExternalSource | None = None,
) -> Pipeline:
    """Load `config_file` (relative to `project_dir`) with everything it includes.

    Includes from outside the repository are read through `external` (None: they are errors).
    """
    path = project_dir / config_file
    if path.is_dir():
        raise ConfigError(
            Problem(
                f"{config_file} is a directory, not a file",
                hint="pass the pipeline file with --file",
            )
        )
    if not path.is_file():
        raise ConfigError(
            Problem(
                f"no {config_file} in {project_dir}",
                hint="run localci in a repository with a .gitlab-ci.yml, "
                "or use -C DIR / --file PATH",
            )
        )
    source = DirectorySource(project_dir)
    rel = Path(config_file).as_posix().lstrip("/")
    return _load(source, rel, variables, changed, external)


def load_pipeline_from_text(
    text: str, files: Mapping[str, str] | None = None, *, variables: Mapping[str, str] | None = None
) -> Pipeline:
    """Load a configuration given as text (with optional extra files for includes)."""
    source = MemorySource({**(files or {}), ".gitlab-ci.yml": text})
    return _load(source, ".gitlab-ci.yml", variables, None, None)


def load_pipeline_from_source(
    source: FileSource,
    root: str,
    *,
    variables: Mapping[str, str] | None = None,
    changed: Callable[[Sequence[str], str | None], bool] | None = None,
    external: ExternalSource | None = None,
) -> Pipeline:
    """Load `root` of `source` (a child pipeline's generated configuration, for instance)."""
    return _load(source, root, variables, changed, external)


def _load(
    source: FileSource,
    root: str,
    variables: Mapping[str, str] | None,
    changed: Callable[[Sequence[str], str | None], bool] | None,
    external: ExternalSource | None,
) -> Pipeline:
    ctx = IncludeContext(
        source=source, variables=dict(variables or {}), changed=changed, external=external
    )
    try:
        merged = load_file(ctx, root)
    except ConfigError as exc:
        raise ConfigError(collapse_repeats([*ctx.problems, *exc.problems])) from None
    except OSError as exc:
        raise ConfigError(
            Problem(
                f"cannot read the configuration: {exc.strerror}", Location(exc.filename or root, 1)
            )
        ) from None
    if ctx.problems:
        raise ConfigError(collapse_repeats(ctx.problems))
    pipeline = build_pipeline(merged, tuple(ctx.files), ctx.warnings)
    return replace(pipeline, origins=key_origins(ctx, merged), interpolated=ctx.interpolated)
