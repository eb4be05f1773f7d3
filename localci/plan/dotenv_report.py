"""GitLab's `artifacts:reports:dotenv` format: variables a job passes to later jobs (§10.5)."""

from __future__ import annotations

import re

from localci.errors import Location, Problem
from localci.plan.variable_values import VARIABLE_NAME, DotenvError

_RUBY_SPACE = " \t\n\v\f\r\0"


def parse_dotenv_report(
    text: str | bytes,
    *,
    max_bytes: int = 5 * 1024,
    max_variables: int = 20,
    filename: str = "dotenv report",
) -> dict[str, str]:
    """Parse an `artifacts:reports:dotenv` file exactly as GitLab does (§10.5).

    Every line must be `KEY=VALUE` (split at the first `=`, both sides stripped, quotes kept,
    no comments, no blank lines, no `export`); keys are `[A-Za-z0-9_]+`; the last duplicate
    wins. Any bad line rejects the whole report. GitLab checks the size of the gzip'ed upload
    (< 5 KB) and the count (≤ 20, the default instance limit); so does this.
    """
    import gzip

    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if len(gzip.compress(data)) >= max_bytes:
        raise DotenvError(
            Problem(f"{filename}: too big; GitLab accepts dotenv reports under {max_bytes} bytes")
        )
    try:
        decoded = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise DotenvError(Problem(f"{filename}: not valid UTF-8")) from None
    variables: dict[str, str] = {}
    for number, line in enumerate(_ruby_lines(decoded), start=1):
        key, value = _dotenv_report_line(line, Location(filename, number))
        variables[key] = value
    if len(variables) > max_variables:
        raise DotenvError(
            Problem(f"{filename}: {len(variables)} variables; the limit is {max_variables}")
        )
    return variables


def _ruby_lines(text: str) -> list[str]:
    """Ruby `each_line`: split after each "\\n" only; no empty last line."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _dotenv_report_line(line: str, where: Location) -> tuple[str, str]:
    match = re.fullmatch(r"(.*?)=(.*)", line.removesuffix("\n"))
    if match is None:
        raise DotenvError(
            Problem("invalid format: every line must be KEY=VALUE", where, hint=_DOTENV_HINT)
        )
    key, value = match[1].strip(_RUBY_SPACE), match[2].strip(_RUBY_SPACE)
    if not VARIABLE_NAME.fullmatch(key) or len(key) > 255:
        raise DotenvError(
            Problem(f"invalid key {key!r}: only letters, digits and '_'", where, hint=_DOTENV_HINT)
        )
    return key, value


_DOTENV_HINT = "GitLab rejects the whole report: no blank lines, comments or `export`"
