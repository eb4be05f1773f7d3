"""localci.regex: GitLab's `/pattern/flags` regexes run by RE2 itself (google-re2): RE2's
semantics through GitLab's flag translation, located errors for what RE2 rejects, and linear
time and no crash on pathological or random patterns and text."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localci.expr import ExpressionError, compile_ruby_regex, parse_expression, parse_regex_literal
from localci.regex import RegexSyntaxError, compile_regex
from tests.helpers import deadline


def linear(pattern: str, flags: str, text: str) -> bool:
    return compile_regex(pattern, flags).search(text)


# ---- RE2 semantics, with GitLab's flags --------------------------------------------------------

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


def test_flags_are_gitlabs_prefix_not_part_of_the_pattern() -> None:
    regex = compile_ruby_regex("^release-.*$", "i")
    assert (regex.pattern, regex.flags, str(regex)) == ("^release-.*$", "i", "/^release-.*$/i")
    with pytest.raises(ExpressionError, match=r"unknown regex flag.*'x'"):
        compile_ruby_regex("a", "x")
    # `\/` inside a literal is an escaped slash, as GitLab's RubySyntax reads it.
    literal = parse_regex_literal("/^feature\\/.*$/")
    assert literal is not None
    assert literal.search("feature/x")


def test_rules_and_expressions_use_re2() -> None:
    expression = parse_expression("$M =~ /(x+x+)+y/ || $M !~ /^(main|release-.*)$/")
    with deadline(3):
        assert expression.evaluate({"M": "release-" + "x" * 5000}) is False
    assert parse_regex_literal("/^release-.*$/i") is parse_regex_literal("/^release-.*$/i")
    regex = parse_regex_literal("/^release-.*$/i")
    assert regex is not None
    assert regex.search("RELEASE-1")
    assert parse_regex_literal("release-*") is None


def test_groups_and_matches_for_coverage() -> None:
    regex = compile_regex(r"TOTAL.*?(\d+)%|lines: (\d+\.\d+)")
    matches = list(regex.finditer("TOTAL 10 80% and lines: 71.5 é"))
    assert [(m.text, m.groups) for m in matches] == [
        ("TOTAL 10 80%", ("80", None)),
        ("lines: 71.5", (None, "71.5")),
    ]
    assert regex.group_count == 2


def test_text_that_is_not_valid_unicode_never_raises() -> None:
    regex = compile_regex("x.y")
    assert regex.search("\udcffx\u00e9y")
    assert not regex.search("\udcff")
    assert [m.text for m in regex.finditer("x\udcffy")] == ["x\udcffy"]


# ---- errors: what RE2 rejects, located in the pattern ------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message", "offset"),
    [
        ("(ab", "missing )", 3),
        ("ab)", "unexpected )", 2),
        ("[)]x)", "unexpected )", 4),
        ("a**", "bad repetition operator", 1),
        ("*a", "no argument for repetition operator", 0),
        ("a{1001}", "invalid repetition size", 1),
        ("(a{2}){501}", "invalid repetition size", 6),
        ("((a{10}){10}){11}", "invalid repetition size", 13),
        ("(?:(?:a{1000}){1}){2}", "invalid repetition size", 18),
        ("[a", "missing ]", 0),
        ("a\\1", "backreferences are not supported by RE2", 1),
        ("x(?P=n)", "backreferences are not supported by RE2", 1),
        ("(?=a)", "lookahead assertions are not supported by RE2", 0),
        ("a(?!b)", "negative lookahead assertions are not supported by RE2", 1),
        ("(?<=a)b", "lookbehind assertions are not supported by RE2", 0),
        ("(?>a)", "atomic groups are not supported by RE2", 0),
        ("a\\Z", "invalid escape sequence", 1),
    ],
)
def test_errors_are_located(pattern: str, message: str, offset: int) -> None:
    with pytest.raises(RegexSyntaxError) as caught:
        compile_regex(pattern)
    assert message in caught.value.message
    assert caught.value.offset == offset
    with pytest.raises(ExpressionError, match=re.escape(message)) as wrapped:
        compile_ruby_regex(pattern)
    assert wrapped.value.position == offset + 1  # column in `/pattern/`, after the slash


def test_nested_counts_up_to_1000_are_fine() -> None:
    assert linear("^((a{10}){10}){10}$", "", "a" * 1000)
    assert linear("(((a{10}){10}){10})*", "", "")


def test_programs_larger_than_re2_allows_are_rejected() -> None:
    fits = "(?:a{1000})" * 100
    compile_regex(fits)
    with pytest.raises(ExpressionError, match="pattern too large"):
        compile_ruby_regex(fits * 10)


# ---- random patterns and text: RE2 either compiles or says where, and never hangs ---------------

_ATOMS = [
    "a", "b", "A", "\\.", ".", "[ab]", "[^a]", "[a-c]", "[[:upper:]]", "\\d", "\\w", "\\W",
    "\\s", "\\n", "\\x41", "\\Qa.\\E", "\u00e9", "^", "$", "\\A", "\\z", "\\b", "\\B",
    "\\1", "(?=a)", "[", ")", "\\pL", "(?<n>a)",
]  # fmt: skip
_FLAG_SETTINGS = ["(?i)", "(?s)", "(?m)", "(?-i)", "(?U)", "(?i-s)"]
_QUANTIFIERS = [
    "",
    "",
    "*",
    "+",
    "?",
    "{2}",
    "{0,2}",
    "{1,}",
    "{0}",
    "*?",
    "+?",
    "??",
    "{1,2}?",
    "**",
]
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
)
_TEXTS = st.text(alphabet="aAbB.\n _1\u00e9\udcff", max_size=200)
_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow],
)


@_SETTINGS
@given(_PATTERNS, st.sampled_from(["", "i", "m", "s", "U", "ims"]), st.lists(_TEXTS, max_size=4))
def test_any_pattern_compiles_or_is_located(pattern: str, flags: str, texts: list[str]) -> None:
    try:
        regex = compile_regex(pattern, flags)
    except RegexSyntaxError as exc:
        assert 0 <= exc.offset <= len(pattern)
        assert exc.message
        return
    for text in texts:
        with deadline(5):
            found = regex.search(text)
            matches = list(regex.finditer(text))
        assert found is bool(matches)
        assert all(len(match.groups) == regex.group_count for match in matches)


# ---- pathological input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("(a+)+b", "a" * 10_000),
        ("(x+x+)+y", "x" * 5_000),
        ("(a|aa)*c", "a" * 10_000),
        ("(a*)*b", "a" * 10_000),
        ("(()*(|)*(.))*a", "1" * 10_000),  # Python's re hangs on this one
        ("(.*a){12}b", "a" * 3_000),
        ("^(\\w+\\s?)*$", "word " * 1_000 + "!"),
        ("(?i)(k|K|\u212a)+x", "k" * 5_000),
        ("[ab]*a[ab]{15}c", "ab" * 10_000),  # 2**16 DFA states: RE2 bounds its cache
    ],
)
def test_pathological_patterns_finish(pattern: str, text: str) -> None:
    with deadline(5):
        assert linear(pattern, "", text) is False
        assert list(compile_regex(pattern).finditer(text)) == []


def test_deep_nesting_is_not_a_crash() -> None:
    pattern = "(" * 5_000 + "a" + ")" * 5_000
    with deadline(10):
        assert compile_ruby_regex(pattern).search("xa")
