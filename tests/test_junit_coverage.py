"""Tests for localci.execute.junit_coverage: JUnit shapes GitLab accepts, safe parsing, coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from localci import results
from localci.errors import ConfigError
from localci.execute.junit_coverage import (
    MAX_JUNIT_BYTES,
    ReportError,
    coverage_of,
    parse_junit,
    summarize_junit,
)

PYTEST = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
  <testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
    <testcase classname="tests.test_x" name="test_ok" time="0.001"/>
    <testcase classname="tests.test_x" name="test_ok2" time="0.001"><system-out>hi</system-out>
    </testcase>
    <testcase classname="tests.test_x" name="test_fail"><failure message="assert">x</failure>
    </testcase>
    <testcase classname="tests.test_x" name="test_err"><error message="fixture">y</error>
    </testcase>
    <testcase classname="tests.test_x" name="test_skip"><skipped message="why"/></testcase>
  </testsuite>
</testsuites>
"""

PHPUNIT = b"""<?xml version="1.0"?>
<testsuites>
  <testsuite name="All">
    <testsuite name="Unit">
      <testcase name="testA" class="A" classname="A"/>
      <testsuite name="Deeper">
        <testcase name="testB" classname="B"><failure>f</failure><error>e</error></testcase>
      </testsuite>
    </testsuite>
    <testcase name="testTop" classname="Top"/>
  </testsuite>
  <testcase name="ignored" classname="NotInASuite"><failure/></testcase>
</testsuites>
"""


def test_pytest_shape() -> None:
    summary = parse_junit(PYTEST)
    assert summary == results.TestSummary(
        passed=2,
        failed=1,
        skipped=1,
        errors=1,
        failed_names=("tests.test_x.test_fail", "tests.test_x.test_err"),
    )
    assert summary.total == 5


def test_nested_suites_and_cases_outside_suites() -> None:
    summary = parse_junit(PHPUNIT)
    assert (summary.passed, summary.failed, summary.errors) == (2, 1, 0)
    assert summary.failed_names == ("B.testB",)


def test_single_testsuite_root_namespaces_and_no_classname() -> None:
    xml = b"""<testsuite xmlns="urn:x"><testcase name="alone"><error/></testcase>
    <testcase name="s"><skipped/></testcase></testsuite>"""
    assert parse_junit(xml) == results.TestSummary(0, 0, 1, 1, ("alone",))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<testsuites><testsuite>", "not valid XML"),
        (b"<html/>", "root element is <html>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            b"<testsuites><testsuite><testcase name='&b;'/></testsuite></testsuites>",
            "declares XML entities",
        ),
        (b" " * (MAX_JUNIT_BYTES + 1), "larger than"),
    ],
)
def test_unusable_reports(data: bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_junit(data, "r.xml")


def test_summarize_adds_files_and_reports_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(PYTEST)
    (tmp_path / "b.xml").write_bytes(PHPUNIT)
    (tmp_path / "bad.xml").write_bytes(b"nope")
    summary, warnings = summarize_junit(
        [tmp_path / "a.xml", tmp_path / "bad.xml", tmp_path / "b.xml", tmp_path / "gone.xml"]
    )
    assert summary is not None
    assert (summary.passed, summary.failed, summary.skipped, summary.errors) == (4, 2, 1, 1)
    assert len(warnings) == 2
    assert warnings[0].startswith("bad.xml: not valid XML")
    assert summarize_junit([]) == (None, [])


@pytest.mark.parametrize(
    ("regex", "log", "expected"),
    [
        # the last matching line wins
        (r"/Coverage: \d+\.\d+%/", "Coverage: 10.5%\nx\nCoverage: 87.25%\ny", 87.25),
        # the last match within that line
        (r"/\d+%/", "a 10% b 20% c 30%", 30.0),
        # the first number inside the match
        (r"/TOTAL.*/", "TOTAL   120   12   90%", 120.0),
        # with groups: the last group of the last match
        (r"/(lines|branches): (\d+)%/", "lines: 80% branches: 70%", 70.0),
        # a matching line without a number is passed over
        (r"/cov.*/", "cov 55%\ncov none", 55.0),
        (r"/nothing/", "cov 55%", None),
        # RE2 syntax, unanchored search; no slashes also accepted
        (r"/(?i)total:\s+(\d+)/", "Total:   42", 42.0),
        (r"^\d+$", "12\n34", 34.0),
    ],
)
def test_coverage_rule(regex: str, log: str, expected: float | None) -> None:
    assert coverage_of(regex, log) == expected


def test_invalid_coverage_regex() -> None:
    with pytest.raises(ConfigError):
        coverage_of("/(open/", "x")
