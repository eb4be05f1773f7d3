"""The `variables:` keyword (global, job and rule variables): names, values, options."""

from __future__ import annotations

import re
from typing import Any

from localci.config.fields import Reader, scalar_text, type_name
from localci.config.model import Variable
from localci.config.yaml_source import LocDict
from localci.errors import Location, Problem

VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def variables(
    reader: Reader, key: str, *, allow_options: bool = False, allow_expand: bool = True
) -> tuple[Variable, ...] | None:
    raw = reader.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        reader.fail(key, f"should be a mapping of NAME: value, not a {type_name(raw)}")
        return None
    out = []
    for name, value in raw.items():
        var = _variable(reader, key, str(name), value, allow_options, allow_expand)
        if var is not None:
            out.append(var)
    return tuple(out)


def _variable(
    reader: Reader, key: str, name: str, value: Any, allow_options: bool, allow_expand: bool
) -> Variable | None:
    where = raw_where(reader.get(key), name) or reader.where(key)
    path = reader.path(f"{key}:{name}")

    def fail(message: str) -> None:
        reader.problems.append(Problem(message, where, job=reader.job, path=path))

    if not VARIABLE_NAME.match(name):
        fail("a variable name may contain only letters, digits and `_`")
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return Variable(name, scalar_text(value))
    if not isinstance(value, dict):
        fail(f"the value should be a string or a mapping with `value:`, not a {type_name(value)}")
        return None
    allowed = (
        {"value", "description", "expand", "options"}
        if allow_options
        else {"value", "description", "expand"}
    )
    if not allow_expand:
        allowed.discard("expand")
    unknown = set(value) - allowed
    if unknown:
        fail(
            f"unknown keys {', '.join(sorted(map(str, unknown)))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
        return None
    inner = value.get("value")
    if isinstance(inner, (dict, list)):
        fail("`value` should be a string")
        return None
    expand = value.get("expand", True)
    if not isinstance(expand, bool):
        fail("`expand` should be true or false")
        expand = True
    options = tuple(scalar_text(o) for o in value.get("options") or ())
    return Variable(name, scalar_text(inner), expand, _opt_text(value.get("description")), options)


def _opt_text(value: Any) -> str | None:
    return None if value is None else scalar_text(value)


def raw_where(mapping: Any, key: str) -> Location | None:
    if isinstance(mapping, LocDict):
        return mapping.key_locs.get(key)
    return None
