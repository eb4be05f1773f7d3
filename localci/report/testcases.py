"""The test cases of a job's JUnit reports, for the pipeline page (failed first, with messages).

The counts GitLab shows come from localci.execute.junit_coverage; this reads the same files
for the names, times and failure messages, with the same limits (size, no entity declarations).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from localci.execute.junit_coverage import MAX_JUNIT_BYTES

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

# As in localci.execute.junit_coverage: a report declaring entities is refused, never expanded.
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)

#: Failure texts are cut to this many characters (a stack trace's end is kept).
MAX_DETAIL = 4000
ORDER = {"failed": 0, "error": 1, "skipped": 2, "success": 3}


@dataclass(frozen=True, slots=True)
class TestCase:
    name: str
    classname: str
    status: str  # failed, error, skipped, success
    time_s: float | None
    message: str
    detail: str
    job: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.classname}.{self.name}" if self.classname else self.name


def read_cases(files: Iterable[Path], job: str = "") -> tuple[list[TestCase], list[str]]:
    """Every case of the files, failed first; and one warning per unreadable file."""
    import xml.etree.ElementTree as ET  # most pages have no junit report: imported on use

    cases: list[TestCase] = []
    warnings: list[str] = []
    for path in files:
        try:
            cases.extend(_file_cases(path, job))
        except (OSError, ValueError, ET.ParseError) as exc:
            warnings.append(f"{path.name}: {exc}")
    return sort_cases(cases), warnings


def sort_cases(cases: Iterable[TestCase]) -> list[TestCase]:
    return sorted(cases, key=lambda case: ORDER.get(case.status, 9))


def _file_cases(path: Path, job: str) -> list[TestCase]:
    with path.open("rb") as handle:
        data = handle.read(MAX_JUNIT_BYTES + 1)
    if len(data) > MAX_JUNIT_BYTES:
        raise ValueError(f"larger than {MAX_JUNIT_BYTES // (1024 * 1024)} MiB")
    if _ENTITY.search(data):
        raise ValueError("declares XML entities, which localci does not expand")
    import xml.etree.ElementTree as ET

    root = ET.fromstring(data)  # noqa: S314 - entity declarations are refused above
    suites = [root] if _local(root.tag) == "testsuite" else list(_children(root, "testsuite"))
    return [_case(case, job) for suite in suites for case in _cases(suite)]


def _cases(suite: ET.Element) -> Iterator[ET.Element]:
    yield from _children(suite, "testcase")
    for nested in _children(suite, "testsuite"):
        yield from _cases(nested)


def _case(case: ET.Element, job: str) -> TestCase:
    children = {_local(child.tag): child for child in reversed(list(case))}
    status, element = "success", None
    for kind, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        if kind in children:
            status, element = name, children[kind]
            break
    message = (element.get("message") or "") if element is not None else ""
    detail = (element.text or "").strip() if element is not None else ""
    if len(detail) > MAX_DETAIL:
        detail = "…" + detail[-MAX_DETAIL:]
    return TestCase(
        name=case.get("name", ""),
        classname=case.get("classname", ""),
        status=status,
        time_s=_seconds(case.get("time")),
        message=message[:MAX_DETAIL],
        detail=detail,
        job=job,
    )


def _seconds(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _children(element: ET.Element, tag: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == tag)


def _local(tag: object) -> str:
    return (tag if isinstance(tag, str) else "").rpartition("}")[2]
