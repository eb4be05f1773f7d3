"""localci.re2: RE2 semantics of the linear-time matcher, agreement with the emitted Python
pattern, errors, and bounded time and memory on pathological input."""

from __future__ import annotations

import os
import random
import re
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from localci import re2
from localci.expr import (
    ExpressionError,
    compile_regex_matcher,
    compile_ruby_regex,
    parse_expression,
    parse_regex_matcher,
)
from tests.helpers import Hang, deadline


def linear(pattern: str, flags: str, text: str) -> bool:
    return re2.compile_matcher(pattern, flags).search(text)


def python(pattern: str, flags: str, text: str) -> bool:
    return compile_ruby_regex(pattern, flags).search(text) is not None


# ---- RE2 semantics -----------------------------------------------------------------------------

CASES = [
    # anchors, with and without `m`
    ("^b", "", "a\nb", False),
    ("^b", "m", "a\nb", True),
    ("(?m)^b", "", "a\nb", True),
    ("a$", "", "a\n", False),
    ("a$", "m", "a\nb", True),
    ("a$", "m", "a\n", True),
    ("^$", "", "", True),
    ("^$", "", "\n", False),
    ("^$", "m", "a\n", True),
    ("\\Aa", "m", "b\na", False),
    ("a\\z", "m", "a\nb", False),
    ("a\\z", "", "ba", True),
    ("^*a", "", "ba", True),
    ("x^", "", "x", False),
    # \b and \B are ASCII-only, also at the ends of the text
    ("\\ba", "", "a", True),
    ("a\\b", "", "a", True),
    ("\\b", "", "", False),
    ("\\B", "", "", True),
    ("\\b", "", "\u00e9", False),
    ("\\B", "", "\u00e9", True),
    ("x\\b", "", "x\u00e9", True),
    ("\\b\u00e9", "", "a\u00e9", True),
    ("\\B\u00e9", "", "a\u00e9", False),
    ("\\bx\\b", "", "\u00e9x\u00e9", True),
    ("a\\Bb", "", "ab", True),
    ("a\\bb", "", "ab", False),
    ("\\w", "", "\u00e9", False),
    # (?i) scoping
    ("a(?i)b", "", "aB", True),
    ("a(?i)b", "", "AB", False),
    ("(?i:a)b", "", "Ab", True),
    ("(?i:a)b", "", "AB", False),
    ("(a(?i)b)c", "", "aBc", True),
    ("(a(?i)b)c", "", "aBC", False),
    ("a(?i)b|c", "", "C", True),
    ("(?i)a(?-i)b", "", "Ab", True),
    ("(?i)a(?-i)b", "", "AB", False),
    ("ab", "i", "xAB", True),
    ("(?-i:a)b", "i", "aB", True),
    ("(?-i:a)b", "i", "AB", False),
    ("k", "i", "\u212a", True),
    ("(?i)[^a]", "", "A", False),
    ("(?i)[a-c]+", "", "xBx", True),
    ("(?i)\u00e9", "", "\u00c9", True),
    # `.` and newlines
    (".", "", "\n", False),
    (".", "s", "\n", True),
    ("(?s).", "", "\n", True),
    ("(?s:.)", "", "\n", True),
    ("a.b", "", "a\nb", False),
    ("a.b", "", "a\u00e9b", True),
    ("\\C", "", "\n", True),
    ("(?s-s:.)", "", "\n", False),
    # classes
    ("[a-c]", "", "d", False),
    ("[^a-c]", "", "d", True),
    ("[^a-c]", "", "b", False),
    ("[^\\n]", "", "\n", False),
    ("[[:alpha:]]", "", "1", False),
    ("[[:^alpha:]]", "", "1", True),
    ("[[:upper:][:digit:]]", "", "a5", True),
    ("\\D", "", "5", False),
    ("[\\d-z]", "", "-", True),
    ("[]a]", "", "]", True),
    ("[^]a]", "", "]", False),
    ("\\x{10FFFF}", "", "\U0010ffff", True),
    ("[\\x{100}-\\x{200}]", "", "\u0150", True),
    ("[^\\x00-\\x{10FFFF}]", "", "a", False),
    ("\\S+", "", " \t", False),
    # empty-width loops and empty alternatives
    ("(a*)*b", "", "aaab", True),
    ("(a*)*b", "", "aaa", False),
    ("(a*)+$", "", "", True),
    ("(|a)+b", "", "aab", True),
    ("(|a)+", "", "", True),
    ("(?:\\b)*x", "", "x", True),
    ("(a|b?)+c", "", "abab", False),
    ("(^|x)+y", "m", "xy", True),
    ("(?:$|a)*b", "", "ab", True),
    ("a|", "", "b", True),
    ("", "", "", True),
    ("()", "", "x", True),
    # repeats, nested quantifiers, laziness
    ("(a+)+b", "", "a" * 12, False),
    ("(a+)+b", "", "a" * 12 + "b", True),
    ("^((a{2}){3})+$", "", "a" * 12, True),
    ("^((a{2}){3})+$", "", "a" * 13, False),
    ("a{0}b", "", "b", True),
    ("^a{0}$", "", "a", False),
    ("(ab){2,3}c", "", "ababc", True),
    ("(ab){2,3}c", "", "abc", False),
    ("^a{2,}$", "", "a", False),
    ("^a{2,}?$", "", "aaaa", True),
    ("^a{1,2}?$", "U", "aaa", False),
    ("a+?b", "U", "aab", True),
    ("x*", "", "", True),
    ("^a{1000}$", "", "a" * 1000, True),
    ("^a{1000}$", "", "a" * 999, False),
    ("}{a", "", "}{a", True),
    ("a{,2}", "", "a{,2}", True),
    # \Q...\E, escapes, unanchored search
    ("\\Qa.b\\E", "", "axb", False),
    ("\\Qa.b", "", "a.b", True),
    ("\\Q(a\\E+", "", "(aaa", True),
    ("\\Q\\Ea", "", "a", True),
    ("\\101\\x42\\t", "", "AB\t", True),
    ("b", "", "abc", True),
    ("^(main|release-.*)$", "", "release-1.2", True),
    ("^(main|release-.*)$", "", "mainline", False),
    ("(?P<name>a)(?<other>b)", "", "ab", True),
]


@pytest.mark.parametrize(("pattern", "flags", "text", "expected"), CASES)
def test_re2_semantics(pattern: str, flags: str, text: str, expected: bool) -> None:
    assert linear(pattern, flags, text) is expected
    assert python(pattern, flags, text) is expected


def test_matchers_and_rules_use_the_linear_matcher() -> None:
    expression = parse_expression("$M =~ /(x+x+)+y/ || $M !~ /^(main|release-.*)$/")
    with deadline(3):
        assert expression.evaluate({"M": "release-" + "x" * 5000}) is False
    assert parse_regex_matcher("/^release-.*$/i") is parse_regex_matcher("/^release-.*$/i")
    matcher = parse_regex_matcher("/^release-.*$/i")
    assert matcher is not None
    assert matcher.search("RELEASE-1")
    assert parse_regex_matcher("release-*") is None


# ---- the Python emission -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "flags", "python_pattern"),
    [
        ("a(?i)b.", "s", "a(?i:b)(?s:.)"),
        ("a(?i)1", "", "a1"),
        ("[[:digit:]]x{2,}?", "", "[0-9]x{2,}?"),
        ("x*", "U", "x*?"),
        ("x{2,2}", "", "x{2}"),
        ("(?P<n>a)|(?:b)|", "", "(a)|(?:b)|"),
        ("(?i:[a-c])", "", "(?:(?i:[a-c]))"),
        ("^\\A$\\z", "", r"(?:\A)(?:\A)(?:\Z)(?:\Z)"),
        ("^$", "m", "(?m:^)(?m:$)"),
        ("\\D", "", "[\\U00000000-\\U0000002f\\U0000003a-\\U0010ffff]"),
        ("\\Q.\\E", "", "\\."),
    ],
)
def test_python_emission(pattern: str, flags: str, python_pattern: str) -> None:
    assert re2.to_python(re2.parse(pattern, flags)) == python_pattern


def test_the_ast_is_small_and_frozen() -> None:
    node = re2.parse("(?i)a|[b-c]*", "")
    assert node == re2.Alternate(
        (
            re2.Concat((re2.Literal(ord("a"), fold=True),)),
            re2.Concat((re2.Repeat(re2.CharClass(((98, 99),), False, True), 0, None, True, "*"),)),
        )
    )
    with pytest.raises(AttributeError):
        node.options = ()  # type: ignore[misc]


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message", "offset"),
    [
        ("(ab", "missing closing )", 3),
        ("ab)", "unexpected )", 2),
        ("a**", "repeats cannot be stacked", 2),
        ("*a", "missing argument", 0),
        ("a{1001}", "counts go up to 1000", 1),
        ("(a{2}){501}", "nested counts multiply past 1000", 6),
        ("((a{10}){10}){11}", "nested counts multiply past 1000", 13),
        ("(?:(?:a{1000}){1}){2}", "nested counts multiply past 1000", 18),
        ("[a", "missing closing ]", 0),
        ("\\pL", "Unicode classes", 0),
        ("a\\1", "backreferences", 1),
        ("(?=a)", "lookahead", 0),
    ],
)
def test_errors_are_located(pattern: str, message: str, offset: int) -> None:
    with pytest.raises(re2.Re2SyntaxError) as caught:
        re2.parse(pattern)
    assert message in caught.value.message
    assert caught.value.offset == offset
    with pytest.raises(ExpressionError, match=re.escape(message)):
        compile_regex_matcher(pattern)


def test_nested_counts_up_to_1000_are_fine() -> None:
    assert linear("^((a{10}){10}){10}$", "", "a" * 1000)
    assert linear("(((a{10}){10}){10})*", "", "")


def test_programs_larger_than_re2_allows_are_rejected() -> None:
    fits = "(?:a{1000})" * (re2.MAX_PROGRAM // 1000)
    re2.parse(fits)
    with pytest.raises(re2.Re2SyntaxError, match="pattern too large"):
        re2.parse(fits + "(?:a{1000})")
    with pytest.raises(ExpressionError, match="pattern too large"):
        compile_ruby_regex(fits + "(?:a{1000})")


# ---- agreement with the emitted Python pattern (the reference semantics) ------------------------

_ATOMS = [
    "a", "b", "A", "\\.", ".", "[ab]", "[^a]", "[a-c]", "[[:upper:]]", "\\d", "\\w", "\\W",
    "\\s", "\\n", "\\x41", "\\Qa.\\E", "\u00e9", "^", "$", "\\A", "\\z", "\\b", "\\B",
]  # fmt: skip
_FLAG_SETTINGS = ["(?i)", "(?s)", "(?m)", "(?-i)", "(?U)", "(?i-s)"]
_QUANTIFIERS = ["", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "{0}", "*?", "+?", "??", "{1,2}?"]
_GROUPS = ["(", "(?:", "(?i:", "(?-i:", "(?s:", "(?m:", "(?P<g>"]


def _quantified(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(item, st.sampled_from(_QUANTIFIERS)).map("".join)


def _alternation(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    piece = st.one_of(_quantified(item), st.sampled_from(_FLAG_SETTINGS))
    branch = st.lists(piece, max_size=4).map("".join)
    return st.lists(branch, min_size=1, max_size=3).map("|".join)


def _group(body: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(_GROUPS), body).map(lambda parts: f"{parts[0]}{parts[1]})")


_PATTERNS = _alternation(
    st.recursive(st.sampled_from(_ATOMS), lambda inner: _group(_alternation(inner)), max_leaves=6)
).map(lambda pattern: pattern.replace("(?P<g>", "(", pattern.count("(?P<g>") - 1))
_TEXTS = st.text(alphabet="aAbB.\n _1\u00e9", max_size=10)
_FLAGS = st.sampled_from(["", "i", "m", "s", "U", "ims"])
_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow],
)


@_SETTINGS
@given(_PATTERNS, _FLAGS, st.lists(_TEXTS, min_size=1, max_size=4))
def test_linear_matcher_agrees_with_python(pattern: str, flags: str, texts: list[str]) -> None:
    matcher = re2.compile_matcher(pattern, flags)
    reference = compile_ruby_regex(pattern, flags)
    for text in texts:
        with deadline(5):
            found = matcher.search(text)
        try:
            # The reference backtracks: `(()*(|)*(.))*a` on nine characters takes minutes.
            with deadline(0.5):
                expected = reference.search(text) is not None
        except Hang:
            reject()
        assert found is expected, (pattern, text)


@_SETTINGS
@given(_PATTERNS, _FLAGS)
def test_program_size_is_what_the_parser_checks(pattern: str, flags: str) -> None:
    size = re2.program_size(re2.parse(pattern, flags))
    with mock.patch.object(re2, "MAX_PROGRAM", size):
        re2.parse(pattern, flags)
    with (
        mock.patch.object(re2, "MAX_PROGRAM", size - 1),
        pytest.raises(re2.Re2SyntaxError, match="too large"),
    ):
        re2.parse(pattern, flags)


# ---- pathological input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("(a+)+b", "a" * 10_000),
        ("(x+x+)+y", "x" * 5_000),
        ("(a|aa)*c", "a" * 10_000),
        ("(a*)*b", "a" * 10_000),
        ("(()*(|)*(.))*a", "1" * 10_000),  # found by the differential test: Python re hangs
        ("(.*a){12}b", "a" * 3_000),
        ("^(\\w+\\s?)*$", "word " * 1_000 + "!"),
        ("(?i)(k|K|\u212a)+x", "k" * 5_000),
    ],
)
def test_pathological_patterns_finish(pattern: str, text: str) -> None:
    with deadline(30):
        assert linear(pattern, "", text) is False


def test_dfa_cache_stays_bounded() -> None:
    # [ab]*a[ab]{15}c has 2**16 DFA states: the cache must start over rather than grow.
    matcher = re2.LinearMatcher(re2.parse("[ab]*a[ab]{15}c"))
    rng = random.Random(7)
    text = "".join(rng.choice("ab") for _ in range(20_000))
    with deadline(60):
        assert matcher.search(text) is False
        assert matcher.search(text + "c") is True
    program = re2.program_size(re2.parse("[ab]*a[ab]{15}c"))
    assert matcher.cache_cost <= re2.DFA_BUDGET + 3 * program + 16


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    pattern = "(" * 5_000 + "a" + ")" * 5_000
    with pytest.raises(ExpressionError):
        compile_regex_matcher(pattern)
