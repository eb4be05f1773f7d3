"""The three glob dialects GitLab uses: Ruby `File.fnmatch?` (rules:changes/exists), include:local
wildcards, and gitlab-runner's doublestar (artifacts/cache paths), plus a safe directory walker."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "doublestar_match",
    "fnmatch_ruby",
    "glob_tree",
    "include_wildcard_match",
    "project_relative_pattern",
]

_MAX_ALTERNATIVES = 4096
_NEVER = "(?!)"
_SEGMENT_CHAR = "[^/]"


class _BadPattern(ValueError):
    pass


def _class_char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\U{code:08x}"


def _class_regex(items: list[tuple[int, int]], negated: bool) -> str:
    """A one-character class that never matches `/` (both dialects are segment-bound)."""
    body = "".join(
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}" for lo, hi in items
    )
    if negated:
        return f"[^{body}/]"
    return f"(?!/)[{body}]" if body else _NEVER


def _check_alternatives(count: int, pattern: str) -> None:
    if count > _MAX_ALTERNATIVES:
        raise ValueError(f"glob {pattern!r} expands to more than {_MAX_ALTERNATIVES} alternatives")


def _expand_braces(pattern: str, first_group: Callable[[str], tuple[int, int] | None]) -> list[str]:
    """Expand brace groups one at a time (a worklist, so deep nesting cannot overflow the stack).
    `first_group` gives the span of the first `{...}`; a span ending at -1 drops the pattern."""
    done: list[str] = []
    pending = [pattern]
    while pending:
        current = pending.pop()
        group = first_group(current)
        if group is None:
            done.append(current)
            continue
        left, right = group
        if right >= 0:
            head, tail = current[:left], current[right + 1 :]
            alternatives = _split_alternatives(current[left + 1 : right])
            pending.extend(head + alternative + tail for alternative in alternatives)
        _check_alternatives(len(done) + len(pending), pattern)
    return done


# ---- Ruby File.fnmatch?(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB) ----------


def _ruby_first_group(pattern: str) -> tuple[int, int] | None:
    """Ruby's ruby_brace_expand (dir.c): the first balanced `{...}`. An unbalanced `{` gives
    (left, -1): Ruby then calls nothing, so such a glob never matches."""
    left = -1
    nest = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "{":
            nest += 1
            left = i if nest == 1 else left
        elif char == "}" and left >= 0:
            nest -= 1
            if nest == 0:
                return left, i
        elif char == "\\":
            i += 1
        i += 1
    return None if left < 0 else (left, -1)


def _split_alternatives(body: str) -> list[str]:
    """Split a brace body on its top-level commas, honouring nested braces and escapes."""
    parts: list[str] = []
    nest = 0
    start = i = 0
    while i < len(body):
        char = body[i]
        if char == "," and nest == 0:
            parts.append(body[start:i])
            start = i + 1
        elif char in "{}":
            nest += 1 if char == "{" else -1
        elif char == "\\":
            i += 1
        i += 1
    parts.append(body[start:])
    return parts


def _ruby_bracket(pattern: str, pos: int) -> tuple[str, int] | None:
    """Ruby's bracket(): parse `[...]` after the `[`; None if never closed (never matches)."""
    negated = pattern[pos : pos + 1] in ("!", "^")
    pos += negated
    items: list[tuple[int, int]] = []
    while pos < len(pattern) and pattern[pos] != "]":
        low, pos = _ruby_class_char(pattern, pos)
        if low is None:
            return None
        if pattern[pos : pos + 1] == "-" and pattern[pos + 1 : pos + 2] not in ("]", ""):
            high, pos = _ruby_class_char(pattern, pos + 1)
            if high is None:
                return None
            # Ruby compares the endpoints literally before the range, so [z-a] matches z and a.
            items.extend([(low, high)] if low <= high else [(low, low), (high, high)])
        else:
            items.append((low, low))
    if pos >= len(pattern):
        return None
    return _class_regex(items, negated), pos + 1


def _ruby_class_char(pattern: str, pos: int) -> tuple[int | None, int]:
    if pattern[pos] == "\\":
        pos += 1
    if pos >= len(pattern):
        return None, pos
    return ord(pattern[pos]), pos + 1


def _ruby_to_regex(pattern: str) -> str:
    out: list[str] = []
    pos = 0
    segment_start = True
    while pos < len(pattern):
        if segment_start and pattern.startswith("**/", pos):
            while pattern.startswith("**/", pos):
                pos += 3
            out.append("(?:[^/]*/)*")
            continue
        char = pattern[pos]
        segment_start = char == "/"
        if char == "*":
            while pattern.startswith("*", pos):
                pos += 1
            out.append(_SEGMENT_CHAR + "*")
            continue
        if char == "[":
            bracket = _ruby_bracket(pattern, pos + 1)
            if bracket is None:
                return _NEVER
            out.append(bracket[0])
            pos = bracket[1]
            continue
        if char == "?":
            out.append(_SEGMENT_CHAR)
            pos += 1
            continue
        if char == "\\":
            # A backslash escapes the next character; at the very end it matches nothing.
            pos += 1
            if pos >= len(pattern):
                break
            char = pattern[pos]
            segment_start = char == "/"
        out.append(re.escape(char))
        pos += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def _ruby_regex(pattern: str) -> re.Pattern[str]:
    expanded = _expand_braces(pattern, _ruby_first_group)
    if not expanded:
        return re.compile(_NEVER)
    alternatives = dict.fromkeys(_ruby_to_regex(p) for p in expanded)
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.DOTALL)


def fnmatch_ruby(pattern: str, path: str) -> bool:
    """Ruby `File.fnmatch?(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)`:
    `*`/`?`/`[...]` never cross `/`, `**/` is zero or more directories (a `**` not followed by
    `/` is a plain `*`), `{a,b}` alternation, dot files matched, backslash escapes."""
    return _ruby_regex(pattern).fullmatch(path) is not None


# ---- include:local wildcards ---------------------------------------------------------------


@lru_cache(maxsize=1024)
def _include_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", pattern.lstrip("/"))
    wildcards = {"**": ".*", "*": "[^/]*"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def include_wildcard_match(pattern: str, path: str) -> bool:
    """GitLab include:local wildcards: `*` any characters but `/`, `**` any characters, every
    other character literal, whole path anchored, a leading `/` of the pattern ignored."""
    return _include_regex(pattern).fullmatch(path) is not None


# ---- gitlab-runner doublestar (bmatcuk/doublestar v4) ----------------------------------------


def _class_end(pattern: str, pos: int) -> int:
    """Index just after the `]` closing the class at `pos` (doublestar's scan), or -1."""
    i = pos + 1
    if pattern[i : i + 1] in ("!", "^"):
        i += 1
    if pattern[i : i + 1] in ("]", ""):
        return -1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 1
        elif pattern[i] == "]":
            return i + 1
        i += 1
    return -1


def _closing_brace(pattern: str, pos: int) -> int:
    nest = 0
    i = pos
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1
        elif char == "{":
            nest += 1
        elif char == "}":
            nest -= 1
            if nest == 0:
                return i
        i += 1
    raise _BadPattern(f"unclosed '{{' in {pattern!r}")


def _doublestar_first_group(pattern: str) -> tuple[int, int] | None:
    """The first `{...}` outside classes and escapes; _BadPattern for unclosed ones."""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
        elif char == "[":
            i = _class_end(pattern, i)
            if i < 0:
                raise _BadPattern(f"bad character class in {pattern!r}")
        elif char == "{":
            return i, _closing_brace(pattern, i)
        else:
            i += 1
    return None


def _doublestar_class(pattern: str, pos: int) -> tuple[str, int]:
    """doublestar's class: a `-` after a character starts a range; `last` resets after one."""
    end = _class_end(pattern, pos)
    i = pos + 1
    negated = pattern[i] in "!^"
    i += negated
    items: list[tuple[int, int]] = []
    last: int | None = None
    while i < end - 1:
        char = pattern[i]
        if char == "-" and last is not None and i + 1 < end - 1:
            i += 1 + (pattern[i + 1] == "\\")
            items.append((last, ord(pattern[i])))
            last = None
        else:
            if char == "\\":
                i += 1
            last = ord(pattern[i])
            items.append((last, last))
        i += 1
    # A reversed range matches nothing (doublestar compares last <= c <= hi).
    return _class_regex([(lo, hi) for lo, hi in items if lo <= hi], negated), end


@dataclass(frozen=True, slots=True)
class _Token:
    """One step of doublestar's matcher: its regex, the same forced to consume at least one
    character, and where the step ends in the pattern text."""

    regex: str
    consuming: str
    end: int


# What may remain of a pattern once the path is used up (doublestar's isZeroLengthPattern).
_ZERO_LENGTH_RESTS = frozenset({"", "*", "**", "/**", "**/", "/**/"})


def _doublestar_star(pattern: str, pos: int, segment_start: bool) -> _Token:
    if segment_start and pattern.startswith("**", pos):
        after = pos + 2
        if after == len(pattern):
            return _Token(".*", ".+", after)
        if pattern[after] == "/":
            return _Token("(?:.*/)?", ".*/", after + 1)
    while pattern.startswith("*", pos):
        pos += 1
    return _Token(_SEGMENT_CHAR + "*", _SEGMENT_CHAR + "+", pos)


def _doublestar_tokens(pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    segment_start = True
    while pos < len(pattern):
        char = pattern[pos]
        if char == "*":
            token = _doublestar_star(pattern, pos, segment_start)
        elif char == "[":
            regex, end = _doublestar_class(pattern, pos)
            token = _Token(regex, regex, end)
        elif char == "?":
            token = _Token(_SEGMENT_CHAR, _SEGMENT_CHAR, pos + 1)
        else:
            if char == "\\":
                pos += 1
                if pos >= len(pattern):
                    raise _BadPattern(f"trailing backslash in {pattern!r}")
                char = pattern[pos]
            token = _Token(re.escape(char), re.escape(char), pos + 1)
        segment_start = char == "/" or token.regex == "(?:.*/)?"
        tokens.append(token)
        pos = token.end
    return tokens


def _doublestar_to_regex(pattern: str) -> str:
    """doublestar stops as soon as the path is used up and then accepts only if the rest of the
    pattern is literally one of _ZERO_LENGTH_RESTS (so `a/**` matches `a` but `a*/**` does not):
    one alternative per step that can consume the path's last character."""
    tokens = _doublestar_tokens(pattern)
    alternatives: list[str] = []
    for count in range(len(tokens), -1, -1):
        rest = pattern[tokens[count - 1].end :] if count else pattern
        if rest not in _ZERO_LENGTH_RESTS:
            continue
        head = "".join(t.regex for t in tokens[: count - 1]) if count else ""
        alternatives.append(head + (tokens[count - 1].consuming if count else ""))
    return "|".join(alternatives) if alternatives else _NEVER


@lru_cache(maxsize=4096)
def _doublestar_regex(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; _BadPattern where doublestar returns ErrBadPattern."""
    expanded = _expand_braces(pattern, _doublestar_first_group)
    alternatives = dict.fromkeys(_doublestar_to_regex(p) for p in expanded)
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.DOTALL)


def doublestar_match(pattern: str, path: str) -> bool:
    """gitlab-runner's `doublestar.Match(pattern, path)`: `**` as a whole segment matches zero
    or more segments (`dir/**` also matches `dir`), `*`/`?`/`[...]` stay inside a segment,
    `{a,b}` alternation, dot files are not special. A malformed pattern (unclosed `[` or `{`,
    empty class, trailing backslash) matches nothing, as the runner ignores it."""
    try:
        regex = _doublestar_regex(pattern)
    except _BadPattern:
        return False
    return regex.fullmatch(path) is not None


def _clean_pattern(pattern: str) -> str:
    """Go's filepath.Join/Clean as applied by the runner, refusing to leave the root."""
    if pattern.startswith("/"):
        raise ValueError(
            f"glob {pattern!r} is absolute; paths must be relative to the project directory"
        )
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise ValueError(f"glob {pattern!r} contains '..'; it may not leave the project directory")
    return "/".join(segments)


def _literal_prefix(pattern: str) -> tuple[str, int | None]:
    """The leading directories without glob syntax, and how many segments may follow them
    (None when `**` or braces make the depth unbounded)."""
    segments = pattern.split("/")
    literal: list[str] = []
    for segment in segments[:-1]:
        if any(c in segment for c in "*?[{\\"):
            break
        literal.append(segment)
    rest = segments[len(literal) :]
    unbounded = "**" in pattern or "{" in pattern
    return "/".join(literal), None if unbounded else len(rest)


def _walk(root: Path, relative: str, depth: int | None) -> list[str]:
    found: list[str] = []
    try:
        entries = list(os.scandir(root / relative if relative else root))
    except OSError:
        return found
    for entry in entries:
        path = f"{relative}/{entry.name}" if relative else entry.name
        found.append(path)
        if (depth is None or depth > 1) and entry.is_dir(follow_symlinks=False):
            found.extend(_walk(root, path, None if depth is None else depth - 1))
    return found


def _real_directories(root: Path, parts: list[str]) -> bool:
    """True when each of `parts` below root is a directory and not a symlink."""
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            return False
    return True


def _candidates(root: Path, base: str, depth: int | None) -> list[str]:
    """Every path the pattern could name: `base` itself and what lies below it."""
    if not base:
        return _walk(root, "", depth)
    parts = base.split("/")
    if not _real_directories(root, parts[:-1]):
        return []
    path = root / base
    if not path.is_symlink() and path.is_dir():
        return [base, *_walk(root, base, depth)]
    return [base] if path.is_symlink() or path.exists() else []


def glob_tree(root: Path, pattern: str) -> list[str]:
    """Relative POSIX paths of files and directories under `root` matching `doublestar_match`,
    sorted. `.`/empty segments are dropped (a pattern of just `.` yields `["."]`); symlinked
    directories are listed but never entered. ValueError for absolute patterns, `..` segments
    and malformed patterns."""
    cleaned = _clean_pattern(pattern)
    if not cleaned:
        return ["."]
    try:
        regex = _doublestar_regex(cleaned)
    except _BadPattern as exc:
        raise ValueError(f"invalid glob {pattern!r}: {exc}") from None
    base, depth = _literal_prefix(cleaned)
    return sorted(p for p in _candidates(root, base, depth) if regex.fullmatch(p))


def project_relative_pattern(project_dir: Path, pattern: str) -> str:
    """The runner's treatment of an artifacts/cache path: the part before the first glob
    character may be absolute (`$CI_PROJECT_DIR/public`) or use `..`; it is resolved lexically
    and must stay inside `project_dir` (ValueError otherwise). Returns a pattern for glob_tree."""
    meta = re.search(r"[*?\[{]", pattern)
    cut = pattern.rfind("/", 0, meta.start() if meta else len(pattern))
    base, rest = (pattern[:cut], pattern[cut + 1 :]) if cut >= 0 else ("", pattern)
    if pattern.startswith("/") and cut == 0:
        base = "/"
    absolute = posixpath.normpath(posixpath.join(project_dir.as_posix(), base or "."))
    relative = posixpath.relpath(absolute, posixpath.normpath(project_dir.as_posix()))
    if relative == ".." or relative.startswith("../"):
        raise ValueError(f"path {pattern!r} is not inside the project directory {project_dir}")
    return _clean_pattern(posixpath.join(relative, rest) if rest else relative) or "."
