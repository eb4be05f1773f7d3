"""Run unittest discovery, write a JUnit XML report and print line coverage of a package.

Usage: python3 ci/run_tests.py --junit report.xml --cover calc [--pattern 'test_*.py']
Standard library only: coverage is measured with sys.settrace over the package's files.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from types import CodeType


def executable_lines(path: Path) -> set[int]:
    lines: set[int] = set()
    todo: list[CodeType] = [compile(path.read_text(), str(path), "exec")]
    while todo:
        code = todo.pop()
        lines.update(line for _, _, line in code.co_lines() if line)
        todo.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return lines


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases: list[tuple[unittest.TestCase, str, str, str, float]] = []
        self._started = 0.0

    def startTest(self, test):
        self._started = time.perf_counter()
        super().startTest(test)

    def _record(self, test, outcome, message="", detail=""):
        seconds = time.perf_counter() - self._started
        self.cases.append((test, outcome, message, detail, seconds))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", _message(err), self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", _message(err), self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def _message(err) -> str:
    kind, value, _ = err
    first = str(value).splitlines()[0] if str(value) else ""
    return f"{kind.__name__}: {first}"


def write_junit(path: Path, result: Recorder, suite_name: str) -> None:
    counts = {k: sum(1 for c in result.cases if c[1] == k) for k in ("failure", "error", "skipped")}
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(len(result.cases)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
    )
    for test, outcome, message, detail, seconds in result.cases:
        cls, _, name = test.id().rpartition(".")
        case = ET.SubElement(suite, "testcase", classname=cls, name=name, time=f"{seconds:.3f}")
        if outcome != "passed":
            ET.SubElement(case, outcome, message=message).text = detail or None
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--junit", required=True)
    parser.add_argument("--cover", required=True, help="package directory to measure")
    parser.add_argument("--pattern", default="test_*.py")
    args = parser.parse_args()

    package = Path(args.cover).resolve()
    hits: dict[str, set[int]] = {}

    def tracer(frame, event, arg):
        filename = frame.f_code.co_filename
        if not filename.startswith(str(package)):
            return None
        if event in ("call", "line"):
            hits.setdefault(filename, set()).add(frame.f_lineno)
        return tracer

    sys.path.insert(0, str(Path.cwd()))
    runner = unittest.TextTestRunner(resultclass=Recorder, verbosity=2, stream=sys.stdout)
    # Tracing starts before discovery so that module-level lines count when tests import them.
    threading.settrace(tracer)
    sys.settrace(tracer)
    try:
        loader = unittest.defaultTestLoader
        suite = loader.discover("tests", pattern=args.pattern, top_level_dir=".")
        result = runner.run(suite)
    finally:
        sys.settrace(None)
        threading.settrace(None)

    write_junit(Path(args.junit), result, suite_name=args.pattern)
    total = covered = 0
    for source in sorted(package.rglob("*.py")):
        lines = executable_lines(source)
        seen = hits.get(str(source), set()) & lines
        total += len(lines)
        covered += len(seen)
        print(f"{source.relative_to(Path.cwd())}: {len(seen)}/{len(lines)} lines")
    print(f"Coverage: {100.0 * covered / max(total, 1):.1f}% of {total} lines")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    raise SystemExit(main())
