"""The `rules:if` expression language exactly as GitLab parses and evaluates it (lexer,
shunting-yard parser, Ruby value semantics, `explain` traces) and the translation of GitLab's RE2
`/regex/flags` literals into Python `re` patterns."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from localci.errors import ConfigError

__all__ = [
    "Expression",
    "ExpressionError",
    "compile_ruby_regex",
    "parse_expression",
    "parse_regex_literal",
]


class ExpressionError(ConfigError, ValueError):
    """An `if:` expression or a `/regex/` literal that GitLab would reject."""

    def __init__(self, message: str, expression: str, position: int | None = None) -> None:
        self.message = message.rstrip(".")
        self.expression = expression
        self.position = position
        where = "" if position is None else f" at column {position + 1}"
        super().__init__(f"Invalid CI expression {expression!r}{where}: {self.message}.")


# ---- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Regex:
    """A compiled `/body/flags` value (GitLab's UntrustedRegexp)."""

    body: str
    flags: str
    pattern: re.Pattern[str] = field(compare=False)

    def __str__(self) -> str:
        return f"/{self.body}/{self.flags}"


def _truthy(value: object) -> bool:
    """Ruby truthiness: only nil and false are false."""
    return value is not None and value is not False


def _present(value: object) -> bool:
    """ActiveSupport `present?`: not nil, false, whitespace-only string or empty collection."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    if isinstance(value, list | tuple | dict):
        return len(value) > 0
    return True


def _ruby_equal(left: object, right: object) -> bool:
    """Ruby `==` between expression values (no cross-type coercion except Integer/Float)."""
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_ruby_equal, left, right))
    return type(left) is type(right) and left == right


def _inspect(value: object) -> str:
    """Ruby's `inspect`, enough for values nested in an array."""
    if value is None:
        return "nil"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _to_s(value)


def _to_s(value: object) -> str:
    """Ruby's `to_s`, used for the left side of `=~`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inspect(item) for item in value) + "]"
    return str(value)


def _show(value: object) -> str:
    """A value as a user reads it in `explain` output."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return _to_s(value)


# ---- RE2 -> Python translation -----------------------------------------------------------------

_MAX_RUNE = 0x10FFFF
_MAX_REPEAT = 1000
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
_W = "[0-9A-Za-z_]"
# RE2's \b and \B are ASCII-only; Python's would be Unicode-aware.
_ASSERTIONS = {
    "A": r"(?:\A)",
    "z": r"(?:\Z)",
    "b": f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))",
    "B": f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))",
    "C": "(?s:.)",
}
_C_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
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


class _Re2Error(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges: _Ranges) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    start = 0
    for lo, hi in _normalize(list(ranges)):
        if lo > start:
            result.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_RUNE:
        result.append((start, _MAX_RUNE))
    return result


def _class_char(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else f"\\U{code:08x}"


def _class_text(ranges: list[tuple[int, int]], negated: bool = False) -> str:
    parts = [
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
        for lo, hi in _normalize(ranges)
    ]
    if not parts:
        return "[^\\x00-\\U0010ffff]" if not negated else "(?s:.)"
    return ("[^" if negated else "[") + "".join(parts) + "]"


class _Re2Translator:
    """Walks an RE2 pattern once and emits an equivalent Python pattern.

    Flags are applied per atom (`(?i:x)`, `(?s:.)`, `(?m:^)`) because RE2 lets `(?i)` appear
    anywhere and scope to the rest of the group, which Python's global inline flags cannot express.
    """

    def __init__(self, source: str, flags: str) -> None:
        self.src = source
        self.pos = 0
        self.flags = frozenset(flags)
        self.saved: list[frozenset[str]] = []
        self.out: list[str] = []
        self.can_repeat = False
        self.just_repeated = False
        self.names: set[str] = set()
        self.handlers: dict[str, Callable[[], None]] = {
            "(": self._open_group,
            ")": self._close_group,
            "|": self._alternate,
            "*": lambda: self._repeat("*", 1),
            "+": lambda: self._repeat("+", 1),
            "?": lambda: self._repeat("?", 1),
            "{": self._brace,
            "[": self._char_class,
            "\\": self._escape,
            ".": lambda: self._atom("(?s:.)" if "s" in self.flags else ".", 1),
            "^": lambda: self._atom("(?m:^)" if "m" in self.flags else r"(?:\A)", 1),
            "$": lambda: self._atom("(?m:$)" if "m" in self.flags else r"(?:\Z)", 1),
        }

    def translate(self) -> str:
        while self.pos < len(self.src):
            self.handlers.get(self.src[self.pos], self._plain_char)()
        if self.saved:
            raise _Re2Error("missing closing )", len(self.src))
        return "".join(self.out)

    def _fail(self, message: str) -> _Re2Error:
        return _Re2Error(message, self.pos)

    def _atom(self, text: str, width: int) -> None:
        self.out.append(text)
        self.pos += width
        self.can_repeat = True
        self.just_repeated = False

    def _literal(self, code: int) -> None:
        char = chr(code)
        text = re.escape(char)
        if "i" in self.flags and (char.lower() != char.upper() or char.casefold() != char):
            text = f"(?i:{text})"
        self._atom(text, 0)

    def _plain_char(self) -> None:
        self.pos += 1
        self._literal(ord(self.src[self.pos - 1]))

    def _alternate(self) -> None:
        self.out.append("|")
        self.pos += 1
        self.can_repeat = False
        self.just_repeated = False

    def _repeat(self, quantifier: str, width: int) -> None:
        if self.just_repeated:
            raise self._fail(f"bad repetition operator {quantifier!r} (repeats cannot be stacked)")
        if not self.can_repeat:
            raise self._fail(f"missing argument to repetition operator {quantifier!r}")
        self.pos += width
        lazy = self.src.startswith("?", self.pos)
        self.pos += lazy
        self.out.append(quantifier + ("?" if lazy != ("U" in self.flags) else ""))
        self.just_repeated = True

    def _brace(self) -> None:
        match = _REPEAT.match(self.src, self.pos)
        if match is None:
            self._plain_char()
            return
        low = int(match[1])
        high = low if not match[2] else int(match[3]) if match[3] else None
        if low > _MAX_REPEAT or (high is not None and (high > _MAX_REPEAT or high < low)):
            raise self._fail(f"bad repetition operator {match[0]!r} (counts go up to 1000)")
        quantifier = f"{{{low}}}" if high == low else f"{{{low},{'' if high is None else high}}}"
        self._repeat(quantifier, len(match[0]))

    # -- groups

    def _open_group(self) -> None:
        if not self.src.startswith("(?", self.pos):
            self._push_group(self.flags, "(", 1)
            return
        for prefix, message in _UNSUPPORTED_GROUPS:
            if self.src.startswith(prefix, self.pos):
                raise self._fail(message)
        named = _NAMED_GROUP.match(self.src, self.pos)
        if named is not None:
            if named[1] in self.names:
                raise self._fail(f"duplicate capture group name {named[1]!r}")
            self.names.add(named[1])
            self._push_group(self.flags, "(", len(named[0]))
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
        self._push_group(flags, "(?:", end + 1 - self.pos)

    def _push_group(self, flags: frozenset[str], text: str, width: int) -> None:
        self.saved.append(self.flags)
        self.flags = flags
        self.out.append(text)
        self.pos += width
        self.can_repeat = False
        self.just_repeated = False

    def _close_group(self) -> None:
        if not self.saved:
            raise self._fail("unexpected ) without a matching (")
        self.flags = self.saved.pop()
        self._atom(")", 1)

    # -- escapes

    def _escape(self) -> None:
        if self.pos + 1 >= len(self.src):
            raise self._fail("trailing backslash at the end of the regex")
        char = self.src[self.pos + 1]
        if char in _ASSERTIONS:
            self._atom(_ASSERTIONS[char], 2)
        elif char == "Q":
            self._quoted()
        elif char in "pP":
            raise self._fail(rf"Unicode classes (\{char}) are not supported by localci")
        elif char.lower() in _PERL_CLASSES:
            self._atom(self._perl_class(char), 2)
        else:
            self._literal(self._literal_escape())

    def _perl_class(self, char: str) -> str:
        ranges = _PERL_CLASSES[char.lower()]
        return _class_text(list(ranges) if char.islower() else _complement(ranges))

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
        text = _class_text(ranges, negated)
        if "i" in self.flags:
            text = f"(?i:{text})"
        self._atom(text, 0)

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
                ranges = _PERL_CLASSES[char.lower()]
                return list(ranges) if char.islower() else _complement(ranges)
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


@lru_cache(maxsize=2048)
def _translate(pattern: str, flags: str) -> re.Pattern[str] | tuple[str, int]:
    try:
        python = _Re2Translator(pattern, flags).translate()
    except _Re2Error as exc:
        return exc.message, exc.offset
    try:
        return re.compile(python)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"localci cannot translate this regex to Python ({exc})", 0


def compile_ruby_regex(pattern: str, flags: str = "") -> re.Pattern[str]:
    """Compile the body and flags of a GitLab `/pattern/flags` literal (RE2 syntax, flags from
    `i`, `m`, `s`, `U` with RE2's meaning) into an equivalent Python pattern; use `.search()`."""
    literal = f"/{pattern}/{flags}"
    bad_flags = sorted(set(flags) - set("imsU"))
    if bad_flags:
        raise ExpressionError(f"unknown regex flag(s) {''.join(bad_flags)!r}", literal)
    result = _translate(pattern, flags)
    if isinstance(result, tuple):
        message, offset = result
        raise ExpressionError(f"invalid regular expression: {message}", literal, offset + 1)
    return result


# GitLab's Gitlab::UntrustedRegexp::RubySyntax::PATTERN, with Ruby's line anchors.
_RUBY_SYNTAX = re.compile(r"^/(.*)/([ismU]*)$", re.MULTILINE)


def _regex_parts(text: str) -> tuple[str, str] | None:
    match = _RUBY_SYNTAX.search(text.replace("\\/", "/"))
    return None if match is None else (match[1], match[2])


def parse_regex_literal(text: str) -> re.Pattern[str] | None:
    """`"/^release-.*$/i"` -> compiled pattern (use `.search()`, GitLab matches unanchored);
    None when `text` is not a `/.../flags` literal; ExpressionError when the regex is invalid."""
    parts = _regex_parts(text)
    return None if parts is None else compile_ruby_regex(*parts)


def _regex_value(text: str) -> _Regex | None:
    """A variable's value as a regex, as GitLab's Pattern.build_and_evaluate: None if not one."""
    parts = _regex_parts(text)
    if parts is None:
        return None
    try:
        return _Regex(parts[0], parts[1], compile_ruby_regex(*parts))
    except ExpressionError:
        return None


# ---- lexer -------------------------------------------------------------------------------------

_MAX_TOKENS = 100
_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")
# In GitLab's order (lexer.rb LEXEMES): the first lexeme that matches at the position wins.
_LEXEMES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("(", re.compile(r"\(")),
    (")", re.compile(r"\)")),
    ("input", re.compile(r"\$\[\[[ \t\r\n\f\v]*inputs\.([A-Za-z0-9_]+)[ \t\r\n\f\v]*\]\]")),
    ("variable", re.compile(r"\$([A-Za-z0-9_]+)")),
    ("string", re.compile(r"\"([^\n]*?)\"|'([^\n]*?)'")),
    ("regex", re.compile(r"/(?:[^/]|\\/)+[^\\]/[ismU]*")),
    ("null", re.compile(r"null")),
    ("boolean", re.compile(r"(?:true|false)(?![A-Za-z0-9_])")),
    ("==", re.compile(r"==")),
    ("=~", re.compile(r"=~")),
    ("!=", re.compile(r"!=")),
    ("!~", re.compile(r"!~")),
    ("&&", re.compile(r"&&")),
    ("||", re.compile(r"\|\|")),
)
_PRECEDENCE = {"==": 10, "!=": 10, "=~": 10, "!~": 10, "&&": 11, "||": 12}
_OPEN_PRECEDENCE = 901
_CLOSE_PRECEDENCE = 900


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    match: re.Match[str] = field(compare=False, repr=False)

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        space = _WHITESPACE.match(text, pos)
        pos = space.end() if space else pos
        if pos >= len(text):
            return tokens
        if len(tokens) == _MAX_TOKENS - 1:
            # GitLab scans at most 100 lexemes and then fails even if only whitespace remains.
            raise ExpressionError("too many tokens (GitLab allows at most 99)", text, pos)
        token = _next_token(text, pos)
        tokens.append(token)
        pos = token.end


def _next_token(text: str, pos: int) -> _Token:
    for kind, pattern in _LEXEMES:
        match = pattern.match(text, pos)
        if match is not None:
            return _Token(kind, match[0], pos, match)
    raise ExpressionError(_unknown_lexeme(text, pos), text, pos)


def _unknown_lexeme(text: str, pos: int) -> str:
    rest = text[pos:]
    word = re.match(r"[A-Za-z0-9_.-]+", rest)
    hints = (
        (rest.startswith("${"), "`${VAR}` is not supported in if: expressions, write `$VAR`"),
        (rest.startswith("%"), "`%VAR%` is not supported in if: expressions, write `$VAR`"),
        (rest.startswith("$"), "a variable is `$` followed by letters, digits or `_`"),
        (
            rest.startswith("/"),
            "not a valid regex literal: GitLab needs at least two characters "
            "between the slashes (write /a+/ or /[a]/ rather than /a/) and a "
            "slash inside must be escaped as \\/",
        ),
        (rest[:1] in "\"'", f"unterminated string starting with {rest[:1]}"),
        (rest.startswith("!"), "`!` alone is not an operator; use `!=` or `!~`"),
        (rest.startswith("="), "use `==` to compare or `=~` to match"),
        (rest[:1] in "&|", "use `&&` or `||`"),
        (
            word is not None,
            f"unexpected word {word[0] if word else ''!r}: strings must be "
            "quoted, variables start with `$`",
        ),
    )
    return next((hint for hit, hint in hints if hit), f"unexpected character {rest[:1]!r}")


# ---- parser ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Constant:
    value: str | bool | _Regex | None
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Input:
    name: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node
    start: int
    end: int


_Node = _Constant | _Variable | _Input | _Binary


def _leaf(token: _Token, text: str) -> _Node:
    start, end, match = token.start, token.end, token.match
    if token.kind == "variable":
        return _Variable(match[1], start, end)
    if token.kind == "input":
        return _Input(match[1], start, end)
    if token.kind == "string":
        value = match[1] if match[1] is not None else match[2]
        return _Constant(value, start, end)
    if token.kind == "boolean":
        return _Constant(token.text == "true", start, end)
    if token.kind == "regex":
        return _Constant(_regex_token(token, text), start, end)
    return _Constant(None, start, end)


def _regex_token(token: _Token, text: str) -> _Regex:
    parts = _regex_parts(token.text)
    if parts is None:
        raise ExpressionError(f"invalid regular expression {token.text}", text, token.start)
    try:
        return _Regex(parts[0], parts[1], compile_ruby_regex(*parts))
    except ExpressionError as exc:
        raise ExpressionError(f"{exc.message} in {token.text}", text, token.start) from None


def _precedence(token: _Token) -> int:
    return _OPEN_PRECEDENCE if token.kind == "(" else _PRECEDENCE[token.kind]


def _to_rpn(tokens: list[_Token], text: str) -> list[_Token]:
    """GitLab's shunting-yard (parser.rb tokens_rpn), including what it silently accepts."""
    output: list[_Token] = []
    operators: list[_Token] = []
    for token in tokens:
        if token.kind in _PRECEDENCE:
            while operators and _PRECEDENCE[token.kind] >= _precedence(operators[-1]):
                output.append(operators.pop())
            operators.append(token)
        elif token.kind == "(":
            operators.append(token)
        elif token.kind == ")":
            while operators and _precedence(operators[-1]) <= _CLOSE_PRECEDENCE:
                output.append(operators.pop())
            if not operators:
                raise ExpressionError("unmatched closing parenthesis", text, token.start)
            operators.pop()
        else:
            output.append(token)
    return output + operators[::-1]


def _build_tree(rpn: list[_Token], text: str) -> _Node:
    stack: list[_Node] = []
    for token in rpn:
        if token.kind == "(":
            raise ExpressionError("this parenthesis is never closed", text, token.start)
        if token.kind not in _PRECEDENCE:
            stack.append(_leaf(token, text))
            continue
        if len(stack) < 2:
            raise ExpressionError(
                f"the operator {token.kind!r} needs a value on each side", text, token.start
            )
        right, left = stack.pop(), stack.pop()
        start, end = min(left.start, token.start), max(right.end, token.end)
        stack.append(_Binary(token.kind, left, right, start, end))
    if not stack:
        raise ExpressionError("the expression is empty", text)
    if len(stack) > 1:
        extra = stack[1]
        raise ExpressionError(
            f"{text[extra.start : extra.end]!r} follows another value without an operator "
            "(==, !=, =~, !~, &&, ||) between them",
            text,
            extra.start,
        )
    return stack[0]


# ---- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    text: str
    variables: Mapping[str, str]
    inputs: Mapping[str, object]
    steps: list[str] | None

    def note(self, message: str) -> None:
        if self.steps is not None:
            self.steps.append(message)

    def snippet(self, node: _Node) -> str:
        return self.text[node.start : node.end]


def _evaluate(node: _Node, ctx: _Context) -> object:
    if isinstance(node, _Binary):
        return _OPERATORS[node.op](node, ctx)
    if isinstance(node, _Variable):
        value = ctx.variables.get(node.name)
        defined = f"is {_show(value)}" if value is not None else "is not defined (null)"
        ctx.note(f"${node.name} {defined}")
        return value
    if isinstance(node, _Input):
        result = ctx.inputs.get(node.name)
        ctx.note(f"$[[ inputs.{node.name} ]] is {_show(result)}")
        return result
    return node.value


def _word(flag: bool) -> str:
    return "true" if flag else "false"


def _equals(node: _Binary, ctx: _Context) -> object:
    left, right = _evaluate(node.left, ctx), _evaluate(node.right, ctx)
    same = _ruby_equal(left, right)
    result = same if node.op == "==" else not same
    ctx.note(f"{ctx.snippet(node)}: {_show(left)} {node.op} {_show(right)} is {_word(result)}")
    return result


def _matches(node: _Binary, ctx: _Context) -> object:
    left, right = _evaluate(node.left, ctx), _evaluate(node.right, ctx)
    negate = node.op == "!~"
    if not _truthy(right):
        ctx.note(
            f"{ctx.snippet(node)}: the right side is {_show(right)}, so {node.op} is "
            f"{_word(negate)}"
        )
        return negate
    found, how = _match(_to_s(left), right, ctx, node)
    result = found != negate
    ctx.note(f"{ctx.snippet(node)}: {how} -> {_word(result)}")
    return result


def _match(text: str, right: object, ctx: _Context, node: _Binary) -> tuple[bool, str]:
    regex = right if isinstance(right, _Regex) else None
    if regex is None and isinstance(right, str):
        regex = _regex_value(right)
        if regex is None:
            # GitLab falls back to String#scan: a substring test of the left inside the right.
            found = text in right
            verb = "is" if found else "is not"
            return found, (
                f"{text!r} {verb} a substring of {right!r} (the right side is not a "
                "/regex/, so GitLab tests for a substring)"
            )
    if regex is None:
        raise ExpressionError(
            f"the right side of {node.op} is {_show(right)}, not a regex or a string",
            ctx.text,
            node.right.start,
        )
    found = regex.pattern.search(text) is not None
    return found, f"{text!r} {'matches' if found else 'does not match'} {regex}"


def _logical(node: _Binary, ctx: _Context) -> object:
    left = _evaluate(node.left, ctx)
    short_circuits = _truthy(left) == (node.op == "||")
    snippet = ctx.snippet(node)
    if short_circuits:
        state = "truthy" if node.op == "||" else "falsy"
        ctx.note(
            f"{snippet}: the left side is {_show(left)} ({state}), so the right side is not "
            f"evaluated; value {_show(left)}"
        )
        return left
    right = _evaluate(node.right, ctx)
    ctx.note(
        f"{snippet}: the left side is {_show(left)}, so the value is the right side {_show(right)}"
    )
    return right


_OPERATORS: dict[str, Callable[[_Binary, _Context], object]] = {
    "==": _equals,
    "!=": _equals,
    "=~": _matches,
    "!~": _matches,
    "&&": _logical,
    "||": _logical,
}


def _walk(node: _Node) -> Iterator[_Node]:
    yield node
    if isinstance(node, _Binary):
        yield from _walk(node.left)
        yield from _walk(node.right)


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed `if:` expression; evaluation follows GitLab's Ruby semantics exactly."""

    text: str
    root: _Node

    @property
    def variable_names(self) -> frozenset[str]:
        """The `$NAMES` the expression reads."""
        return frozenset(n.name for n in _walk(self.root) if isinstance(n, _Variable))

    def evaluate(
        self, variables: Mapping[str, str], *, inputs: Mapping[str, object] | None = None
    ) -> bool:
        """True iff the final value is `present?`; ExpressionError for a right side of `=~`
        that is neither a regex nor a string (GitLab crashes there)."""
        ctx = _Context(self.text, variables, inputs or {}, None)
        return _present(_evaluate(self.root, ctx))

    def truthful(self, variables: Mapping[str, str]) -> bool:
        """GitLab's `Statement#truthful?` (only/except:variables): errors count as false."""
        try:
            return self.evaluate(variables)
        except ExpressionError:
            return False

    def explain(
        self, variables: Mapping[str, str], *, inputs: Mapping[str, object] | None = None
    ) -> tuple[bool, list[str]]:
        """The result plus readable steps: each lookup, each comparison, the verdict."""
        steps: list[str] = []
        value = _evaluate(self.root, _Context(self.text, variables, inputs or {}, steps))
        result = _present(value)
        reason = "present" if result else "blank (null, false, empty or only whitespace)"
        steps.append(f"result: {_word(result)} (the final value {_show(value)} is {reason})")
        return result, steps


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> Expression:
    """Parse an `if:` expression as GitLab does; ExpressionError where GitLab says "invalid
    expression syntax" (unknown lexeme, > 99 tokens, invalid regex, unbalanced parentheses,
    operators without operands, values without operators)."""
    tokens = _tokenize(text)
    if not tokens:
        raise ExpressionError("the expression is empty", text)
    return Expression(text, _build_tree(_to_rpn(tokens, text), text))
