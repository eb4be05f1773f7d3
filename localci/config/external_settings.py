"""localci's settings for external includes: `.localci/includes.yml` and `--include-map` values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from localci.config.include_sources import EXTERNAL_CONFIG_FILES
from localci.errors import UsageError

CONFIG_FILES = EXTERNAL_CONFIG_FILES


def read_config(project_dir: Path) -> dict[str, Any]:
    """`.localci/includes.yml` checked and normalised ({} when absent)."""
    path = next((project_dir / n for n in CONFIG_FILES if (project_dir / n).is_file()), None)
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"map", "server", "git_urls", "templates"}:
        raise UsageError(f"{path}: expected a mapping with map, server, git_urls, templates")
    out: dict[str, Any] = {}
    out["map"] = {
        _map_key(k): _map_dir(v, project_dir) for k, v in _str_mapping(data, "map", path).items()
    }
    out["git_urls"] = {k.lower(): v for k, v in _str_mapping(data, "git_urls", path).items()}
    for host, template in out["git_urls"].items():
        if "{project}" not in template:
            raise UsageError(f"{path}: git_urls: {host}: the URL needs a {{project}} placeholder")
    out["templates"] = _str_mapping(data, "templates", path)
    if set(out["templates"]) - {"url", "ref"}:
        raise UsageError(f"{path}: templates: only `url` and `ref` are known")
    if data.get("server") is not None:
        out["server"] = str(data["server"]).lower()
    return out


def _str_mapping(data: Mapping[str, Any], key: str, path: Path) -> dict[str, str]:
    value = data.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UsageError(f"{path}: `{key}` must map names to strings")
    return {str(k): v for k, v in value.items()}


def parse_mapping(items: Sequence[str], base: Path) -> dict[str, Path]:
    """`--include-map KEY=DIR` values; relative directories are relative to `base`."""
    out: dict[str, Path] = {}
    for item in items:
        key, eq, directory = item.partition("=")
        if not eq or not key.strip("/ ") or not directory:
            raise UsageError(
                f"--include-map {item!r}: expected PROJECT=DIR, e.g. team/ci-templates=../ci"
            )
        out[_map_key(key)] = _map_dir(directory, base)
    return out


def _map_key(key: str) -> str:
    return key.strip().strip("/").lower()


def _map_dir(directory: str, base: Path) -> Path:
    path = Path(directory).expanduser()
    return path if path.is_absolute() else (base / path)
