"""Job reports: JUnit XML files summarised as GitLab's test report does, and the `coverage`
keyword's regex applied to the job log with GitLab's rule (docs/SEMANTICS.md §14, §15)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from localci.expr import compile_ruby_regex
from localci.regex import Regex
from localci.results import TestSummary

#: JUnit files above this size are not parsed (GitLab also caps test reports).
MAX_JUNIT_BYTES = 30 * 1024 * 1024
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Entity declarations are the only way XML expands text (billion laughs); none of the junit
# writers emit them, so a report that declares one is refused instead of parsed.
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


class ReportError(ValueError):
    """A report file that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class _Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    failed_names: tuple[str, ...] = ()

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(
            self.passed + other.passed,
            self.failed + other.failed,
            self.skipped + other.skipped,
            self.errors + other.errors,
            self.failed_names + other.failed_names,
        )


def parse_junit(data: bytes, name: str = "junit report") -> TestSummary:
    """Counts of one JUnit XML document, as GitLab's parser sees it.

    The root is `testsuites` or `testsuite`; test cases count only inside a `testsuite`
    (which may nest, as PHPUnit writes them). A case is failed if it has `failure`, else an
    error if it has `error`, else skipped if it has `skipped`, else passed. Failed and errored
    cases are named `classname.name`.
    """
    if len(data) > MAX_JUNIT_BYTES:
        raise ReportError(f"{name}: larger than {MAX_JUNIT_BYTES // (1024 * 1024)} MiB")
    if _ENTITY.search(data):
        raise ReportError(f"{name}: declares XML entities, which localci does not expand")
    try:
        root = ET.fromstring(data)  # noqa: S314 - entity declarations are refused above
    except ET.ParseError as exc:
        raise ReportError(f"{name}: not valid XML ({exc})") from None
    counts = _Counts()
    tag = _local(root.tag)
    if tag == "testsuites":
        for suite in _children(root, "testsuite"):
            counts += _suite(suite)
    elif tag == "testsuite":
        counts = _suite(root)
    else:
        raise ReportError(f"{name}: the root element is <{tag}>, not <testsuites>/<testsuite>")
    return TestSummary(
        counts.passed, counts.failed, counts.skipped, counts.errors, counts.failed_names
    )


def _suite(suite: ET.Element) -> _Counts:
    counts = _Counts()
    for case in _children(suite, "testcase"):
        counts += _case(case)
    for nested in _children(suite, "testsuite"):
        counts += _suite(nested)
    return counts


def _case(case: ET.Element) -> _Counts:
    kinds = {_local(child.tag) for child in case}
    if "failure" in kinds:
        return _Counts(failed=1, failed_names=(_case_name(case),))
    if "error" in kinds:
        return _Counts(errors=1, failed_names=(_case_name(case),))
    if "skipped" in kinds:
        return _Counts(skipped=1)
    return _Counts(passed=1)


def _case_name(case: ET.Element) -> str:
    classname, name = case.get("classname", ""), case.get("name", "")
    return f"{classname}.{name}" if classname else name


def _children(element: ET.Element, tag: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == tag)


def _local(tag: object) -> str:
    text = tag if isinstance(tag, str) else ""
    return text.rpartition("}")[2]


def summarize_junit(files: Iterable[Path]) -> tuple[TestSummary | None, list[str]]:
    """The sum over report files, and one warning per file that could not be used."""
    total: TestSummary | None = None
    warnings: list[str] = []
    for path in files:
        try:
            data = _read_limited(path)
            summary = parse_junit(data, path.name)
        except (OSError, ReportError) as exc:
            warnings.append(str(exc))
            continue
        total = summary if total is None else _add(total, summary)
    return total, warnings


def _read_limited(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_JUNIT_BYTES + 1)
    if len(data) > MAX_JUNIT_BYTES:
        raise ReportError(f"{path.name}: larger than {MAX_JUNIT_BYTES // (1024 * 1024)} MiB")
    return data


def _add(a: TestSummary, b: TestSummary) -> TestSummary:
    return TestSummary(
        a.passed + b.passed,
        a.failed + b.failed,
        a.skipped + b.skipped,
        a.errors + b.errors,
        a.failed_names + b.failed_names,
    )


def coverage_regex(literal: str) -> Regex:
    """The `coverage` keyword's pattern: `/.../` with the slashes removed (RE2 syntax)."""
    body = literal[1:-1] if len(literal) >= 2 and literal[0] == literal[-1] == "/" else literal
    return compile_ruby_regex(body)


def extract_coverage(regex: Regex, log: str) -> float | None:
    """GitLab's rule: scan lines from the last one up; in the first line with matches take the
    last match (its last capture group when the regex has groups) and the first number in it;
    a line whose match holds no number is passed over."""
    for line in reversed(log.splitlines()):
        matches = list(regex.finditer(line))
        if not matches:
            continue
        last = matches[-1]
        text = last.groups[-1] if last.groups else last.text
        number = _NUMBER.search(text or "")
        if number:
            return float(number.group(0))
    return None


def coverage_of(literal: str, log: str) -> float | None:
    """Coverage from a job log; ConfigError when the `coverage` regex is invalid."""
    return extract_coverage(coverage_regex(literal), log)
