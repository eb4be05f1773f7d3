"""GitLab `rules:if` expressions: evaluation table, syntax errors, regex translation, explain."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localci.errors import ConfigError
from localci.expr import (
    Expression,
    ExpressionError,
    compile_ruby_regex,
    parse_expression,
    parse_regex_literal,
)

VARS: dict[str, str] = {
    "MAIN": "main",
    "OTHER_MAIN": "main",
    "EMPTY": "",
    "EMPTY2": "",
    "SPACE": "  ",
    "FULL": "yes",
    "TRUE_STR": "true",
    "REL": "release-1.2",
    "RE": "/^rel/",
    "RE_I": "/^REL/i",
    "RE_SLASH": "/a\\/b/",
    "RE_SINGLE": "/a/",
    "RE_EMPTY": "//",
    "RE_INVALID": "/(/",
    "RE_BAD_FLAG": "/abc/x",
    "RE_VAR": "/$MAIN/",
    "NOT_RE": "abc",
    "DOLLAR": "$MAIN",
    "QUOTE": 'it"s',
    "PATH": "x/a/b",
    "MULTI": "a\nb",
    "TRAIL": "a\n",
    "NUM": "123",
    "UNI": "h\u00e9llo",
    "TAB": "a\tb",
    "DOT": "a.b",
    "AXB": "axb",
    "SPECIAL": "(a+)",
    "BRACE": "a{,2}",
    "DEV": "dev",
    "A": "1",
    "B": "0",
    "C": "0",
    "_X1": "ok",
}

CASES: list[tuple[str, dict[str, str], bool]] = [
    # non-capturing groups are valid RE2
    ("$B =~ /^(?:main|develop)$/", {"B": "develop"}, True),
    ("$B =~ /^(?:main|develop)$/", {"B": "dev"}, False),
    ("$B =~ /^v(?:\\d+\\.){2}\\d+$/", {"B": "v1.2.3"}, True),
    # bare values: present? of the final value
    ("$MAIN", {}, True),
    ("$EMPTY", {}, False),
    ("$UNDEF", {}, False),
    ("$SPACE", {}, False),
    ("null", {}, False),
    ('""', {}, False),
    ('"x"', {}, True),
    ("' '", {}, False),
    ("true", {}, True),
    ("false", {}, False),
    ("$_X1", {}, True),
    # == and != compare raw values exactly
    ('$MAIN == "main"', {}, True),
    ("$MAIN == 'main'", {}, True),
    ('$MAIN == "Main"', {}, False),
    ('$MAIN != "main"', {}, False),
    ('$MAIN != "x"', {}, True),
    ('"main" == $MAIN', {}, True),
    ("$MAIN == $OTHER_MAIN", {}, True),
    ("$MAIN == $MAIN", {}, True),
    ('"a" == "a"', {}, True),
    ("\"\" == ''", {}, True),
    ("$QUOTE == 'it\"s'", {}, True),
    ('"$MAIN" == "main"', {}, False),
    ('$DOLLAR == "$MAIN"', {}, True),
    ('$DOLLAR == "main"', {}, False),
    ('$_X1 == "ok"', {}, True),
    # null, empty, undefined
    ("$UNDEF == null", {}, True),
    ("$EMPTY == null", {}, False),
    ('$EMPTY == ""', {}, True),
    ('$UNDEF == ""', {}, False),
    ("$UNDEF != null", {}, False),
    ("$EMPTY != null", {}, True),
    ("null == null", {}, True),
    ("$UNDEF == $UNDEF2", {}, True),
    ("$UNDEF == $EMPTY", {}, False),
    ("$EMPTY == $EMPTY2", {}, True),
    ("$nullable == null", {}, True),
    # booleans are Ruby true/false, never equal to strings
    ("$TRUE_STR == true", {}, False),
    ("true == true", {}, True),
    ("true == false", {}, False),
    ("true && $FULL", {}, True),
    ("false || false", {}, False),
    # regex literals: RE2, unanchored search
    ("$MAIN =~ /^ma/", {}, True),
    ("$MAIN =~ /^MA/", {}, False),
    ("$MAIN =~ /^MA/i", {}, True),
    ("$MAIN =~ /ai/", {}, True),
    ("$MAIN !~ /^ma/", {}, False),
    ("$MAIN !~ /^x./", {}, True),
    ("$MAIN =~ /m.in/", {}, True),
    ("$MAIN =~ /main|dev/", {}, True),
    ("$DEV =~ /^(main|dev)$/", {}, True),
    ("$MAIN =~ /\\Amain\\z/", {}, True),
    ("$MAIN =~ /(?i)MAIN/", {}, True),
    ("$MAIN =~ /^(?P<x>ma)in$/", {}, True),
    ("$MAIN =~ /^(?<x>ma)in$/", {}, True),
    ("$MAIN =~ /^ma(?U)in$/", {}, True),
    ("$MAIN =~ /[[:alpha:]]+/", {}, True),
    ("$MAIN =~ /[[:^alpha:]]/", {}, False),
    ("$NUM =~ /^[[:digit:]]+$/", {}, True),
    ("$MAIN =~ /^[[:digit:]]+$/", {}, False),
    ("$NUM =~ /^\\d{3}$/", {}, True),
    ("$NUM =~ /^\\d{2}$/", {}, False),
    ("$MAIN =~ /m{1,2}ain/", {}, True),
    ("$MAIN =~ /x{0}main/", {}, True),
    ("$BRACE =~ /^a{,2}$/", {}, True),
    ("$MAIN =~ /[]a]/", {}, True),
    ("$MAIN =~ /^[\\w-]+$/", {}, True),
    ("$MAIN =~ /[^a-z]/", {}, False),
    ("$REL =~ /[^a-z]/", {}, True),
    ("$MAIN =~ /\\bmain\\b/", {}, True),
    ("$DOT =~ /^a\\.b$/", {}, True),
    ("$AXB =~ /^a\\.b$/", {}, False),
    ("$MAIN =~ /\\x6d/", {}, True),
    ("$MAIN =~ /^\\x{6D}ain/", {}, True),
    ("$MAIN =~ /^\\155ain/", {}, True),
    ("$TAB =~ /a\\tb/", {}, True),
    ("$SPECIAL =~ /^\\Q(a+)\\E$/", {}, True),
    ("$UNI =~ /^\\w+$/", {}, False),
    ("$UNI =~ /^h.llo$/", {}, True),
    ("$PATH =~ /a\\/b/", {}, True),
    ("$PATH =~ /^x\\/a/", {}, True),
    # flags have RE2's meaning: m = multi-line anchors, s = dot matches newline
    ("$MULTI =~ /^b$/", {}, False),
    ("$MULTI =~ /^b$/m", {}, True),
    ("$MULTI =~ /a.b/", {}, False),
    ("$MULTI =~ /a.b/s", {}, True),
    ("$TRAIL =~ /a$/", {}, False),
    ("$TRAIL =~ /a$/m", {}, True),
    # no variable expansion inside a regex
    ("$MAIN =~ /$MAIN/", {}, False),
    ("$DOLLAR =~ /^\\$MAIN$/", {}, True),
    # nil on the left is matched as ""
    ("$UNDEF =~ /^$/", {}, True),
    ("$UNDEF !~ /^$/", {}, False),
    ("$EMPTY =~ /^$/", {}, True),
    ("$UNDEF =~ /.+/", {}, False),
    # nil / false on the right
    ("$MAIN =~ $UNDEF", {}, False),
    ("$MAIN !~ $UNDEF", {}, True),
    ("$MAIN =~ null", {}, False),
    ("$MAIN !~ null", {}, True),
    ("$MAIN =~ false", {}, False),
    # a variable (or string) holding /re/flags is compiled as a regex
    ("$REL =~ $RE", {}, True),
    ("$REL =~ $RE_I", {}, True),
    ("$MAIN =~ $RE", {}, False),
    ("$MAIN !~ $RE", {}, True),
    ("$PATH =~ $RE_SLASH", {}, True),
    ("$MAIN =~ $RE_SINGLE", {}, True),
    ("$MAIN =~ $RE_EMPTY", {}, True),
    ("$MAIN =~ $RE_VAR", {}, False),
    ('$MAIN =~ "/^m/"', {}, True),
    ("$REL =~ $PATTERN", {"PATTERN": "/^RELEASE-\\d+\\.\\d+$/i"}, True),
    # ... otherwise the quirk: the left must be a substring of the right
    ('"abc" =~ $NOT_RE', {}, True),
    ('"b" =~ $NOT_RE', {}, True),
    ('"abcd" =~ $NOT_RE', {}, False),
    ('"x" !~ $NOT_RE', {}, True),
    ("$UNDEF =~ $NOT_RE", {}, True),
    ('$MAIN =~ "main-branch"', {}, True),
    ('$MAIN =~ "mai"', {}, False),
    ('"(" =~ $RE_INVALID', {}, True),
    ('"x" =~ $RE_INVALID', {}, False),
    ('"abc" =~ $RE_BAD_FLAG', {}, True),
    ('"zzz" =~ $RE_BAD_FLAG', {}, False),
    # && and || are Ruby's operators on values; present? only at the end
    ("$EMPTY && $FULL", {}, True),
    ("$EMPTY || $FULL", {}, False),
    ("$UNDEF && $FULL", {}, False),
    ("$UNDEF || $FULL", {}, True),
    ("$FULL && $EMPTY", {}, False),
    ("$FULL || $EMPTY", {}, True),
    ("$FULL && $UNDEF", {}, False),
    ("false || $FULL", {}, True),
    ("false && $FULL", {}, False),
    ("$SPACE || $FULL", {}, False),
    ("$SPACE && $FULL", {}, True),
    ("null || null", {}, False),
    ("$EMPTY || $UNDEF", {}, False),
    ("$UNDEF =~ /^$/ && $MAIN", {}, True),
    ("$MAIN =~ /^main$/ || false", {}, True),
    # precedence: comparisons < && < ||, left-associative, parentheses
    ('$A == "1" || $B == "1" && $C == "1"', {}, True),
    ('($A == "1" || $B == "1") && $C == "1"', {}, False),
    ('$A == "0" || $B == "0" && $C == "0"', {}, True),
    ('$A == "0" && $B == "0" || $C == "0"', {}, True),
    ('$A == "0" && ($B == "0" || $C == "0")', {}, False),
    ('$A == "1" && $B == "0" && $C == "0"', {}, True),
    ('$A == "0" || $B == "1" || $C == "0"', {}, True),
    ('$A == "0" || $B == "1" || $C == "1"', {}, False),
    ('(($A == "1"))', {}, True),
    ('($A == "1") == true', {}, True),
    ('$A == ("1")', {}, True),
    ('$MAIN == "main" == true', {}, True),
    ('$MAIN == "x" == false', {}, True),
    ('$MAIN =~ /MAIN/i && $MAIN == "main"', {}, True),
    ('$A=="1"&&$B=="0"', {}, True),
    ('   $A   ==   "1"   ', {}, True),
    ('$A == "1"\n  && $B == "0"', {}, True),
    ('$A == "1" && ($B == "1" || ($C == "0" && $MAIN =~ /^m/))', {}, True),
    # what GitLab's shunting-yard parser silently accepts
    ("$A $A ==", {}, True),
    ("== $A $A", {}, True),
    ("$A ()", {}, True),
    # variables given per case override the shared ones
    ("$MAIN == 'dev'", {"MAIN": "dev"}, True),
    ("$CI_COMMIT_TAG", {"CI_COMMIT_TAG": "v1.0"}, True),
    ('$CI_PIPELINE_SOURCE == "merge_request_event"', {"CI_PIPELINE_SOURCE": "push"}, False),
]

SYNTAX_ERRORS = [
    "",
    "   ",
    "$A ==",
    "== ",
    "$A $B",
    "$A == $B $C",
    "($A",
    "(($A == 'x')",
    "$A)",
    "$A == 'x'))",
    "()",
    "(",
    ")",
    "${A} == 'x'",
    "%A% == 'x'",
    "$ == 'x'",
    "$A = 'x'",
    "$A === 'x'",
    "$A & $B",
    "$A | $B",
    "!$A",
    "$A == main",
    "$A == True",
    "truex",
    "$A == 'x' &&",
    "&& $A",
    "$A == 'x' || || $B",
    '$A == "x',
    "$A == 'x",
    '$A == "x\ny"',
    "$A =~ /a/",
    "$A =~ //",
    "$A =~ /ab",
    "$A =~ /ab/x",
    "$A =~ /(ab/",
    "$A =~ /ab)/",
    "$A =~ /[ab/",
    "$A =~ /a(?=b)c/",
    "$A =~ /(?<=a)b/",
    "$A =~ /(a)\\1/",
    "$A =~ /a**/",
    "$A =~ /*a/",
    "$A =~ /a{2000}/",
    "$A =~ /a{3,2}/",
    "$A =~ /\\Z/",
    "$A =~ /\\hx/",
    "$A =~ /[z-a]/",
    "$A =~ /[[:foo:]]/",
    "$A =~ /(?x)ab/",
    "$A =~ /ab\\/",
    " && ".join(["$A"] * 51),
]


@pytest.mark.parametrize(("expression", "extra", "expected"), CASES)
def test_evaluate(expression: str, extra: dict[str, str], expected: bool) -> None:
    assert parse_expression(expression).evaluate({**VARS, **extra}) is expected


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 120
    assert len(SYNTAX_ERRORS) >= 20


@pytest.mark.parametrize("expression", SYNTAX_ERRORS)
def test_syntax_errors(expression: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(expression)
    message = str(info.value)
    assert message.startswith("Invalid CI expression ")
    assert repr(expression) in message
    assert message.endswith(".")


def test_error_is_a_config_error_and_a_value_error() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("$A == ")
    error = info.value
    assert isinstance(error, ConfigError)
    assert isinstance(error, ValueError)
    assert error.expression == "$A == "
    assert error.position == 3
    assert "column 4" in str(error)
    assert error.exit_code == 3


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("${CI_COMMIT_BRANCH} == 'main'", "write `$VAR`"),
        ("$A =~ /a/", "at least two characters"),
        ("$A == main", "must be quoted"),
        ("$A = 'x'", "use `==`"),
        ("$A =~ /(a)\\1/", "backreferences"),
        ("$A =~ /a(?=b)/", "lookahead"),
        ("$A =~ /\\Z/", "use \\z"),
        ("$A $B", "without an operator"),
        ("($A", "never closed"),
    ],
)
def test_error_messages_help(expression: str, fragment: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(fragment)):
        parse_expression(expression)


def test_token_limit_is_gitlabs() -> None:
    ninety_nine = " || ".join(["$A"] * 50)  # 50 values + 49 operators
    assert parse_expression(ninety_nine).evaluate({"A": "x"})
    with pytest.raises(ExpressionError, match="too many tokens"):
        parse_expression(ninety_nine + " || ")
    with pytest.raises(ExpressionError, match="too many tokens"):
        parse_expression(ninety_nine + " || $A")


def test_parse_is_cached() -> None:
    assert parse_expression("$X == 'cached'") is parse_expression("$X == 'cached'")


def test_variable_names() -> None:
    expression = parse_expression("$A == 'x' && ($B =~ $C || $A)")
    assert expression.variable_names == frozenset({"A", "B", "C"})


def test_runtime_error_for_non_string_right_side() -> None:
    expression = parse_expression("$A =~ true")
    with pytest.raises(ExpressionError, match="not a regex or a string"):
        expression.evaluate({"A": "x"})
    assert expression.truthful({"A": "x"}) is False


def test_inputs() -> None:
    expression = parse_expression("$[[ inputs.deploy ]] == true && $[[inputs.env]] =~ /^prod/")
    assert expression.evaluate({}, inputs={"deploy": True, "env": "production"})
    assert not expression.evaluate({}, inputs={"deploy": "true", "env": "production"})
    assert not expression.evaluate({})
    assert parse_expression("$[[ inputs.n ]] == $[[ inputs.m ]]").evaluate(
        {}, inputs={"n": 1, "m": 1.0}
    )


def test_explain_lists_lookups_comparisons_and_verdict() -> None:
    expression = parse_expression('$CI_COMMIT_BRANCH == "main" || $CI_COMMIT_TAG =~ /^v\\d+/')
    result, steps = expression.explain({"CI_COMMIT_BRANCH": "feature"})
    assert result is False
    assert steps[0] == "$CI_COMMIT_BRANCH is 'feature'"
    assert steps[1] == "$CI_COMMIT_BRANCH == \"main\": 'feature' == 'main' is false"
    assert steps[2] == "$CI_COMMIT_TAG is not defined (null)"
    assert "'' does not match /^v\\d+/" in steps[3]
    assert "the value is the right side false" in steps[4]
    assert steps[-1].startswith("result: false")


def test_explain_short_circuit_and_substring_quirk() -> None:
    _, steps = parse_expression("$EMPTY || $X").explain({"EMPTY": ""})
    assert any("not evaluated" in step for step in steps)
    assert not any(step.startswith("$X") for step in steps)
    result, steps = parse_expression('$A =~ "abc"').explain({"A": "b"})
    assert result is True
    assert any("substring" in step for step in steps)
    result, steps = parse_expression("$A =~ $MISSING").explain({"A": "b"})
    assert result is False
    assert any("the right side is null" in step for step in steps)


def test_explain_agrees_with_evaluate() -> None:
    for expression, extra, expected in CASES:
        result, steps = parse_expression(expression).explain({**VARS, **extra})
        assert result is expected, expression
        assert steps[-1].startswith(f"result: {str(expected).lower()}")


# ---- regex translation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "flags", "text", "expected"),
    [
        ("a(?i)b", "", "aB", "aB"),
        ("a(?i)b", "", "AB", None),
        ("(?i:a)b", "", "Ab", "Ab"),
        ("(?i:a)b", "", "AB", None),
        ("(a(?i)b)c", "", "aBc", "aBc"),
        ("(a(?i)b)c", "", "aBC", None),
        ("a(?i)b|c", "", "C", "C"),
        ("a+", "U", "aaa", "a"),
        ("a+?", "U", "aaa", "aaa"),
        ("a+", "", "aaa", "aaa"),
        ("(?U)a{1,3}", "", "aaa", "a"),
        ("^b", "m", "a\nb", "b"),
        ("a$", "", "a\n", None),
        ("a\\z", "", "a", "a"),
        ("a.b", "s", "a\nb", "a\nb"),
        ("(?s).", "", "\n", "\n"),
        ("[[:upper:]]+", "", "abCDe", "CD"),
        ("[^[:space:]]+", "", "  x1 ", "x1"),
        ("[\\d\\s]+", "", "a1 2b", "1 2"),
        ("[\\D]+", "", "12ab34", "ab"),
        ("\\W+", "", "ab--cd", "--"),
        ("\\S+", "", " ab ", "ab"),
        ("[a\\-z]+", "", "b-az", "-az"),
        ("[a-]+", "", "b-a-", "-a-"),
        ("\\101", "", "A", "A"),
        ("\\0101", "", "\b1", "\b1"),
        ("\\x41\\x{42}", "", "AB", "AB"),
        ("a\\Bb", "", "ab", "ab"),
        ("\\bx", "", "\u00e9x", "x"),
        ("k", "i", "\u212a", "\u212a"),
        ("\\Qa.b\\E+", "", "a.bbb", "a.bbb"),
        ("x*", "", "", ""),
        ("^*a", "", "a", "a"),
        ("a{2}", "", "aaa", "aa"),
        ("a{2,}", "", "aaaa", "aaaa"),
        ("}{a", "", "}{a", "}{a"),
        ("(?i)[a-c]+", "", "xABCx", "ABC"),
        ("(?i)[^a]", "", "A", None),
        ("\\pL+", "", "1\u00e9a2", "\u00e9a"),  # RE2 has Unicode classes
        ("a\\1", "", "", "error"),
    ],
)
def test_regex_translation(body: str, flags: str, text: str, expected: str | None) -> None:
    if expected == "error":
        with pytest.raises(ExpressionError):
            compile_ruby_regex(body, flags)
        return
    match = next(compile_ruby_regex(body, flags).finditer(text), None)
    assert (match.text if match else None) == expected


def test_compile_is_cached_and_rejects_unknown_flags() -> None:
    assert compile_ruby_regex("^ab+", "i") is compile_ruby_regex("^ab+", "i")
    with pytest.raises(ExpressionError, match="unknown regex flag"):
        compile_ruby_regex("ab", "x")


@pytest.mark.parametrize(
    ("text", "subject", "expected"),
    [
        ("/^release-.*$/i", "RELEASE-1", True),
        ("/^release-.*$/", "RELEASE-1", False),
        ("/feature/", "my-feature-x", True),
        ("/a\\/b/", "x/a/b", True),
        ("/a/", "cat", True),
        ("//", "anything", True),
        ("/x/ms", "x", True),
    ],
)
def test_parse_regex_literal(text: str, subject: str, expected: bool) -> None:
    pattern = parse_regex_literal(text)
    assert pattern is not None
    assert pattern.search(subject) is expected


@pytest.mark.parametrize("text", ["main", "/abc", "abc/", "/abc/x", "", "release/*"])
def test_parse_regex_literal_none(text: str) -> None:
    assert parse_regex_literal(text) is None


def test_parse_regex_literal_invalid() -> None:
    with pytest.raises(ExpressionError, match="missing \\)"):
        parse_regex_literal("/(ab/")


# ---- properties --------------------------------------------------------------------------------

_ALPHABET = [*"$AB_ab01()=~!&|\"'/\\ [].*+?{}^:,-imsUxnul", "null", "true", "$A", "/ab/"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=40).map("".join))
def test_random_expressions_only_raise_expression_error(text: str) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionError:
        return
    assert isinstance(expression, Expression)
    try:
        expression.evaluate({"A": "ab", "B": "/a+/", "a": ""})
        expression.explain({"A": "x"})
    except ExpressionError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=30), st.sampled_from(["", "i", "m", "s", "U", "imsU"]))
def test_random_regexes_only_raise_expression_error(body: str, flags: str) -> None:
    try:
        pattern = compile_ruby_regex(body, flags)
    except ExpressionError:
        return
    pattern.search("main\nrelease-1.0 ab")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="$/\\abi()[]{}*+?|^.-", max_size=30))
def test_random_values_on_the_right_of_match(value: str) -> None:
    assert isinstance(parse_expression("$A =~ $B").evaluate({"A": "ab", "B": value}), bool)
