"""The live board: what the user sees for a scripted run, layouts by width, threads, Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from localci.events import (
    Event,
    JobFinished,
    JobOutput,
    JobStarted,
    Notice,
    PipelineFinished,
    PipelineStarted,
)
from localci.report.live import Board, LiveReporter, board_line, format_seconds
from localci.results import JobResult, RunResult, Status
from localci.results import TestSummary as JunitCounts
from tests.helpers import make_repo

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recording(width: int = 120, height: int = 40) -> Console:
    return Console(
        record=True,
        force_terminal=True,
        width=width,
        height=height,
        file=io.StringIO(),
        highlight=False,
    )


def screen(reporter: LiveReporter, width: int, height: int = 40) -> str:
    """The board as it is drawn now, as plain text."""
    console = Console(
        record=True, width=width, height=height, file=io.StringIO(), color_system=None
    )
    console.print(reporter.board())
    return console.export_text()


JOBS = (
    ("compile", "build", "on_success"),
    ("lint: [ruff, mypy]", "build", "on_success"),
    ("unit tests", "test", "on_success"),
    ("flaky", "test", "on_success"),
    ("a job whose name is much too long for any column of the board", "test", "on_success"),
    ("deploy", "deploy", "manual"),
    ("notify", "deploy", "on_failure"),
)


def result(name: str, stage: str, status: Status, **fields: object) -> JobResult:
    return JobResult(name, stage, status, **fields)  # type: ignore[arg-type]


def scripted_run(
    emit: Callable[[Event], None], clock: Clock, log_dir: Path, *, until: str = "end"
) -> RunResult:
    """A pipeline as the executor reports it: output, masking, junit, coverage, failures."""
    failed_log = log_dir / "unit_tests.log"
    failed_log.write_text(
        "".join(f"test output line {n}\n" for n in range(1, 41))
        + "FAILED tests/test_api.py::test_login - AssertionError\n"
    )
    emit(PipelineStarted(42, JOBS, str(log_dir)))
    emit(Notice("services: not emulated locally; the job runs without it", "compile"))
    emit(JobStarted("compile", "build"))
    emit(JobStarted("lint: [ruff, mypy]", "build"))
    clock.now += 2
    emit(JobOutput("compile", "\x1b[32;1m$ make TOKEN=[MASKED]\x1b[0m"))
    emit(JobOutput("compile", "downloading 10%\rdownloading 100%"))
    emit(JobOutput("lint: [ruff, mypy]", "All checks passed!"))
    emit(
        JobFinished(
            result(
                "lint: [ruff, mypy]",
                "build",
                Status.SUCCESS,
                attempts=1,
                duration_s=2.0,
                log=str(log_dir / "lint.log"),
            )
        )
    )
    if until == "build":
        return RunResult(42, "running", (), 0.0)
    clock.now += 1.5
    jobs = [
        result("compile", "build", Status.SUCCESS, attempts=1, duration_s=3.5),
        result("lint: [ruff, mypy]", "build", Status.SUCCESS, attempts=1, duration_s=2.0),
        result(
            "unit tests",
            "test",
            Status.FAILED,
            attempts=1,
            duration_s=12.25,
            log=str(failed_log),
            reason="script failed with exit code 1",
            exit_code=1,
            tests=JunitCounts(
                passed=40, failed=2, skipped=3, failed_names=("tests/test_api.py::test_login",)
            ),
            coverage=87.5,
        ),
        result(
            "flaky",
            "test",
            Status.FAILED,
            allow_failure=True,
            attempts=2,
            duration_s=0.5,
            reason="script failed with exit code 3",
        ),
        result(JOBS[4][0], "test", Status.SUCCESS, attempts=1, duration_s=75.0),
        result(
            "deploy",
            "deploy",
            Status.MANUAL,
            allow_failure=True,
            reason="manual job: run it with `localci run --manual 'deploy'`",
        ),
        result(
            "notify",
            "deploy",
            Status.SKIPPED,
            reason="skipped: when: on_failure and nothing before it failed",
        ),
    ]
    emit(JobFinished(jobs[0]))
    for name in ("unit tests", "flaky", JOBS[4][0]):
        emit(JobStarted(name, "test"))
    emit(JobStarted("flaky", "test", attempt=2))
    emit(JobOutput("unit tests", "collected 45 items"))
    clock.now += 3
    if until == "test":
        return RunResult(42, "running", (), 0.0)
    for job in jobs[2:]:
        emit(JobFinished(job))
    run = RunResult(42, "failed", tuple(jobs), 20.0, str(log_dir))
    emit(PipelineFinished(run))
    return run


def board_after(until: str, width: int, tmp_path: Path, height: int = 40) -> str:
    clock = Clock()
    reporter = LiveReporter(recording(width), clock=clock)
    scripted_run(reporter, clock, tmp_path, until=until)
    return screen(reporter, width, height)


def test_columns_board_while_jobs_run(tmp_path: Path) -> None:
    text = board_after("build", 120, tmp_path)
    lines = text.splitlines()
    assert lines[0].startswith("Pipeline #42  1/7 jobs done, 1 running  2.0s")
    assert re.match(r"build 1/2 +test 0/3 +deploy 0/2", lines[1])
    # Running: a spinner frame, elapsed time, and its last line without colour codes.
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] compile +2\.0s", text)
    assert "$ make TOKEN=[MASKED]" not in text  # replaced by the later line...
    assert "downloading 100%" in text  # ...whose carriage-return history is dropped
    assert "downloading 10%" not in text
    assert re.search(r"✔ lint: \[ruff, mypy\] +2\.0s", text)
    assert "○ unit tests" in text
    assert "○ deploy" in text
    assert "\x1b" not in text
    assert max(len(line) for line in lines) <= 120


def test_masked_values_reach_the_board_masked(tmp_path: Path) -> None:
    clock = Clock()
    reporter = LiveReporter(recording(), clock=clock)
    reporter(PipelineStarted(1, (("job", "test", "on_success"),), str(tmp_path)))
    reporter(JobStarted("job", "test"))
    reporter(JobOutput("job", "\x1b[1m$ curl -H 'Token: [MASKED]' https://example.invalid\x1b[0m"))
    text = screen(reporter, 120)
    assert "$ curl -H 'Token: [MASKED]' https://example.invalid" in text


def test_sections_board_with_outcomes(tmp_path: Path) -> None:
    text = board_after("test", 80, tmp_path)
    lines = text.splitlines()
    assert lines[0].startswith("Pipeline #42  2/7 jobs done, 3 running")
    assert "build 2/2" in lines
    assert "test 0/3" in lines
    assert re.search(r"  ✔ compile +3\.5s", text)
    assert re.search(r"unit tests +3\.0s  collected 45 items", text)
    assert re.search(r"flaky +3\.0s  \(attempt 2\)", text)
    assert re.search(r"⠴ a job whose name is much …  ", text)  # truncated, never wrapped
    assert re.search(r"○ deploy +manual", text)
    assert re.search(r"○ notify +on_failure", text)
    assert max(len(line) for line in lines) <= 80


def test_final_board_shows_every_outcome(tmp_path: Path) -> None:
    text = board_after("end", 80, tmp_path)
    assert text.splitlines()[0].startswith("Pipeline #42  7/7 jobs done")
    assert "running" not in text.splitlines()[0]
    assert re.search(r"✘ unit tests +12\.2s  tests: 40 passed, 2 failed, 3 skipped ·…", text)
    wide = board_after("end", 84, tmp_path)  # three columns of 26
    assert re.search(r"✘ unit tests +12\.2s", wide)
    assert "  tests: 40 passed, 2 fai…" in wide
    assert "  script failed with exit…" in wide
    assert re.search(r"⚠ flaky +0\.5s  script failed with exit code 3", text)
    assert re.search(r"✔ a job whose name is much … +1m15s", text)
    assert re.search(r"▶ deploy +manual job: run it with", text)
    assert re.search(r"» notify +skipped: when: on_failure", text)


def test_compact_layout_below_60_columns(tmp_path: Path) -> None:
    text = board_after("test", 40, tmp_path)
    lines = text.splitlines()
    assert lines[0] == "#42 2/7 jobs · 6.5s"
    assert len(lines) == 1 + len(JOBS)  # one line per job
    assert all(len(line) <= 40 for line in lines)
    assert re.match(r"✔ compile +3\.5s$", lines[1])
    assert re.match(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] a job whose name is much too lo… 3\.0s$", lines[5])
    assert lines[6].startswith("○ deploy")


def test_tall_pipelines_fold_passed_jobs_to_fit_the_terminal(tmp_path: Path) -> None:
    clock = Clock()
    reporter = LiveReporter(recording(), clock=clock)
    jobs = tuple((f"unit {n}/30", "test", "on_success") for n in range(1, 31))
    reporter(PipelineStarted(3, (*jobs, ("deploy", "deploy", "on_success")), str(tmp_path)))
    for name, stage, _ in jobs[:-2]:
        reporter(JobFinished(result(name, stage, Status.SUCCESS, attempts=1)))
    reporter(JobFinished(result("unit 29/30", "test", Status.FAILED, attempts=1, reason="boom")))
    reporter(JobStarted("unit 30/30", "test"))
    text = screen(reporter, 80, height=12)
    assert len(text.splitlines()) <= 12
    assert "✔ 28 passed" in text
    assert "✘ unit 29/30" in text  # failures and running jobs are never folded
    assert "unit 30/30" in text
    assert "unit 1/30" not in text


def test_whole_run_on_a_terminal_ends_with_the_summary(tmp_path: Path) -> None:
    console = recording(100)
    clock = Clock()
    with LiveReporter(console, clock=clock) as reporter:
        scripted_run(reporter, clock, tmp_path)
    assert reporter.live is None
    text = console.export_text()
    assert "Pipeline #42: 7 job(s); records in" in text
    assert "[compile] warning: services: not emulated locally" in text
    tail = text[text.rindex("7/7 jobs done") :]  # the last frame, then the summary
    # the failed job's log tail (30 lines) and where the full log is
    assert "── unit tests failed: script failed with exit code 1 ──" in tail
    assert "test output line 12" in tail
    assert "test output line 11\n" not in tail
    assert "FAILED tests/test_api.py::test_login - AssertionError" in tail
    assert f"full log: {tmp_path / 'unit_tests.log'}" in tail
    # the summary table: junit counts, coverage, allowed failure, manual, skipped
    assert re.search(r"unit tests .* failed .* 12\.2s .* 40 passed, 2 failed, 3 .*87\.5%", tail)
    assert re.search(r"flaky .* failed \(allowed\)", tail)
    assert "tests/test_api.py::test_login" in tail
    assert tail.rstrip().endswith("see a job's log: localci logs JOB")
    assert "Pipeline #42 failed in 20.0s" in tail


def test_terminal_output_restores_the_cursor_and_respects_no_color(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, no_color=True)
    clock = Clock()
    with LiveReporter(console, clock=clock) as reporter:
        scripted_run(reporter, clock, tmp_path)
    raw = out.getvalue()
    assert raw.rindex("\x1b[?25l") < raw.rindex("\x1b[?25h")  # cursor hidden, then shown
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", raw)  # no foreground colours


def test_colours_when_the_console_has_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system="standard")
    clock = Clock()
    with LiveReporter(console, clock=clock) as reporter:
        scripted_run(reporter, clock, tmp_path)
    assert "\x1b[32m✔" in out.getvalue()
    assert "\x1b[1;31m✘" in out.getvalue()


def test_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    console = recording()
    clock = Clock()
    with LiveReporter(console, verbosity=0, clock=clock) as reporter:
        assert reporter.live is None
        scripted_run(reporter, clock, tmp_path)
    text = console.export_text()
    assert "jobs done" not in text
    assert "warning" not in text
    assert "○" not in text
    assert "Pipeline #42 failed" in text


def test_verbose_prints_every_line_above_the_board(tmp_path: Path) -> None:
    console = recording()
    clock = Clock()
    with LiveReporter(console, verbosity=2, clock=clock) as reporter:
        scripted_run(reporter, clock, tmp_path)
    text = console.export_text()
    width = len(JOBS[4][0][:30])
    assert f"[{'compile':<{width}}] $ make TOKEN=[MASKED]" in text
    assert f"[{'lint: [ruff, mypy]':<{width}}] All checks passed!" in text
    assert f"[{'flaky':<{width}}] started (stage test, attempt 2)" in text
    assert f"[{'unit tests':<{width}}] failed (12.2s): script failed with exit code 1" in text
    assert "[a job whose name is much too …] started (stage test)" in text
    assert text.index("$ make TOKEN") < text.index("Pipeline #42 failed")


def test_ctrl_c_stops_the_display(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    clock = Clock()
    with pytest.raises(KeyboardInterrupt), LiveReporter(console, clock=clock) as reporter:
        scripted_run(reporter, clock, tmp_path, until="test")
        raise KeyboardInterrupt
    assert reporter.live is None
    assert console._live_stack == []  # private, but the only way to see that Live is gone
    raw = out.getvalue()
    assert raw.rindex("\x1b[?25l") < raw.rindex("\x1b[?25h")
    assert "unit tests" in ANSI.sub("", raw)
    reporter.stop()  # idempotent


def test_events_from_many_threads(tmp_path: Path) -> None:
    console = recording()
    jobs = tuple((f"job {n}", "test", "on_success") for n in range(8))
    with LiveReporter(console, verbosity=2) as reporter:
        reporter(PipelineStarted(5, jobs, str(tmp_path)))

        def work(name: str) -> None:
            reporter(JobStarted(name, "test"))
            for line in range(300):
                reporter(JobOutput(name, f"{name} line {line}"))
                if line % 50 == 0:
                    reporter.board()  # what the refresh thread does, concurrently
            reporter(JobFinished(result(name, "test", Status.SUCCESS, attempts=1)))

        threads = [threading.Thread(target=work, args=(name,)) for name, _, _ in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results = tuple(result(name, "test", Status.SUCCESS, attempts=1) for name, _, _ in jobs)
        reporter(PipelineFinished(RunResult(5, "success", results, 1.0, str(tmp_path))))
    text = console.export_text()
    for name, _, _ in jobs:
        positions = [text.index(f"] {name} line {n}\n") for n in (0, 150, 299)]
        assert positions == sorted(positions)  # each job's lines in order
    assert "Pipeline #5 passed" in text


def test_board_line_and_durations() -> None:
    assert board_line("\x1b[32;1m$ echo hi\x1b[0m") == "$ echo hi"
    assert board_line("50%\r100%\r") == "100%"
    assert board_line("\tindented  ") == "indented"
    assert format_seconds(9.94) == "9.9s"
    assert format_seconds(75) == "1m15s"
    assert format_seconds(3725) == "1h02m"


def test_board_before_the_pipeline_starts() -> None:
    reporter = LiveReporter(recording())
    assert "Starting the pipeline" in screen(reporter, 100)
    assert isinstance(reporter.board(), Board)


# ---- the real command on a pseudo-terminal ------------------------------------------------------


def run_in_pty(
    args: list[str], cwd: Path, *, interrupt_after: str | None = None, columns: int = 100
) -> tuple[int, str]:
    """Run a command on a pseudo-terminal; optionally send Ctrl-C once `interrupt_after` shows."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen(
        args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    sent = False
    try:
        for chunk in _read_all(master, proc):
            chunks.append(chunk)
            seen = b"".join(chunks).decode("utf-8", "replace")
            if interrupt_after and not sent and interrupt_after in ANSI.sub("", seen):
                os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
                sent = True
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def _read_all(master: int, proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    idle = 0
    while idle < 3000:  # a hang guard (300 s of silence), not a timing assertion
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            idle += 1
            continue
        idle = 0
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child side is closed
            return
        if not chunk:
            return
        yield chunk


PTY_PIPELINE = """
stages: [build, test]
build:
  stage: build
  script:
    - echo "building $CI_COMMIT_BRANCH"
unit:
  stage: test
  script:
    - echo "ran unit tests"
flaky:
  stage: test
  allow_failure: true
  script:
    - echo "about to fail"
    - exit 3
"""


def localci_command() -> list[str]:
    exe = Path(sys.executable).with_name("localci")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "localci"]


@pytest.mark.slow
def test_real_run_on_a_terminal_ends_with_the_summary(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": PTY_PIPELINE})
    code, raw = run_in_pty([*localci_command(), "run"], repo)
    text = ANSI.sub("", raw)
    assert code == 0, text
    assert "Traceback" not in text
    assert "── flaky failed (allowed): script failed with exit code 3 ──" in text
    assert "about to fail" in text
    assert re.search(r"unit +│ test +│ passed", text)
    assert "Pipeline #1 passed" in text
    if "\x1b[?25l" in raw:
        assert raw.rindex("\x1b[?25l") < raw.rindex("\x1b[?25h")


@pytest.mark.slow
def test_real_run_on_a_terminal_draws_the_board(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": PTY_PIPELINE})
    code, raw = run_in_pty([*localci_command(), "run"], repo)
    text = ANSI.sub("", raw)
    assert code == 0, text
    assert "3/3 jobs done" in text
    assert re.search(r"✔ build +\d", text)
    assert re.search(r"⚠ flaky +\d", text)
    assert raw.rindex("\x1b[?25l") < raw.rindex("\x1b[?25h")


@pytest.mark.slow
def test_ctrl_c_on_a_terminal_leaves_it_clean(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
        wait:
          script:
            - echo "waiting now"
            - sleep 120
    """
        },
    )
    code, raw = run_in_pty([*localci_command(), "run"], repo, interrupt_after="$ sleep 120")
    text = ANSI.sub("", raw)
    assert code == 130, text
    assert "Traceback" not in text
    assert "canceled" in text
    assert "interrupted" in text
    if "\x1b[?25l" in raw:
        assert raw.rindex("\x1b[?25l") < raw.rindex("\x1b[?25h")


def _summary_jobs(name: str = "integration-tests") -> list[JobResult]:
    return [
        JobResult(
            "unit",
            "test",
            Status.SUCCESS,
            False,
            duration_s=0.31,
            attempts=1,
            coverage=66.7,
            tests=JunitCounts(4, 1, 2, 0, ("t::a",)),
        ),
        JobResult(name, "test", Status.FAILED, True, duration_s=1.31, attempts=1),
        JobResult("deploy", "deploy", Status.SKIPPED, False),
        JobResult("review", "deploy", Status.MANUAL, False),
    ]


def _printed(renderable: object, width: int, **options: object) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable, **options)  # type: ignore[arg-type]
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_fast_summary_table_is_the_rich_table_character_for_character() -> None:
    from localci.report.summary import fast_summary_table, summary_table

    jobs = _summary_jobs()
    expected = _printed(summary_table(jobs), 200)
    width = len(expected.splitlines()[0])
    fast = fast_summary_table(jobs, width)
    assert fast is not None
    assert _printed(fast, width, soft_wrap=True, end="") == expected
    assert "│unit              │ test   │ passed" in expected
    # one column narrower, or a name rich must measure itself: rich draws it
    assert fast_summary_table(jobs, width - 1) is None
    assert fast_summary_table(_summary_jobs("テスト"), 200) is None
