"""Keywords that shape the job graph: `needs` (with `parallel:matrix` selectors), `parallel`."""

from __future__ import annotations

import math
from typing import Any

from localci.config.fields import Reader, scalar_text
from localci.config.model import Need, Parallel
from localci.config.yaml_source import location_of

MAX_MATRIX_JOBS = 200


def needs(reader: Reader, key: str) -> tuple[Need, ...] | None:
    raw = reader.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raw = [raw]
    out = []
    for item in raw:
        need = _need(reader, key, item)
        if need is not None:
            out.append(need)
    return tuple(out)


def _need(reader: Reader, key: str, item: Any) -> Need | None:
    if isinstance(item, (str, int, float)) and not isinstance(item, bool):
        return Need(str(item))
    if not isinstance(item, dict):
        reader.fail(key, f"each need should be a job name or a mapping, not {item!r}")
        return None
    sub = Reader(
        item,
        reader.job,
        reader.path(key) + ":",
        reader.problems,
        location_of(item) or reader.where(key),
        reader.warnings,
    )
    sub.unknown_keys(
        frozenset({"job", "artifacts", "optional", "parallel", "project", "ref", "pipeline"}),
        "need",
    )
    if "pipeline" in item and "job" not in item:
        return Need(job="", external=f"pipeline {item['pipeline']}")
    name = sub.string("job")
    if name is None:
        sub.fail("job", "a need mapping requires `job:`")
        return None
    external = None
    if "project" in item:
        external = f"project {item['project']}"
    elif "pipeline" in item:
        external = f"pipeline {item['pipeline']}"
    return Need(
        job=name,
        artifacts=bool(sub.boolean("artifacts", True)),
        optional=bool(sub.boolean("optional", False)),
        matrix=_need_matrix(sub),
        external=external,
    )


def _need_matrix(reader: Reader) -> tuple[dict[str, tuple[str, ...]], ...] | None:
    """Values are lists, as in a job's own `parallel:matrix` (a scalar is a one-item list):
    GitLab's Normalizer expands a need's matrix with the same MatrixStrategy.expand."""
    value = reader.get("parallel")
    if value is None:
        return None
    matrix = value.get("matrix") if isinstance(value, dict) else None
    if not isinstance(matrix, list):
        reader.fail("parallel", "needs:parallel should contain `matrix:` with a list")
        return None
    out = []
    for entry in matrix:
        if not isinstance(entry, dict):
            continue
        values = {str(k): _matrix_values(v) for k, v in entry.items()}
        if any(v is None for v in values.values()):
            reader.fail("parallel", "needs:parallel:matrix values should be a string or a list")
            return None
        out.append({k: v for k, v in values.items() if v is not None})
    return tuple(out)


def parallel(reader: Reader, key: str, value: Any) -> Parallel | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 200:
            reader.fail(key, "parallel should be a number from 1 to 200")
            return None
        return Parallel(count=value)
    matrix = value.get("matrix") if isinstance(value, dict) else None
    if not isinstance(matrix, list) or not matrix:
        reader.fail(key, "parallel should be a number or `matrix:` with a list of mappings")
        return None
    out = []
    for entry in matrix:
        if not isinstance(entry, dict):
            reader.fail(key, "parallel:matrix entries should be mappings of NAME: values")
            return None
        values = {str(k): _matrix_values(v) for k, v in entry.items()}
        if any(v is None for v in values.values()):
            reader.fail(key, "parallel:matrix values should be a string or a list of strings")
            return None
        out.append({k: v for k, v in values.items() if v is not None})
    jobs = sum(math.prod(len(v) for v in entry.values()) for entry in out)
    if jobs > MAX_MATRIX_JOBS:
        reader.fail(
            key, f"parallel:matrix generates {jobs} jobs; GitLab allows at most {MAX_MATRIX_JOBS}"
        )
        return None
    return Parallel(matrix=tuple(out))


def _matrix_values(value: Any) -> tuple[str, ...] | None:
    items = value if isinstance(value, list) else [value]
    if any(isinstance(item, (dict, list)) for item in items):
        return None
    return tuple(scalar_text(v) for v in items)
