"""A variable's value and flags, the errors about variables, and GitLab's masking rules."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from localci.errors import ConfigError, Problem

#: What GitLab accepts as a variable name (`--var`, variables files, dotenv reports).
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class VarValue:
    """One variable value with the flags that change how it is expanded and exposed."""

    value: str
    raw: bool = False
    masked: bool = False
    file: bool = False


class CircularVariableError(ConfigError):
    """Variables reference each other in a loop; GitLab refuses to expand them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        super().__init__(
            Problem(
                f"circular variable reference detected: {', '.join(self.names)}",
                hint="break the loop, or mark one of them `expand: false`",
            )
        )


class DotenvError(ConfigError):
    """An `artifacts:reports:dotenv` file GitLab would reject as a whole."""


# GitLab's Ci::Maskable: an expanded masked value uses only these characters; a raw one
# (`expand: false`) anything but whitespace. Both need 8 characters and one line.
MASK_MIN_LENGTH = 8
_MASKABLE = re.compile(r"[a-zA-Z0-9_+=/@:.~-]*")
MASKING_HINT = (
    "GitLab refuses such a masked variable: use 8 or more characters from letters, digits "
    "and _+=/@:.~- on one line (`expand: false` also allows other non-space characters), "
    "or drop `masked`"
)


def masking_problem(var: VarValue) -> str | None:
    """Why GitLab would refuse `var` as a masked variable, or None when it may be masked."""
    value = var.value
    if "\n" in value or "\r" in value:
        return "it spans several lines"
    if len(value) < MASK_MIN_LENGTH:
        return f"it is shorter than {MASK_MIN_LENGTH} characters"
    if var.raw:
        spaces = re.search(r"\s", value)
        return "it contains whitespace" if spaces else None
    if _MASKABLE.fullmatch(value):
        return None
    bad = "".join(sorted({c for c in value if not _MASKABLE.fullmatch(c)}))
    return f"it contains {bad!r}, which an expanded masked variable cannot hold"


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-empty secret by `[MASKED]` (longest first)."""
    unique = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    if not unique:
        return text
    return re.sub("|".join(re.escape(secret) for secret in unique), "[MASKED]", text)
