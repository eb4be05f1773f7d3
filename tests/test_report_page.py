"""The pipeline page's builder: log rendering (ANSI, sections, phases, escaping), the page
model read from records, the graph/timeline geometry, and `localci report`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from localci.execute.artifacts import ArtifactUpload, save_artifacts
from localci.report import logview, pagemodel
from localci.report.html import render_pipeline, write_pipeline_page
from localci.report.layout import critical_path, max_parallel, stage_graph, timeline
from localci.report.logview import render_log
from localci.report.pagemodel import pipeline_view
from localci.state import Store
from tests.helpers import make_repo, run_cli, run_localci

HOSTILE = '<script>alert(1)</script> </textarea> <img src=x onerror=alert(2)> & "q"'
JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="s">
  <testcase classname="t.A" name="test_ok" time="0.1"/>
  <testcase classname="t.A" name="test_skip"><skipped message="later"/></testcase>
  <testcase classname="t.A" name="test_bad" time="0.2">
    <failure
      message="assert 1 == 2 &lt;/textarea&gt;&lt;script&gt;x()&lt;/script&gt;"
    >trace line</failure>
  </testcase>
</testsuite></testsuites>
"""


def lines_html(text: str, before_script: int = 0) -> list[str]:
    return [str(t.html) for t in render_log(text.split("\n"), before_script=before_script).tokens]


# ---- logs -------------------------------------------------------------------------------------


def test_ansi_colours_become_classes_and_state_carries_across_lines() -> None:
    tokens = render_log(["\x1b[31;1mred bold", "still red\x1b[0m plain", "\x1b[38;5;208mx"]).tokens
    html = [str(t.html) for t in tokens if t.kind == "line"]
    assert html[0] == '<span class="f1 bo">red bold</span>'
    assert html[1] == '<span class="f1 bo">still red</span> plain'
    assert html[2] == '<span class="" style="color:#ff8700">x</span>'


def test_hostile_log_text_is_escaped_never_markup() -> None:
    html = "".join(lines_html(f"{HOSTILE}\n\x1b[32m{HOSTILE}\x1b[0m"))
    assert "<script>" not in html and "</textarea>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/textarea&gt;" in html


def test_control_sequences_and_progress_redraws_are_not_text() -> None:
    html = lines_html("\x1b]0;title\x07done\x1b[2K\x1b[1A\n10%\r50%\r100%\nwindows\r\n")
    assert html == ["done", "100%", "windows", ""]


def test_gitlab_sections_nest_collapse_and_show_their_duration() -> None:
    log = (
        "section_start:100:outer\r\x1b[0KOuter header\n"
        "a\n"
        "section_start:101:inner[collapsed=true]\r\x1b[0KInner\n"
        "b\n"
        "section_end:165:inner\r\x1b[0K\n"
        "section_end:230:outer\r\x1b[0K\n"
        "after\n"
        "section_end:300:never_opened\r\x1b[0K\n"
    )
    tokens = render_log(log.split("\n")[:-1]).tokens
    shape = [(t.kind, str(t.html), t.collapsed, t.duration) for t in tokens]
    assert shape == [
        ("open", "Outer header", False, "02:10"),
        ("line", "a", False, ""),
        ("open", "Inner", True, "01:04"),
        ("line", "b", False, ""),
        ("close", "", False, ""),
        ("close", "", False, ""),
        ("line", "after", False, ""),
    ]


def test_unclosed_sections_are_closed_at_the_end() -> None:
    tokens = render_log(["section_start:1:a\r\x1b[0KA", "x"]).tokens
    assert [t.kind for t in tokens] == ["open", "line", "close"]


def test_localci_phases_split_prepare_before_script_script_and_after_script() -> None:
    log = [
        "Preparing workspace /w",
        "Using Python 3.11 in a fresh virtualenv (created)",
        "\x1b[32;1m$ echo setup\x1b[0;m",
        "setup",
        "\x1b[32;1m$ make test\x1b[0;m",
        "$ output that looks like a command",
        "Running after script...",
        "$ echo bye",
        "bye",
    ]
    tokens = render_log(log, before_script=1).tokens
    phases = [(str(t.html), t.number) for t in tokens if t.kind == "open"]
    assert phases == [
        ("Preparing the environment", 1),
        ("before_script", 3),
        ("script", 5),
        ("after_script", 7),
    ]
    assert [t.kind for t in tokens].count("close") == 4


def test_long_logs_keep_their_last_lines_with_true_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logview, "MAX_LINES", 100)
    rendered = render_log([f"line {n}" for n in range(1, 1001)])
    lines = [t for t in rendered.tokens if t.kind == "line"]
    assert rendered.omitted == 900 and rendered.total_lines == 1000
    assert (lines[0].number, str(lines[0].html)) == (901, "line 901")
    assert (lines[-1].number, str(lines[-1].html)) == (1000, "line 1000")


def test_huge_logs_are_read_from_their_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagemodel, "MAX_LOG_BYTES", 10_000)
    text = "".join(f"line {n}\n" for n in range(1, 5001))
    record_dir = write_record(tmp_path, [job("big", "test", log_text=text)])
    view = pipeline_view(
        json.loads((record_dir / "pipeline.json").read_text()), record_dir, record_dir
    )
    log = view.jobs[0].log
    assert log is not None and log.total_lines == 5000
    lines = [t for t in log.tokens if t.kind == "line"]
    assert (lines[-1].number, lines[-1].html) == (5000, "line 5000")
    assert lines[0].html == f"line {lines[0].number}"
    assert log.omitted == lines[0].number - 1 > 3000
    html = render_pipeline(view)
    assert f"… {log.omitted} earlier lines are in the" in html


# ---- records -> page --------------------------------------------------------------------------


def job(name: str, stage: str, status: str = "success", **extra: Any) -> dict[str, Any]:
    return {"name": name, "stage": stage, "status": status, "duration_s": 1.0, **extra}


def write_record(root: Path, jobs: list[dict[str, Any]], **extra: Any) -> Path:
    record_dir = root / ".localci" / "pipelines" / "7"
    (record_dir / "jobs").mkdir(parents=True)
    for index, entry in enumerate(jobs):
        text = entry.pop("log_text", None)
        if text is not None:
            path = record_dir / "jobs" / f"{index}.log"
            path.write_text(text)
            entry["log"] = str(path)
    record = {"id": 7, "status": "failed", "ref": "main", "sha": "abc123", "jobs": jobs}
    (record_dir / "pipeline.json").write_text(json.dumps({**record, **extra}))
    return record_dir


def store_artifacts(root: Path, name: str, files: dict[str, str], junit: str = "") -> None:
    workspace = root / "ws" / name
    workspace.mkdir(parents=True)
    for rel, text in files.items():
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_text(text)
    reports = {}
    if junit:
        (workspace / junit).write_text(JUNIT)
        reports["junit"] = [junit]
    upload = ArtifactUpload(name, workspace, None, sorted(files), reports, {"status": "success"})
    save_artifacts(Store(root), 7, upload)


def test_page_escapes_logs_job_names_and_test_messages(tmp_path: Path) -> None:
    record_dir = write_record(
        tmp_path,
        [job(f"evil {HOSTILE}", "test", "failed", log_text=f"{HOSTILE}\n", tests={"failed": 1})],
    )
    store_artifacts(tmp_path, f"evil {HOSTILE}", {"a.txt": "x"}, junit="junit.xml")
    html = write_pipeline_page(record_dir).read_text()
    assert "<script>alert" not in html
    assert "</textarea>" not in html
    assert "<img src=x" not in html
    assert html.count("<script>") == 1  # the page's own
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;/textarea&gt;" in html
    assert "&lt;/textarea&gt;&lt;script&gt;x()" in html


def test_failed_tests_come_first_with_their_messages(tmp_path: Path) -> None:
    record_dir = write_record(
        tmp_path,
        [job("unit", "test", "failed", tests={"passed": 1, "failed": 1, "skipped": 1})],
    )
    store_artifacts(tmp_path, "unit", {}, junit="report.xml")
    view = pipeline_view(
        json.loads((record_dir / "pipeline.json").read_text()), record_dir, record_dir
    )
    tests = view.tests
    assert tests is not None
    assert [c.status for c in tests.cases] == ["failed", "skipped", "success"]
    assert tests.cases[0].full_name == "t.A.test_bad"
    assert tests.cases[0].message.startswith("assert 1 == 2")
    html = render_pipeline(view)
    tests_section = html[html.index('id="tests"') :]
    assert tests_section.index("t.A.test_bad") < tests_section.index("t.A.test_ok")


def test_without_report_files_the_recorded_failed_names_are_listed(tmp_path: Path) -> None:
    entry = job("unit", "test", "failed", tests={"failed": 1, "failed_names": ["pkg.test_x"]})
    record_dir = write_record(tmp_path, [entry])
    html = write_pipeline_page(record_dir).read_text()
    assert "pkg.test_x" in html


def test_graph_has_every_job_needs_lines_and_manual_and_skipped_states(tmp_path: Path) -> None:
    record_dir = write_record(
        tmp_path,
        [
            job("deploy", "deploy", "manual", when="manual", order=3),
            job("build", "build", log_text="ok\n", order=0, needs=None),
            job("lint", "test", "skipped", order=2, needs=[]),
            job("unit", "test", log_text="ok\n", order=1, needs=["build"]),
        ],
        stages=[".pre", "build", "test", "deploy", ".post"],
    )
    view = pipeline_view(
        json.loads((record_dir / "pipeline.json").read_text()), record_dir, record_dir
    )
    assert view.stages == ("build", "test", "deploy")
    assert [j.name for j in view.jobs] == ["build", "unit", "lint", "deploy"]
    graph = stage_graph(view)
    assert len(graph.nodes) == 4 and len(graph.edges) == 1
    html = render_pipeline(view)
    assert re.search(r'class="node s-manual"[^>]*data-name="deploy"', html)
    assert re.search(r'class="node s-skipped"[^>]*data-name="lint"', html)
    assert "localci run --manual deploy" in html


def test_timeline_marks_the_critical_path_and_parallelism(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    times = {
        "build": (0, 10),
        "docs": (0, 3),
        "unit": (10, 30),
        "lint": (10, 12),
        "deploy": (30, 35),
    }
    jobs = [
        job(name, stage, started_at=t0 + a, finished_at=t0 + b, duration_s=b - a)
        for (name, (a, b)), stage in zip(
            times.items(), ["build", "build", "test", "test", "deploy"], strict=True
        )
    ]
    record_dir = write_record(tmp_path, jobs, stages=["build", "test", "deploy"])
    view = pipeline_view(
        json.loads((record_dir / "pipeline.json").read_text()), record_dir, record_dir
    )
    critical = {j.name for j in view.jobs if j.key in critical_path(view)}
    assert critical == {"build", "unit", "deploy"}
    assert max_parallel(view.jobs) == 2
    drawn = timeline(view)
    assert drawn is not None and drawn.span_s == 35
    assert [b.job.name for b in drawn.bars if b.critical] == ["build", "unit", "deploy"]


def test_records_without_times_or_stages_still_render(tmp_path: Path) -> None:
    record_dir = write_record(tmp_path, [job("a", "test", log_text="x\n"), job("b", "deploy")])
    html = write_pipeline_page(record_dir).read_text()
    assert 'data-name="a"' in html and 'data-name="b"' in html
    assert 'id="timeline"' not in html


def test_artifacts_link_relatively_images_inline_and_expose_as_featured(tmp_path: Path) -> None:
    entry = job("train", "train", expose_as={"name": "Model metrics", "paths": ["metrics.json"]})
    record_dir = write_record(tmp_path, [entry])
    store_artifacts(tmp_path, "train", {"metrics.json": "{}", "plots/loss.png": "png"})
    out = tmp_path / "elsewhere" / "page.html"
    out.parent.mkdir()
    html = write_pipeline_page(record_dir, out).read_text()
    href = "../.localci/pipelines/7/artifacts/train/data/plots/loss.png"
    assert f'<img src="{href}"' in html
    exposed = html[html.index('id="exposed"') : html.index('id="graph"')]
    assert "Model metrics" in exposed
    assert 'href="../.localci/pipelines/7/artifacts/train/data/metrics.json"' in exposed
    assert (out.parent / href).is_file()


def test_child_pipelines_nested_in_a_trigger_job_are_drawn(tmp_path: Path) -> None:
    child = {"id": "7/1", "status": "success", "jobs": [job("child-job", "test")]}
    record_dir = write_record(
        tmp_path, [job("bridge", "deploy", trigger=True, children=[child])], stages=["deploy"]
    )
    html = write_pipeline_page(record_dir).read_text()
    assert "Downstream of <code>bridge</code>" in html
    assert 'data-name="child-job"' in html
    assert html.count('class="job-detail') == 2


# ---- CLI --------------------------------------------------------------------------------------


def test_report_command_writes_the_page_history_and_refuses_unknown_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "unit:\n  script: [echo hi]\n"})
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 0, result.output
    page = repo / ".localci" / "pipelines" / "1" / "pipeline.html"
    assert result.stdout.rstrip().splitlines()[-1] == f"pipeline page: {page}"
    assert page.is_file()
    out = tmp_path / "copy.html"
    assert run_cli(repo, "report", "-o", str(out)).stdout.strip() == str(out)
    assert 'data-name="unit"' in out.read_text()
    history = run_cli(repo, "report", "--history")
    assert history.exit_code == 0
    assert 'href="1/pipeline.html"' in Path(history.stdout.strip()).read_text()
    missing = run_cli(repo, "report", "--pipeline", "9")
    assert missing.exit_code == 2
    assert "no pipeline #9" in missing.stderr


def test_report_without_runs_is_a_usage_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "unit:\n  script: [echo hi]\n"})
    for args in (["report"], ["report", "--history"]):
        result = run_cli(repo, *args)
        assert result.exit_code == 2 and "run `localci run` first" in result.stderr


def test_masked_values_stay_masked_on_the_page(tmp_path: Path) -> None:
    secret = "s3cr3t-Value-42"
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": (
                "show:\n"
                "  script:\n"
                '    - echo "token=$TOKEN"\n'
                "    - printf '\\033[31m%s\\033[0m\\n' \"$TOKEN\"\n"
            ),
            ".localci/variables.yml": f"TOKEN:\n  value: {secret}\n  masked: true\n",
        },
    )
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 0, result.output
    html = (repo / ".localci" / "pipelines" / "1" / "pipeline.html").read_text()
    assert secret not in html
    assert "token=[MASKED]" in html
    assert '<span class="f1">[MASKED]</span>' in html


def test_report_open_hands_the_page_to_the_web_browser(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "unit:\n  script: [echo hi]\n"})
    assert run_cli(repo, "run", "--no-tty").exit_code == 0
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    result = run_localci(repo, "report", "--open", env={"BROWSER": f"{browser} %s"})
    assert result.exit_code == 0, result.output
    page = repo / ".localci" / "pipelines" / "1" / "pipeline.html"
    assert opened.read_text() == page.as_uri()


def test_logs_of_a_moved_project_are_found_and_missing_ones_said(tmp_path: Path) -> None:
    record_dir = write_record(
        tmp_path,
        [
            job("moved", "test", log="/elsewhere/.localci/pipelines/7/jobs/moved.log"),
            job("gone", "test", log="/elsewhere/.localci/pipelines/7/jobs/gone.log"),
        ],
    )
    (record_dir / "jobs" / "moved.log").write_text("found me\n")
    html = write_pipeline_page(record_dir).read_text()
    assert ">found me</div>" in html
    assert "Its log is no longer in the records." in html


def test_the_page_needs_no_network(tmp_path: Path) -> None:
    entry = job("unit", "test", log_text="see https://example.com/x\n", tests={"failed": 1})
    record_dir = write_record(tmp_path, [entry], stages=["test"])
    store_artifacts(tmp_path, "unit", {"plot.svg": "<svg/>"}, junit="report.xml")
    html = write_pipeline_page(record_dir).read_text()
    loaded = re.findall(r'(?:src|href)="([^"#]*)"', html)
    assert loaded, "the page links its artifacts"
    assert all(not re.match(r"[a-z]+:", link) or link == "data:," for link in loaded), loaded
    assert "@import" not in html and "url(" not in html
