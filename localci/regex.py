"""GitLab's regexes run by RE2 itself (Google's `google-re2` binding), as GitLab's
Gitlab::UntrustedRegexp does: RE2's syntax, RE2's semantics and RE2's linear time on any text.

Only GitLab's part is written here: a `/pattern/flags` literal becomes `(?flags)pattern`
(Gitlab::UntrustedRegexp::RubySyntax), compiled with RE2's default options and without RE2's
logging, and RE2's error message is turned into a located error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from localci.errors import ConfigError

__all__ = ["FLAGS", "Regex", "RegexMatch", "RegexSyntaxError", "compile_regex"]

# The flags GitLab's RubySyntax::PATTERN accepts after the closing slash.
FLAGS = "imsU"

# RE2 names the construct, not the reason: say why Python/Ruby habits fail here.
_HINTS = {
    "(?=": "lookahead assertions are not supported by RE2",
    "(?!": "negative lookahead assertions are not supported by RE2",
    "(?<=": "lookbehind assertions are not supported by RE2",
    "(?<!": "negative lookbehind assertions are not supported by RE2",
    "(?>": "atomic groups are not supported by RE2",
    "(?#": "(?#comments) are not supported by RE2",
    "(?P=": "backreferences are not supported by RE2",
}
_ESCAPE_HINTS = {
    "Z": r"RE2 has no \Z; use \z (end of text) or $",
    "h": r"RE2 has no \h; use [[:xdigit:]] or [0-9a-fA-F]",
    "G": r"RE2 has no \G",
    "k": "named backreferences are not supported by RE2",
}


class RegexSyntaxError(ConfigError):
    """A regex that RE2 rejects; `offset` indexes the pattern (0-based)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class RegexMatch:
    """One match: its whole text and its capture groups (None for a group that took no part)."""

    text: str
    groups: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Regex:
    """A compiled RE2 regex. Text is handed to RE2 as UTF-8 bytes, lone surrogates included
    (environment values and logs may carry them), so no text makes a search raise."""

    pattern: str
    flags: str
    compiled: Any = field(compare=False, repr=False)

    @property
    def group_count(self) -> int:
        return int(self.compiled.groups)

    def search(self, text: str) -> bool:
        """True when the regex matches anywhere in `text` (GitLab matches unanchored)."""
        return self.compiled.search(_utf8(text)) is not None

    def finditer(self, text: str) -> Iterator[RegexMatch]:
        """Non-overlapping matches from left to right, as Ruby's `scan` finds them."""
        for match in self.compiled.finditer(_utf8(text)):
            groups = tuple(None if group is None else _text(group) for group in match.groups())
            yield RegexMatch(_text(match.group(0)), groups)

    def __str__(self) -> str:
        return f"/{self.pattern}/{self.flags}"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


@lru_cache(maxsize=2048)
def compile_regex(pattern: str, flags: str = "") -> Regex:
    """The body and flags of a GitLab `/pattern/flags` literal as RE2 compiles them;
    RegexSyntaxError (with the offset in `pattern`) when RE2 or GitLab rejects it."""
    import re2  # type: ignore[import-untyped]  # untyped; imported on first use (6 ms)

    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise RegexSyntaxError(f"unknown regex flag(s) {''.join(unknown)!r}", len(pattern))
    options = re2.Options()
    options.log_errors = False
    prefix = f"(?{flags})" if flags else ""
    try:
        compiled = re2.compile(prefix + pattern, options)
    except re2.error as exc:
        raise _located(pattern, _text(exc.args[0]) if exc.args else "invalid regex") from None
    return Regex(pattern, flags, compiled)


def _located(pattern: str, message: str) -> RegexSyntaxError:
    """RE2's `what: where` message as an error at the offset of `where` in the pattern."""
    what, _, where = message.partition(": ")
    if what == "missing )":  # RE2 quotes the whole pattern: the group is open at its end
        return RegexSyntaxError(what, len(pattern))
    if what == "unexpected )":
        return RegexSyntaxError(what, _unmatched_close(pattern))
    if not where:
        return RegexSyntaxError(what, 0)
    offset = _find(pattern, where)
    hint = _hint(pattern, offset, where)
    message = f"{what}: {where}" + (f" ({hint})" if hint else "")
    return RegexSyntaxError(message, offset)


def _hint(pattern: str, offset: int, where: str) -> str | None:
    if where.startswith("\\") and where[1:2].isdigit():
        return "backreferences are not supported by RE2"
    if where.startswith("\\"):
        return _ESCAPE_HINTS.get(where[1:2])
    return next((text for start, text in _HINTS.items() if pattern.startswith(start, offset)), None)


def _find(pattern: str, where: str) -> int:
    offset = pattern.find(where)
    return offset if offset >= 0 else 0


# A `]` right after `[` or `[^` is a literal, not the end of the class.
_CLASS_START = re.compile(r"\[\^?\]?")


def _unmatched_close(pattern: str) -> int:
    """The offset of the first `)` that closes no group (escapes and classes skipped)."""
    depth, index, in_class = 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 1
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            index += (
                2
                if pattern.startswith("[^]", index)
                else 1
                if pattern.startswith("[]", index)
                else 0
            )
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return 0
