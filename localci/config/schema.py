"""Warnings from GitLab's official CI JSON schema (the copy maintained in check-jsonschema).

GitLab's backend accepts some things its editor schema flags; those are warnings, and
`localci lint --strict` turns them into errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from localci.config.yaml_source import LocDict, LocList, load_documents
from localci.errors import ConfigError

MAX_PER_FILE = 20


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema  # type: ignore[import-untyped]

    text = resources.files("check_jsonschema.builtin_schemas.vendor") / "gitlab-ci.json"
    schema = json.loads(text.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def schema_warnings(
    project_dir: Path, files: Iterable[str], interpolated: Mapping[str, Any] | None = None
) -> list[str]:
    """Schema findings for each file of the configuration, located by file and line.

    A file with `spec:inputs` is checked as `interpolated` holds it (its inputs filled in), as
    GitLab validates only after interpolation: `retry: $[[ inputs.n ]]` is a number by then.
    """
    try:
        validator = _validator()
    except (ImportError, OSError, ValueError) as exc:
        return [f"GitLab's CI schema is unavailable ({exc}); schema checks skipped"]
    out: list[str] = []
    for name in dict.fromkeys(files):
        doc = (interpolated or {}).get(name)
        if doc is None:
            doc = _file_content(project_dir / name, name)
        if isinstance(doc, LocDict):
            out.extend(_file_findings(validator, name, doc))
    return out


def _file_content(path: Path, name: str) -> Any:
    try:
        docs, _ = load_documents(path.read_text(encoding="utf-8"), name)
    except (OSError, ConfigError, UnicodeDecodeError):
        return None
    return docs[-1] if docs else None


def _file_findings(validator: Any, name: str, doc: LocDict) -> list[str]:
    findings = []
    for error in sorted(validator.iter_errors(_jsonable(doc)), key=lambda e: list(e.path))[
        :MAX_PER_FILE
    ]:
        line = _line_of(doc, list(error.path))
        where = ".".join(str(p) for p in error.path) or "(top level)"
        findings.append(f"{name}:{line}: {where}: {_short(error.message)} (GitLab CI schema)")
    return findings


def _short(message: str) -> str:
    return message if len(message) <= 160 else message[:157] + "..."


def _line_of(doc: Any, path: list[Any]) -> int:
    line = doc.loc.line if getattr(doc, "loc", None) else 1
    node = doc
    for step in path:
        if isinstance(node, LocDict) and step in node:
            loc = node.key_locs.get(step)
            line = loc.line if loc else line
            node = node[step]
        elif isinstance(node, LocList) and isinstance(step, int) and step < len(node):
            loc = node.where(step)
            line = loc.line if loc else line
            node = node[step]
        else:
            break
    return line


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return list(getattr(value, "path", ()))
