"""`spec:inputs` headers and `$[[ inputs.NAME ]]` interpolation (docs/SEMANTICS.md §1.4)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from localci.config.yaml_source import LocDict, LocList, location_of
from localci.errors import Location, Problem

MAX_BLOCK = 1024
# `$[[ matrix.X ]]` is GitLab's matrix context, resolved later in needs:parallel:matrix
# (Normalizer's MatrixInterpolator), never by input interpolation: left as written.
_MATRIX_BLOCK = re.compile(r"matrix\.[A-Za-z0-9_]+")
INPUT_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "number": (int, float),
    "boolean": bool,
    "array": list,
}
SPEC_INPUT_KEYS = {"default", "description", "options", "regex", "type"}


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: str = "string"
    default: Any = None
    has_default: bool = False
    options: tuple[Any, ...] = ()
    regex: str | None = None


def parse_spec(header: Any, file: str, problems: list[Problem]) -> dict[str, InputSpec] | None:
    """The inputs declared by a header document, or None when the file has no header."""
    if header is None:
        return None
    loc = location_of(header) or Location(file, 1)
    if not isinstance(header, dict) or set(header) - {"spec"}:
        problems.append(
            Problem(
                "the header document may contain only `spec:`",
                loc,
                hint="put the configuration after a `---` line",
            )
        )
        return {}
    spec = header.get("spec") or {}
    if not isinstance(spec, dict):
        problems.append(Problem("`spec` must be a mapping", loc))
        return {}
    inputs = spec.get("inputs") or {}
    if not isinstance(inputs, dict):
        problems.append(Problem("`spec:inputs` must be a mapping of input names", loc))
        return {}
    return {name: _input_spec(name, decl, loc, problems) for name, decl in inputs.items()}


def _input_spec(name: str, decl: Any, loc: Location, problems: list[Problem]) -> InputSpec:
    if decl is None:
        return InputSpec(name)
    where = decl.where("type") if isinstance(decl, LocDict) else loc
    if not isinstance(decl, dict):
        problems.append(
            Problem(f"input {name!r} must be a mapping", loc, path=f"spec:inputs:{name}")
        )
        return InputSpec(name)
    unknown = set(decl) - SPEC_INPUT_KEYS
    if unknown:
        problems.append(
            Problem(
                f"input {name!r} has unknown keys: {', '.join(sorted(unknown))}",
                where,
                path=f"spec:inputs:{name}",
            )
        )
    path = f"spec:inputs:{name}"
    kind = decl.get("type", "string")
    if not isinstance(kind, str) or kind not in INPUT_TYPES:
        problems.append(
            Problem(
                f"input {name!r} has unknown type {kind!r}",
                where,
                path=path,
                hint="use string, number, boolean or array",
            )
        )
        kind = "string"
    options = decl.get("options") or []
    if not isinstance(options, list):
        problems.append(Problem(f"`options` of input {name!r} must be a list", where, path=path))
        options = []
    regex = decl.get("regex")
    if regex is not None and not isinstance(regex, str):
        problems.append(Problem(f"`regex` of input {name!r} must be a string", where, path=path))
        regex = None
    spec = InputSpec(name, kind, decl.get("default"), "default" in decl, tuple(options), regex)
    if spec.has_default and spec.default is not None:
        error = check_value(spec, spec.default)
        if error:
            problems.append(
                Problem(f"default of input {name!r}: {error}", where, path=f"spec:inputs:{name}")
            )
    return spec


def check_value(spec: InputSpec, value: Any) -> str | None:
    """Why `value` is not acceptable for `spec`, or None."""
    expected = INPUT_TYPES[spec.type]
    is_bool = isinstance(value, bool)
    if (spec.type == "number" and is_bool) or not isinstance(value, expected):
        return f"expected a {spec.type}, got {value!r}"
    if spec.options and value not in spec.options:
        return f"{value!r} is not one of the options {list(spec.options)}"
    if spec.regex and isinstance(value, str):
        # GitLab matches with RE2 (UntrustedRegexp): linear time whatever the value.
        from localci.regex import RegexSyntaxError, compile_regex

        try:
            if not compile_regex(spec.regex).search(value):
                return f"{value!r} does not match the regex /{spec.regex}/"
        except RegexSyntaxError as exc:
            return f"the input's regex /{spec.regex}/ is invalid: {exc.message}"
    return None


def resolve_inputs(
    specs: Mapping[str, InputSpec] | None,
    given: Any,
    where: Location | None,
    problems: list[Problem],
) -> dict[str, Any]:
    """Values of every declared input from `include:inputs` (or defaults); errors collected."""
    given = given or {}
    if not isinstance(given, dict):
        problems.append(Problem("`inputs` must be a mapping", where))
        return {}
    if specs is None:
        if given:
            problems.append(
                Problem(
                    "inputs were given, but the included file declares no `spec:inputs`",
                    where,
                    hint="add a `spec: inputs:` header document to the included file",
                )
            )
        return {}
    values: dict[str, Any] = {}
    for name in given:
        if name not in specs:
            problems.append(
                Problem(
                    f"unknown input {name!r}; the file declares: "
                    f"{', '.join(sorted(specs)) or 'none'}",
                    where,
                )
            )
    for name, spec in specs.items():
        if name in given:
            value = given[name]
        elif spec.has_default:
            value = spec.default
        else:
            problems.append(
                Problem(
                    f"required input {name!r} is missing",
                    where,
                    hint=f"pass it with `inputs: {{{name}: ...}}` on the include",
                )
            )
            continue
        error = check_value(spec, value) if name in given else None
        if error:
            problems.append(Problem(f"input {name!r}: {error}", where))
        values[name] = value
    return values


def interpolate(value: Any, inputs: Mapping[str, Any], file: str, problems: list[Problem]) -> Any:
    """Replace `$[[ inputs.NAME ]]` blocks in keys and values of a loaded document."""
    if isinstance(value, str):
        return _interpolate_text(value, inputs, file, problems)
    if isinstance(value, dict):
        out = LocDict(loc=location_of(value))
        for key, item in value.items():
            new_key = _interpolate_text(key, inputs, file, problems)
            new_key = str(new_key)
            out[new_key] = interpolate(item, inputs, file, problems)
            if isinstance(value, LocDict) and key in value.key_locs:
                out.key_locs[new_key] = value.key_locs[key]
        return out
    if isinstance(value, list):
        items = LocList(loc=location_of(value))
        for index, item in enumerate(value):
            items.append(interpolate(item, inputs, file, problems))
            items.item_locs.append(value.where(index) if isinstance(value, LocList) else None)
        return items
    return value


def _interpolate_text(
    text: str, inputs: Mapping[str, Any], file: str, problems: list[Problem]
) -> Any:
    if "$[[" not in text:
        return text
    blocks = find_blocks(text)
    if (
        len(blocks) == 1
        and blocks[0][:2] == (0, len(text))
        and not _MATRIX_BLOCK.fullmatch(blocks[0][2])
    ):
        return _evaluate_block(blocks[0][2], inputs, file, problems)
    out: list[str] = []
    done = 0
    for start, end, body in blocks:
        out.append(text[done:start])
        if _MATRIX_BLOCK.fullmatch(body):
            out.append(text[start:end])
        else:
            out.append(_as_text(_evaluate_block(body, inputs, file, problems)))
        done = end
    out.append(text[done:])
    return "".join(out)


def find_blocks(text: str) -> list[tuple[int, int, str]]:
    """Every `$[[ ... ]]` block as (start, end, stripped body), in linear time.

    A block ends at the first `]]` and its stripped body has no line break, as the lazy
    regular expression `$[[ (.*?) ]]` finds them; that one takes quadratic time on text full
    of unclosed `$[[`. Here the next `]]` and line break are only ever searched forward.
    """
    blocks: list[tuple[int, int, str]] = []
    close = newline = -1
    start = text.find("$[[")
    while start >= 0:
        if close < start + 3:
            close = text.find("]]", start + 3)
            if close < 0:
                break
        if newline != -1 and newline < start + 3:
            newline = -1
        if newline == -1:
            newline = text.find("\n", start + 3, close)
        body = text[start + 3 : close] if close - start <= 4 * MAX_BLOCK else None
        if (body is not None and "\n" not in body.strip()) or (body is None and newline < 0):
            blocks.append((start, close + 2, text[start + 3 : close].strip()))
            start = text.find("$[[", close + 2)
        else:
            start = text.find("$[[", start + 1)
    return blocks


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _evaluate_block(
    body: str, inputs: Mapping[str, Any], file: str, problems: list[Problem]
) -> Any:
    if len(body) > MAX_BLOCK:
        problems.append(
            Problem(f"interpolation block longer than {MAX_BLOCK} characters", Location(file, 1))
        )
        return ""
    access, *functions = [part.strip() for part in body.split("|")]
    match = re.fullmatch(r"inputs\.([A-Za-z0-9_-]+)", access)
    if not match:
        problems.append(
            Problem(
                f"unknown interpolation `$[[ {body} ]]`",
                Location(file, 1),
                hint="only `$[[ inputs.NAME ]]` is available in this file",
            )
        )
        return ""
    name = match.group(1)
    if name not in inputs:
        problems.append(
            Problem(
                f"unknown input name {name!r} in `$[[ {body} ]]`",
                Location(file, 1),
                hint="declare it under `spec: inputs:` in the header document",
            )
        )
        return ""
    value = inputs[name]
    for function in functions:
        value = _apply_function(function, value, file, problems)
    return value


def _apply_function(function: str, value: Any, file: str, problems: list[Problem]) -> Any:
    truncate = re.fullmatch(r"truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)", function)
    if truncate:
        start, length = int(truncate.group(1)), int(truncate.group(2))
        return _as_text(value)[start : start + length]
    if function in ("expand_vars", "posix_escape"):
        # Variable expansion happens later, where GitLab expands the keyword itself.
        return _as_text(value) if function == "expand_vars" else _posix_escape(_as_text(value))
    problems.append(Problem(f"unknown interpolation function {function!r}", Location(file, 1)))
    return value


def _posix_escape(text: str) -> str:
    return re.sub(r"([^A-Za-z0-9_./,:=@%+-])", r"\\\1", text)
