"""The `rules:if` expression language exactly as GitLab parses and evaluates it (lexer,
shunting-yard parser, Ruby value semantics, `explain` traces) and GitLab's `/regex/flags` literals
(compiled and run by RE2 itself: localci/regex.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from localci.errors import ConfigError
from localci.regex import Regex, RegexSyntaxError, compile_regex

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
    matcher: Regex = field(compare=False)

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


# ---- regexes (RE2 itself: localci/regex.py) ---------------------------------------------------


def compile_ruby_regex(pattern: str, flags: str = "") -> Regex:
    """The body and flags of a GitLab `/pattern/flags` literal (RE2 syntax, flags from `i`, `m`,
    `s`, `U` with RE2's meaning) compiled by RE2: linear time, safe on attacker-controlled text."""
    try:
        return compile_regex(pattern, flags)
    except RegexSyntaxError as exc:
        literal = f"/{pattern}/{flags}"
        message = (
            exc.message
            if exc.message.startswith("unknown regex flag")
            else (f"invalid regular expression: {exc.message}")
        )
        raise ExpressionError(message, literal, exc.offset + 1) from None


# GitLab's Gitlab::UntrustedRegexp::RubySyntax::PATTERN, with Ruby's line anchors.
_RUBY_SYNTAX = re.compile(r"^/(.*)/([ismU]*)$", re.MULTILINE)


def _regex_parts(text: str) -> tuple[str, str] | None:
    match = _RUBY_SYNTAX.search(text.replace("\\/", "/"))
    return None if match is None else (match[1], match[2])


@lru_cache(maxsize=256)
def parse_regex_literal(text: str) -> Regex | None:
    """`"/^release-.*$/i"` -> compiled regex (`.search(text) -> bool`, unanchored as GitLab
    matches); None when `text` is not a `/.../flags` literal; ExpressionError when invalid."""
    parts = _regex_parts(text)
    return None if parts is None else compile_ruby_regex(*parts)


def _regex_value(text: str) -> _Regex | None:
    """A variable's value as a regex, as GitLab's Pattern.build_and_evaluate: None if not one."""
    # Values are user text: cache only the short ones, where patterns are.
    return _cached_regex_value(text) if len(text) <= 1024 else _uncached_regex_value(text)


def _uncached_regex_value(text: str) -> _Regex | None:
    parts = _regex_parts(text)
    if parts is None:
        return None
    try:
        return _Regex(parts[0], parts[1], compile_ruby_regex(*parts))
    except ExpressionError:
        return None


_cached_regex_value = lru_cache(maxsize=256)(_uncached_regex_value)


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
    found = regex.matcher.search(text)
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
