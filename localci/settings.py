"""Per-project settings of localci itself, from `.localci/config.yml` (see README, "Executors").

    executor: auto        # auto | container | venv | host  (--executor wins)
    engine: podman        # docker | podman: which engine to use when both work
    allow_host: false     # true: run non-emulated images on this machine even as root
    keep_pipelines: 50    # runs kept under .localci/pipelines/ (false: never prune)

Command-line options override the file; the file overrides the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localci.errors import ConfigError

__all__ = ["SETTINGS_FILE", "ProjectSettings", "load_settings"]

SETTINGS_FILE = ".localci/config.yml"
_EXECUTORS = ("auto", "container", "venv", "host")
_ENGINES = ("docker", "podman")


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    executor: str = "auto"
    engine: str | None = None
    allow_host: bool = False
    keep_pipelines: int | None = 50  # None: runs are never pruned automatically


def load_settings(project_dir: Path) -> ProjectSettings:
    """The project's settings; defaults when the file does not exist."""
    path = project_dir / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ProjectSettings()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from exc
    try:
        data: Any = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: should be a mapping of settings")
    unknown = sorted(set(map(str, data)) - {"executor", "engine", "allow_host", "keep_pipelines"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    executor = data.get("executor", "auto")
    engine = data.get("engine")
    allow_host = data.get("allow_host", False)
    if executor not in _EXECUTORS:
        raise ConfigError(f"{path}: executor should be one of {', '.join(_EXECUTORS)}")
    if engine is not None and engine not in _ENGINES:
        raise ConfigError(f"{path}: engine should be docker or podman")
    if not isinstance(allow_host, bool):
        raise ConfigError(f"{path}: allow_host should be true or false")
    keep = data.get("keep_pipelines", 50)
    if keep is False or keep is None:
        keep = None
    elif isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"{path}: keep_pipelines should be a number of runs (1 or more) or false")
    return ProjectSettings(executor, engine, allow_host, keep)
