"""Variables given on the command line: `NAME=VALUE` and variables files (YAML or dotenv).

Read by app.py before planning; the planner only sees the resulting values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from localci.errors import ConfigError, Location, Problem, UsageError
from localci.plan.variable_values import MASKING_HINT, VARIABLE_NAME, VarValue, masking_problem

_VARIABLE_KEYS = frozenset({"value", "masked", "file", "expand", "description"})


def parse_assignment(text: str) -> tuple[str, str]:
    """`NAME=VALUE` (from `--var`) -> (name, value); the value may be empty or contain `=`."""
    name, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"expected NAME=VALUE, got {text!r}")
    if not VARIABLE_NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a variable name: use only letters, digits and '_'")
    return name, value


def load_variables_file(path: Path) -> dict[str, VarValue]:
    """Read a variables file: YAML (`.yml`/`.yaml`) or dotenv (`.env`, or `NAME=` content).

    YAML: `NAME: value` or `NAME: {value, masked, file, expand, description}`. dotenv:
    `NAME=value`, `export NAME=value`, single/double quotes (may span lines), `#` comments.
    Every problem is reported with its file:line.
    """
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            Problem(f"cannot read variables file {path}: {reason}", hint="check the path")
        ) from exc
    if _looks_like_dotenv(path, text):
        return _load_dotenv_file(path, text)
    return _load_yaml_file(path, text)


def _looks_like_dotenv(path: Path, text: str) -> bool:
    if path.suffix in (".yml", ".yaml"):
        return False
    if path.suffix == ".env" or path.name.startswith(".env"):
        return True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return re.match(r"(export\s+)?[A-Za-z0-9_]+\s*=", stripped) is not None
    return False


class _LineError(Exception):
    """A dotenv problem on the current line; `used` following lines belong to it."""

    def __init__(self, message: str, used: int = 0) -> None:
        super().__init__(message)
        self.used = used


def _load_dotenv_file(path: Path, text: str) -> dict[str, VarValue]:
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    found: dict[str, VarValue] = {}
    problems: list[Problem] = []
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        if not line.strip() or line.strip().startswith("#"):
            continue
        try:
            name, value, used = _dotenv_assignment(line, lines[index:])
        except _LineError as exc:
            problems.append(_file_problem(path, number, str(exc), "write NAME=value"))
            index += exc.used
            continue
        index += used
        var = VarValue(value, masked=_marked_masked(lines[index - 1]))
        why = masking_problem(var) if var.masked else None
        if why is not None:
            problems.append(
                _file_problem(path, number, f"{name} cannot be masked: {why}", MASKING_HINT)
            )
        found[name] = var
    if problems:
        raise ConfigError(problems)
    return found


def _marked_masked(last_line: str) -> bool:
    """The dotenv convention for a masked value: the assignment ends with `# masked`."""
    return re.search(r"\s#\s*masked\s*$", last_line) is not None


def _dotenv_assignment(line: str, following: list[str]) -> tuple[str, str, int]:
    match = re.fullmatch(r"\s*(?:export\s+)?(?P<name>[^=\s]*)\s*=\s*(?P<rest>.*)", line)
    if match is None:
        raise _LineError(f"expected NAME=value, got {line.strip()!r}")
    name, rest = match["name"], match["rest"]
    if not VARIABLE_NAME.fullmatch(name):
        raise _LineError(f"{name!r} is not a variable name (letters, digits and '_')")
    if rest[:1] in ("'", '"'):
        value, used = _quoted_value(rest, following)
        return name, value, used
    return name, re.split(r"\s+#", rest, maxsplit=1)[0].strip(), 0


def _quoted_value(rest: str, following: list[str]) -> tuple[str, int]:
    quote, body, used = rest[0], rest[1:], 0
    while (end := _closing_quote(body, quote)) < 0:
        if used >= len(following):
            raise _LineError(f"the {quote} quote is never closed", used)
        body += "\n" + following[used]
        used += 1
    tail = body[end + 1 :].strip()
    if tail and not tail.startswith("#"):
        raise _LineError(f"unexpected text after the closing quote: {tail!r}")
    value = body[:end]
    return (_unescape(value) if quote == '"' else value), used


def _closing_quote(body: str, quote: str) -> int:
    if quote == "'":
        return body.find("'")
    index = 0
    while index < len(body):
        if body[index] == "\\":
            index += 2
            continue
        if body[index] == '"':
            return index
        index += 1
    return -1


def _unescape(value: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[0]), value, flags=re.DOTALL)


def _load_yaml_file(path: Path, text: str) -> dict[str, VarValue]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigError(
            _file_problem(path, 1, "nested too deeply", "variables are `NAME: value` lines")
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            _file_problem(path, line, f"not valid YAML: {problem}", "fix the YAML syntax")
        ) from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            _file_problem(path, _line(root), "expected a mapping", "write one `NAME: value` a line")
        )
    found: dict[str, VarValue] = {}
    problems: list[Problem] = []
    for key_node, value_node in root.value:
        try:
            name, value = _yaml_entry(key_node, value_node)
        except _NodeError as exc:
            problems.append(_file_problem(path, exc.line, exc.message, exc.hint))
            continue
        why = masking_problem(value) if value.masked else None
        if why is not None:
            message = f"{name} cannot be masked: {why}"
            problems.append(_file_problem(path, _line(key_node), message, MASKING_HINT))
        found[name] = value
    if problems:
        raise ConfigError(problems)
    return found


class _NodeError(Exception):
    def __init__(self, node: yaml.Node, message: str, hint: str) -> None:
        super().__init__(message)
        self.line, self.message, self.hint = _line(node), message, hint


def _yaml_entry(key_node: yaml.Node, value_node: yaml.Node) -> tuple[str, VarValue]:
    name = _scalar(key_node)
    if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
        raise _NodeError(key_node, f"{name!r} is not a variable name", "use letters, digits, _")
    if not isinstance(value_node, yaml.MappingNode):
        return name, VarValue(_value_text(value_node))
    fields: dict[str, yaml.Node] = {}
    for field_key, field_value in value_node.value:
        key = _scalar(field_key)
        if key not in _VARIABLE_KEYS:
            allowed = ", ".join(sorted(_VARIABLE_KEYS))
            raise _NodeError(field_key, f"{name}: unknown key {key!r}", f"allowed: {allowed}")
        fields[str(key)] = field_value
    value = _value_text(fields["value"]) if "value" in fields else ""
    return name, VarValue(
        value,
        raw=not _flag(name, fields, "expand", default=True),
        masked=_flag(name, fields, "masked", default=False),
        file=_flag(name, fields, "file", default=False),
    )


def _flag(name: str, fields: Mapping[str, yaml.Node], key: str, *, default: bool) -> bool:
    if key not in fields:
        return default
    flag = _scalar(fields[key])
    if not isinstance(flag, bool):
        raise _NodeError(fields[key], f"{name}: {key} must be true or false", f"{key}: true")
    return flag


def _value_text(node: yaml.Node) -> str:
    value = _scalar(node)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float | date):
        return str(value)
    raise _NodeError(node, "a variable value must be a string, number or boolean", "quote it")


def _scalar(node: yaml.Node) -> object:
    if not isinstance(node, yaml.ScalarNode):
        return _NotScalar(node)
    return yaml.SafeLoader("").construct_object(node)


@dataclass(frozen=True, slots=True)
class _NotScalar:
    """A variables-file value that is a list or a mapping (an error)."""

    node: yaml.Node

    def __repr__(self) -> str:
        return "a list" if isinstance(self.node, yaml.SequenceNode) else "a mapping"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _file_problem(path: Path, line: int, message: str, hint: str) -> Problem:
    return Problem(message, location=Location(str(path), line), hint=hint)
