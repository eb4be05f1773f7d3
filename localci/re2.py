"""GitLab's `/regex/flags` (RE2, via Gitlab::UntrustedRegexp): one parser from RE2 syntax to a
small AST, the equivalent Python `re` pattern (for match groups), and a linear-time matcher (a
Thompson NFA run as a lazily built, bounded DFA) for untrusted text."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from localci.errors import ConfigError

__all__ = [
    "DFA_BUDGET",
    "LINE_END",
    "LINE_START",
    "MAX_PROGRAM",
    "MAX_REPEAT",
    "NOT_WORD_BOUNDARY",
    "TEXT_END",
    "TEXT_START",
    "WORD_BOUNDARY",
    "Alternate",
    "AnyChar",
    "Assertion",
    "CharClass",
    "Concat",
    "Group",
    "LinearMatcher",
    "Literal",
    "Node",
    "Re2SyntaxError",
    "Repeat",
    "compile_matcher",
    "parse",
    "program_size",
    "to_python",
]

MAX_REPEAT = 1000
# RE2's instruction budget with its default max_mem (8 MiB, 2/3 of it for the forward program,
# 4 bytes of overhead per 8-byte instruction); localci's count of a program is close to RE2's.
MAX_PROGRAM = 174_762


class Re2SyntaxError(ConfigError):
    """A regex that RE2 rejects (or that localci cannot run); `offset` indexes the body."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# ---- the AST -----------------------------------------------------------------------------------

TEXT_START = "text_start"
TEXT_END = "text_end"
LINE_START = "line_start"
LINE_END = "line_end"
WORD_BOUNDARY = "word_boundary"
NOT_WORD_BOUNDARY = "not_word_boundary"


@dataclass(frozen=True, slots=True)
class Literal:
    """One character; `fold`: matches what Python's `(?i:c)` matches."""

    code: int
    fold: bool


@dataclass(frozen=True, slots=True)
class CharClass:
    """A bracket or Perl class: normalized code point ranges, then negation, then `fold`."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool
    fold: bool


@dataclass(frozen=True, slots=True)
class AnyChar:
    """`.` (`newline`: with the `s` flag, or `\\C`)."""

    newline: bool


@dataclass(frozen=True, slots=True)
class Assertion:
    """An empty-width assertion: one of the kinds above."""

    kind: str


@dataclass(frozen=True, slots=True)
class Group:
    body: Node
    capturing: bool
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Repeat:
    """`sub` repeated min..max (None: unbounded) times; `op` is the quantifier as Python reads
    it (`*`, `+`, `?`, `{2}`, `{2,}`, `{2,5}`)."""

    sub: Node
    min: int
    max: int | None
    greedy: bool
    op: str


@dataclass(frozen=True, slots=True)
class Concat:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alternate:
    options: tuple[Node, ...]


Node = Literal | CharClass | AnyChar | Assertion | Group | Repeat | Concat | Alternate


# ---- character sets ----------------------------------------------------------------------------

_MAX_RUNE = 0x10FFFF
_Ranges = tuple[tuple[int, int], ...]
_WORD_RANGES: _Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_PERL_CLASSES: dict[str, _Ranges] = {
    "d": ((0x30, 0x39),),
    "s": ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)),
    "w": _WORD_RANGES,
}
_POSIX_CLASSES: dict[str, _Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": _WORD_RANGES,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_WORD_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")


def _normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges: _Ranges | list[tuple[int, int]]) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    start = 0
    for lo, hi in _normalize(list(ranges)):
        if lo > start:
            result.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_RUNE:
        result.append((start, _MAX_RUNE))
    return result


def _is_cased(char: str) -> bool:
    return char.lower() != char.upper() or char.casefold() != char


# ---- the parser --------------------------------------------------------------------------------

_C_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
_ESCAPE_ASSERTIONS = {"A": TEXT_START, "z": TEXT_END, "b": WORD_BOUNDARY, "B": NOT_WORD_BOUNDARY}
_ESCAPE_HINTS = {
    "Z": r"RE2 has no \Z; use \z (end of text) or $",
    "h": r"RE2 has no \h; use [[:xdigit:]] or [0-9a-fA-F]",
    "G": r"RE2 has no \G",
    "k": "named backreferences are not supported by RE2",
    "E": r"\E without a preceding \Q",
    "8": "backreferences are not supported by RE2",
    "9": "backreferences are not supported by RE2",
}
_UNSUPPORTED_GROUPS = (
    ("(?=", "lookahead assertions are not supported by RE2"),
    ("(?!", "negative lookahead assertions are not supported by RE2"),
    ("(?<=", "lookbehind assertions are not supported by RE2"),
    ("(?<!", "negative lookbehind assertions are not supported by RE2"),
    ("(?>", "atomic groups are not supported by RE2"),
    ("(?#", "(?#comments) are not supported by RE2"),
    ("(?P=", "backreferences are not supported by RE2"),
    ("(?P>", "recursion is not supported by RE2"),
    ("(?|", "branch-reset groups are not supported by RE2"),
)
_NAMED_GROUP = re.compile(r"\(\?P?<(\w+)>")
_REPEAT = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def _repeat_size(sub: int, low: int, high: int | None) -> int:
    """Instructions of the expanded repeat, as `_Builder` emits them."""
    if high is None:
        return low * sub + (sub if low == 0 else 0) + 1
    return low * sub + (high - low) * (sub + 1)


def _within_repeat_limit(node: Repeat) -> bool:
    """RE2's RepetitionWalker: nested `{n,m}` counts may not multiply past 1000."""
    stack: list[tuple[Node, int]] = [(node, MAX_REPEAT)]
    while stack:
        item, budget = stack.pop()
        if isinstance(item, Repeat):
            if item.op.startswith("{"):
                count = item.min if item.max is None else item.max
                budget = budget // count if count > 0 else budget
                if budget == 0:
                    return False
            stack.append((item.sub, budget))
        elif isinstance(item, Group):
            stack.append((item.body, budget))
        elif isinstance(item, Concat):
            stack.extend((sub, budget) for sub in item.items)
        elif isinstance(item, Alternate):
            stack.extend((sub, budget) for sub in item.options)
    return True


@dataclass(slots=True)
class _Frame:
    """An open group while parsing: its finished alternatives and the current concatenation."""

    outer_flags: frozenset[str]
    capturing: bool
    name: str | None = None
    options: list[Node] = field(default_factory=list)
    options_size: int = 0
    items: list[Node] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def push(self, node: Node, size: int) -> None:
        self.items.append(node)
        self.sizes.append(size)

    def end_option(self) -> None:
        self.options.append(Concat(tuple(self.items)))
        self.options_size += sum(self.sizes)
        self.items, self.sizes = [], []

    def finish(self) -> tuple[Node, int]:
        self.end_option()
        count = len(self.options)
        body = self.options[0] if count == 1 else Alternate(tuple(self.options))
        return body, self.options_size + count - 1


class _Parser:
    """Walks an RE2 pattern once, rejecting what RE2 rejects, and builds the AST.

    Flags are resolved per atom (a literal knows whether it folds case, `.` whether it matches a
    newline) because RE2 lets `(?i)` appear anywhere and scope to the rest of the group.
    """

    def __init__(self, source: str, flags: str) -> None:
        self.src = source
        self.pos = 0
        self.flags = frozenset(flags)
        self.frames = [_Frame(self.flags, capturing=False)]
        self.can_repeat = False
        self.just_repeated = False
        self.names: set[str] = set()
        self.handlers: dict[str, Callable[[], None]] = {
            "(": self._open_group,
            ")": self._close_group,
            "|": self._alternate,
            "*": lambda: self._repeat("*", 1, 0, None),
            "+": lambda: self._repeat("+", 1, 1, None),
            "?": lambda: self._repeat("?", 1, 0, 1),
            "{": self._brace,
            "[": self._char_class,
            "\\": self._escape,
            ".": lambda: self._atom(AnyChar("s" in self.flags), 1),
            "^": lambda: self._atom(Assertion(LINE_START if "m" in self.flags else TEXT_START), 1),
            "$": lambda: self._atom(Assertion(LINE_END if "m" in self.flags else TEXT_END), 1),
        }

    def parse(self) -> Node:
        while self.pos < len(self.src):
            self.handlers.get(self.src[self.pos], self._plain_char)()
        if len(self.frames) > 1:
            raise Re2SyntaxError("missing closing )", len(self.src))
        node, size = self.frames[0].finish()
        if size > MAX_PROGRAM:
            raise Re2SyntaxError("pattern too large - compile failed", 0)
        return node

    def _fail(self, message: str) -> Re2SyntaxError:
        return Re2SyntaxError(message, self.pos)

    def _atom(self, node: Node, width: int, size: int = 1) -> None:
        self.frames[-1].push(node, size)
        self.pos += width
        self.can_repeat = True
        self.just_repeated = False

    def _literal(self, code: int) -> None:
        self._atom(Literal(code, "i" in self.flags and _is_cased(chr(code))), 0)

    def _plain_char(self) -> None:
        self.pos += 1
        self._literal(ord(self.src[self.pos - 1]))

    def _alternate(self) -> None:
        self.frames[-1].end_option()
        self.pos += 1
        self.can_repeat = False
        self.just_repeated = False

    def _repeat(self, quantifier: str, width: int, low: int, high: int | None) -> None:
        if self.just_repeated:
            raise self._fail(f"bad repetition operator {quantifier!r} (repeats cannot be stacked)")
        if not self.can_repeat:
            raise self._fail(f"missing argument to repetition operator {quantifier!r}")
        start = self.pos
        self.pos += width
        lazy = self.src.startswith("?", self.pos)
        self.pos += lazy
        frame = self.frames[-1]
        sub, sub_size = frame.items.pop(), frame.sizes.pop()
        node = Repeat(sub, low, high, lazy == ("U" in self.flags), quantifier)
        if (low >= 2 or (high or 0) >= 2) and not _within_repeat_limit(node):
            message = f"bad repetition operator {quantifier!r} (nested counts multiply past 1000)"
            raise Re2SyntaxError(message, start)
        frame.push(node, _repeat_size(sub_size, low, high))
        self.just_repeated = True

    def _brace(self) -> None:
        match = _REPEAT.match(self.src, self.pos)
        if match is None:
            self._plain_char()
            return
        low = int(match[1])
        high = low if not match[2] else int(match[3]) if match[3] else None
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise self._fail(f"bad repetition operator {match[0]!r} (counts go up to 1000)")
        quantifier = f"{{{low}}}" if high == low else f"{{{low},{'' if high is None else high}}}"
        self._repeat(quantifier, len(match[0]), low, high)

    # -- groups

    def _open_group(self) -> None:
        if not self.src.startswith("(?", self.pos):
            self._push_group(self.flags, True, None, 1)
            return
        for prefix, message in _UNSUPPORTED_GROUPS:
            if self.src.startswith(prefix, self.pos):
                raise self._fail(message)
        named = _NAMED_GROUP.match(self.src, self.pos)
        if named is not None:
            if named[1] in self.names:
                raise self._fail(f"duplicate capture group name {named[1]!r}")
            self.names.add(named[1])
            self._push_group(self.flags, True, named[1], len(named[0]))
            return
        self._flag_group()

    def _flag_group(self) -> None:
        end = self.pos + 2
        added: set[str] = set()
        removed: set[str] = set()
        negated = False
        while end < len(self.src) and self.src[end] not in ":)":
            char = self.src[end]
            if char == "-" and not negated:
                negated = True
            elif char in "imsU":
                (removed if negated else added).add(char)
            else:
                group = self.src[self.pos : end + 1]
                raise self._fail(f"invalid or unsupported group syntax {group!r}")
            end += 1
        if end >= len(self.src):
            raise self._fail("missing closing )")
        plain_group = self.src[end] == ":" and not (added or removed or negated)
        if not plain_group and (not (added or removed) or (negated and not removed)):
            raise self._fail(f"invalid group flags {self.src[self.pos : end + 1]!r}")
        flags = (self.flags | added) - removed
        if self.src[end] == ")":
            self.flags = flags
            self.pos = end + 1
            return
        self._push_group(flags, False, None, end + 1 - self.pos)

    def _push_group(
        self, flags: frozenset[str], capturing: bool, name: str | None, width: int
    ) -> None:
        self.frames.append(_Frame(self.flags, capturing, name))
        self.flags = flags
        self.pos += width
        self.can_repeat = False
        self.just_repeated = False

    def _close_group(self) -> None:
        if len(self.frames) == 1:
            raise self._fail("unexpected ) without a matching (")
        frame = self.frames.pop()
        self.flags = frame.outer_flags
        body, size = frame.finish()
        self._atom(Group(body, frame.capturing, frame.name), 1, size)

    # -- escapes

    def _escape(self) -> None:
        if self.pos + 1 >= len(self.src):
            raise self._fail("trailing backslash at the end of the regex")
        char = self.src[self.pos + 1]
        if char in _ESCAPE_ASSERTIONS:
            self._atom(Assertion(_ESCAPE_ASSERTIONS[char]), 2)
        elif char == "C":
            self._atom(AnyChar(newline=True), 2)
        elif char == "Q":
            self._quoted()
        elif char in "pP":
            raise self._fail(rf"Unicode classes (\{char}) are not supported by localci")
        elif char.lower() in _PERL_CLASSES:
            self._atom(CharClass(tuple(_perl_ranges(char)), negated=False, fold=False), 2)
        else:
            self._literal(self._literal_escape())

    def _quoted(self) -> None:
        start = self.pos + 2
        end = self.src.find(r"\E", start)
        stop = len(self.src) if end < 0 else end
        self.pos = start
        for char in self.src[start:stop]:
            self._literal(ord(char))
        self.pos = len(self.src) if end < 0 else end + 2

    def _literal_escape(self) -> int:
        """Parse `\\x` at self.pos as a literal character (RE2's ParseEscape) and consume it."""
        char = self.src[self.pos + 1]
        self.pos += 2
        if char in _OCTAL:
            return self._octal(char)
        if char == "x":
            return self._hex()
        if char in _C_ESCAPES:
            return _C_ESCAPES[char]
        if char.isascii() and not char.isalnum():
            return ord(char)
        self.pos -= 2
        hint = _ESCAPE_HINTS.get(char, "RE2 does not know this escape")
        raise self._fail(f"invalid escape sequence \\{char} ({hint})")

    def _octal(self, first: str) -> int:
        if first != "0" and not self.src.startswith(tuple(_OCTAL), self.pos):
            self.pos -= 2
            raise self._fail(f"invalid escape \\{first}: backreferences are not supported by RE2")
        code = int(first)
        for _ in range(2):
            if self.pos < len(self.src) and self.src[self.pos] in _OCTAL:
                code = code * 8 + int(self.src[self.pos])
                self.pos += 1
        return code

    def _hex(self) -> int:
        if self.src.startswith("{", self.pos):
            end = self.src.find("}", self.pos)
            digits = self.src[self.pos + 1 : end] if end > 0 else ""
            if not digits or any(d not in _HEX for d in digits) or int(digits, 16) > _MAX_RUNE:
                raise self._fail(r"invalid escape sequence \x{...}")
            self.pos = end + 1
            return int(digits, 16)
        digits = self.src[self.pos : self.pos + 2]
        if len(digits) != 2 or any(d not in _HEX for d in digits):
            raise self._fail(r"invalid escape sequence \x (needs two hex digits or \x{...})")
        self.pos += 2
        return int(digits, 16)

    # -- character classes

    def _char_class(self) -> None:
        start = self.pos
        self.pos += 1
        negated = self.src.startswith("^", self.pos)
        self.pos += negated
        ranges: list[tuple[int, int]] = []
        first = True
        while self.pos >= len(self.src) or self.src[self.pos] != "]" or first:
            if self.pos >= len(self.src):
                self.pos = start
                raise self._fail("missing closing ] of a character class")
            first = False
            ranges.extend(self._class_item())
        self.pos += 1
        self._atom(CharClass(tuple(_normalize(ranges)), negated, "i" in self.flags), 0)

    def _class_item(self) -> list[tuple[int, int]]:
        posix = self._posix_class()
        if posix is not None:
            return posix
        if self.src.startswith("\\", self.pos) and self.pos + 1 < len(self.src):
            char = self.src[self.pos + 1]
            if char in "pP":
                raise self._fail(rf"Unicode classes (\{char}) are not supported by localci")
            if char.lower() in _PERL_CLASSES:
                self.pos += 2
                return _perl_ranges(char)
        low = self._class_single()
        after_dash = self.src[self.pos + 1 : self.pos + 2]
        if self.src.startswith("-", self.pos) and after_dash not in ("]", ""):
            self.pos += 1
            high = self._class_single()
            if high < low:
                raise self._fail(f"invalid character class range {chr(low)}-{chr(high)}")
            return [(low, high)]
        return [(low, low)]

    def _class_single(self) -> int:
        if self.src.startswith("\\", self.pos):
            if self.pos + 1 >= len(self.src):
                raise self._fail("missing closing ] of a character class")
            return self._literal_escape()
        self.pos += 1
        return ord(self.src[self.pos - 1])

    def _posix_class(self) -> list[tuple[int, int]] | None:
        if not self.src.startswith("[:", self.pos):
            return None
        end = self.src.find(":]", self.pos + 2)
        if end < 0:
            return None
        name = self.src[self.pos + 2 : end]
        negated = name.startswith("^")
        ranges = _POSIX_CLASSES.get(name.removeprefix("^"))
        if ranges is None:
            raise self._fail(f"invalid character class [:{name}:]")
        self.pos = end + 2
        return _complement(ranges) if negated else list(ranges)


def _perl_ranges(char: str) -> list[tuple[int, int]]:
    ranges = _PERL_CLASSES[char.lower()]
    return list(ranges) if char.islower() else _complement(ranges)


def parse(pattern: str, flags: str = "") -> Node:
    """The AST of an RE2 pattern with global flags from `imsU`; Re2SyntaxError where RE2 (or
    localci) rejects it, with the offset of the offending text in `pattern`."""
    return _Parser(pattern, flags).parse()


# ---- Python emission ---------------------------------------------------------------------------

_W = "[0-9A-Za-z_]"
# RE2's \b and \B are ASCII-only; Python's would be Unicode-aware.
_PYTHON_ASSERTIONS = {
    TEXT_START: r"(?:\A)",
    TEXT_END: r"(?:\Z)",
    LINE_START: "(?m:^)",
    LINE_END: "(?m:$)",
    WORD_BOUNDARY: f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))",
    NOT_WORD_BOUNDARY: f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))",
}


def _class_char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\U{code:08x}"


def _class_text(ranges: _Ranges, negated: bool) -> str:
    parts = [
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}" for lo, hi in ranges
    ]
    if not parts:
        return "[^\\x00-\\U0010ffff]" if not negated else "(?s:.)"
    return ("[^" if negated else "[") + "".join(parts) + "]"


def _atom_text(node: Literal | CharClass | AnyChar | Assertion) -> str:
    if isinstance(node, Assertion):
        return _PYTHON_ASSERTIONS[node.kind]
    if isinstance(node, AnyChar):
        return "(?s:.)" if node.newline else "."
    if isinstance(node, Literal):
        text = re.escape(chr(node.code))
    else:
        text = _class_text(node.ranges, node.negated)
    # Flags are applied per atom because Python's global inline flags cannot scope like RE2's.
    return f"(?i:{text})" if node.fold else text


def to_python(node: Node) -> str:
    """The equivalent Python `re` pattern (same groups, same matches); use `.search()`."""
    out: list[str] = []
    stack: list[Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Group):
            stack += [")", item.body, "(" if item.capturing else "(?:"]
        elif isinstance(item, Repeat):
            stack += [item.op + ("" if item.greedy else "?"), item.sub]
        elif isinstance(item, Concat):
            stack += reversed(item.items)
        elif isinstance(item, Alternate):
            parts: list[Node | str] = []
            for option in item.options:
                parts += ["|", option]
            stack += reversed(parts[1:])
        else:
            out.append(_atom_text(item))
    return "".join(out)


# ---- the NFA -----------------------------------------------------------------------------------

_CHAR, _SPLIT, _ASSERT, _MATCH = range(4)
# Empty-width conditions that hold at a position; an _ASSERT instruction needs its bit set.
_AT_TEXT_START, _AT_TEXT_END, _AT_LINE_START, _AT_LINE_END, _AT_BOUNDARY, _AT_NON_BOUNDARY = (
    1 << bit for bit in range(6)
)
_ASSERT_BITS = {
    TEXT_START: _AT_TEXT_START,
    TEXT_END: _AT_TEXT_END,
    LINE_START: _AT_LINE_START,
    LINE_END: _AT_LINE_END,
    WORD_BOUNDARY: _AT_BOUNDARY,
    NOT_WORD_BOUNDARY: _AT_NON_BOUNDARY,
}
# What a DFA state remembers of the character before it.
_PREV_START, _PREV_NEWLINE, _PREV_WORD = 1, 2, 4
# What the next character is.
_NEXT_END, _NEXT_NEWLINE, _NEXT_WORD, _NEXT_OTHER = range(4)

_CharTest = Callable[[str], bool]
_SMALL_CLASS = 256


def _next_kind(char: str) -> int:
    if char == "\n":
        return _NEXT_NEWLINE
    return _NEXT_WORD if char in _WORD_CHARS else _NEXT_OTHER


def _conditions(prev: int, following: int) -> int:
    """The empty-width conditions between a character described by `prev` and the next."""
    prev_word = bool(prev & _PREV_WORD)
    next_word = following == _NEXT_WORD
    bits = _AT_BOUNDARY if prev_word != next_word else _AT_NON_BOUNDARY
    if prev & _PREV_START:
        bits |= _AT_TEXT_START | _AT_LINE_START
    if prev & _PREV_NEWLINE:
        bits |= _AT_LINE_START
    if following == _NEXT_END:
        bits |= _AT_TEXT_END | _AT_LINE_END
    if following == _NEXT_NEWLINE:
        bits |= _AT_LINE_END
    return bits


_CONDITIONS = tuple(tuple(_conditions(prev, nxt) for nxt in range(4)) for prev in range(8))
_PREV_AFTER = {_NEXT_NEWLINE: _PREV_NEWLINE, _NEXT_WORD: _PREV_WORD, _NEXT_OTHER: 0}


def _ranges_test(ranges: _Ranges) -> _CharTest:
    lows = tuple(lo for lo, _ in ranges)
    highs = tuple(hi for _, hi in ranges)

    def test(char: str) -> bool:
        code = ord(char)
        index = bisect_right(lows, code) - 1
        return index >= 0 and code <= highs[index]

    return test


def _fold_test(pattern: re.Pattern[str]) -> _CharTest:
    known: dict[str, bool] = {}

    def test(char: str) -> bool:
        found = known.get(char)
        if found is None:
            found = pattern.fullmatch(char) is not None
            if len(known) < _SMALL_CLASS:
                known[char] = found
        return found

    return test


@lru_cache(maxsize=1024)
def _char_test(node: Literal | CharClass | AnyChar) -> _CharTest:
    if isinstance(node, AnyChar):
        return (lambda _char: True) if node.newline else "\n".__ne__
    if node.fold:
        # Python's case-insensitive matching is the reference semantics (the emitted pattern).
        return _fold_test(re.compile(_atom_text(node)))
    if isinstance(node, Literal):
        return chr(node.code).__eq__
    if sum(hi - lo + 1 for lo, hi in node.ranges) <= _SMALL_CLASS:
        members = frozenset(chr(code) for lo, hi in node.ranges for code in range(lo, hi + 1))
        return (lambda char: char not in members) if node.negated else members.__contains__
    return _ranges_test(tuple(_complement(node.ranges)) if node.negated else node.ranges)


def _no_char(_char: str) -> bool:
    return False


class _Program:
    """A Thompson NFA in parallel arrays, built back to front from the AST."""

    def __init__(self, node: Node) -> None:
        self.kinds: list[int] = []
        self.outs: list[int] = []
        self.alts: list[int] = []
        self.tests: list[_CharTest] = []
        self.bits: list[int] = []
        self.start = self._build(node, self._add(_MATCH))
        self.assert_mask = 0
        for bit in self.bits:
            self.assert_mask |= bit
        self.prev_mask = self._prev_mask()
        nowhere = self.closure((self.start,), ~_AT_TEXT_START)
        self.anchored = not nowhere[0] and not nowhere[1]

    def _prev_mask(self) -> int:
        mask = 0
        if self.assert_mask & (_AT_TEXT_START | _AT_LINE_START):
            mask |= _PREV_START
        if self.assert_mask & _AT_LINE_START:
            mask |= _PREV_NEWLINE
        if self.assert_mask & (_AT_BOUNDARY | _AT_NON_BOUNDARY):
            mask |= _PREV_WORD
        return mask

    def _add(
        self, kind: int, out: int = -1, alt: int = -1, test: _CharTest = _no_char, bit: int = 0
    ) -> int:
        self.kinds.append(kind)
        self.outs.append(out)
        self.alts.append(alt)
        self.tests.append(test)
        self.bits.append(bit)
        return len(self.kinds) - 1

    def _build(self, node: Node, nxt: int) -> int:
        while isinstance(node, Group):
            node = node.body
        if isinstance(node, Concat):
            for item in reversed(node.items):
                nxt = self._build(item, nxt)
            return nxt
        if isinstance(node, Alternate):
            starts = [self._build(option, nxt) for option in node.options]
            head = starts[-1]
            for start in reversed(starts[:-1]):
                head = self._add(_SPLIT, start, head)
            return head
        if isinstance(node, Repeat):
            return self._build_repeat(node, nxt)
        if isinstance(node, Assertion):
            return self._add(_ASSERT, nxt, bit=_ASSERT_BITS[node.kind])
        return self._add(_CHAR, nxt, test=_char_test(node))

    def _build_repeat(self, node: Repeat, nxt: int) -> int:
        if node.max is None:
            loop = self._add(_SPLIT, -1, nxt)
            body = self._build(node.sub, loop)
            self.outs[loop] = body
            head = loop if node.min == 0 else body
            copies = max(node.min - 1, 0)
        else:
            head = nxt
            for _ in range(node.max - node.min):
                head = self._add(_SPLIT, self._build(node.sub, head), nxt)
            copies = node.min
        for _ in range(copies):
            head = self._build(node.sub, head)
        return head

    def closure(
        self, pcs: tuple[int, ...] | frozenset[int], bits: int
    ) -> tuple[tuple[int, ...], bool]:
        """The character-consuming instructions reachable from `pcs` without consuming, where the
        empty-width conditions `bits` hold, and whether a match is reachable."""
        kinds, outs, alts, need = self.kinds, self.outs, self.alts, self.bits
        seen: set[int] = set()
        stack = list(pcs)
        consumers: list[int] = []
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            kind = kinds[pc]
            if kind == _CHAR:
                consumers.append(pc)
            elif kind == _SPLIT:
                stack.append(alts[pc])
                stack.append(outs[pc])
            elif kind == _ASSERT:
                if need[pc] & bits:
                    stack.append(outs[pc])
            else:
                return tuple(consumers), True
        return tuple(consumers), False


def program_size(node: Node) -> int:
    """The number of NFA instructions `node` compiles to, not counting the final match."""
    return len(_Program(node).kinds) - 1


# ---- the lazy DFA ------------------------------------------------------------------------------

_MATCHED, _DEAD = -1, -2
# The DFA cache's size limit in units (about 60 bytes each): one per cached transition and one
# per NFA instruction held in a state or a closure; ~3 MB per pattern at most.
DFA_BUDGET = 50_000

_StateKey = tuple[frozenset[int], int]


class _Generation:
    """One bounded cache of DFA states: state i is a set of NFA instructions (not yet closed
    over empty-width moves) plus what the previous character was."""

    __slots__ = ("closures", "cost", "ends", "index", "keys", "trans")

    def __init__(self) -> None:
        self.trans: list[dict[str, int]] = []
        self.keys: list[_StateKey] = []
        self.index: dict[_StateKey, int] = {}
        self.closures: list[dict[int, tuple[tuple[int, ...], bool]]] = []
        self.ends: list[bool | None] = []
        self.cost = 0

    def state(self, key: _StateKey) -> int:
        found = self.index.get(key)
        if found is not None:
            return found
        self.trans.append({})
        self.keys.append(key)
        self.closures.append({})
        self.ends.append(None)
        self.index[key] = len(self.keys) - 1
        self.cost += len(key[0]) + 4
        return len(self.keys) - 1


class LinearMatcher:
    """`search(text)`: is there a match anywhere in `text`, in time linear in its length.

    DFA states are built on first use and cached; when the cache outgrows its budget it starts
    over, so memory stays bounded and each character costs at most one NFA step.
    """

    __slots__ = ("_gen", "_program")

    def __init__(self, node: Node) -> None:
        self._program = _Program(node)
        self._gen = self._fresh()

    def _fresh(self) -> _Generation:
        gen = _Generation()
        gen.state((frozenset((self._program.start,)), _PREV_START & self._program.prev_mask))
        self._gen = gen
        return gen

    @property
    def cache_cost(self) -> int:
        """The DFA cache's current size in DFA_BUDGET units (it stays near the budget)."""
        return self._gen.cost

    def search(self, text: str) -> bool:
        gen = self._gen
        trans = gen.trans
        state = 0
        for char in text:
            try:
                nxt = trans[state][char]
            except KeyError:
                gen, nxt = self._transition(gen, state, char)
                trans = gen.trans
            if nxt < 0:
                return nxt == _MATCHED
            state = nxt
        known = gen.ends[state]
        return self._accepts_at_end(gen, state) if known is None else known

    def _closure(
        self, gen: _Generation, state: int, following: int
    ) -> tuple[tuple[int, ...], bool]:
        program = self._program
        bits = _CONDITIONS[gen.keys[state][1]][following] & program.assert_mask
        cache = gen.closures[state]
        found = cache.get(bits)
        if found is None:
            found = cache[bits] = program.closure(gen.keys[state][0], bits)
            gen.cost += len(found[0]) + 1
        return found

    def _transition(self, gen: _Generation, state: int, char: str) -> tuple[_Generation, int]:
        if gen.cost > DFA_BUDGET:
            key = gen.keys[state]
            gen = self._fresh()
            state = gen.state(key)
        program = self._program
        following = _next_kind(char)
        consumers, matched = self._closure(gen, state, following)
        if matched:
            nxt = _MATCHED
        else:
            tests, outs = program.tests, program.outs
            targets = {outs[pc] for pc in consumers if tests[pc](char)}
            if not program.anchored:
                targets.add(program.start)
            prev = _PREV_AFTER[following] & program.prev_mask
            nxt = gen.state((frozenset(targets), prev)) if targets else _DEAD
        gen.trans[state][char] = nxt
        gen.cost += 1
        return gen, nxt

    def _accepts_at_end(self, gen: _Generation, state: int) -> bool:
        known = gen.ends[state]
        if known is None:
            known = gen.ends[state] = self._closure(gen, state, _NEXT_END)[1]
        return known


@lru_cache(maxsize=256)
def compile_matcher(pattern: str, flags: str = "") -> LinearMatcher:
    """A cached linear-time matcher for an RE2 pattern (see `parse`)."""
    node = parse(pattern, flags)
    try:
        return LinearMatcher(node)
    except RecursionError:
        raise Re2SyntaxError("the regex nests too deeply for localci", 0) from None
