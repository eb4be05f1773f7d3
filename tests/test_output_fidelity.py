"""Issue 14, items 9-11: what localci shows off a terminal, image names with variables
expanded, and services that cannot be started (no container engine)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from localci.config.services import derived_aliases, host_names
from localci.report.summary import print_failed_tails
from localci.results import JobResult, RunResult, Status
from tests.helpers import make_repo, run_cli

LONG = "test:python-integration-suite"
PIPELINE = f"""
variables:
  REGISTRY: registry.example.com
  TOOL_VERSION: "2.1"
  PG_VERSION: "15"
  DATABASE_URL: postgres://app:secret@postgres:5432/app
{LONG}:
  image: $REGISTRY/tool:${{TOOL_VERSION}}
  parallel:
    matrix:
      - SUITE: [3.11-with-extras, 3.12-with-extras]
  services:
    - postgres:$PG_VERSION
    - tutum/wordpress
    - {{name: "redis:7", alias: "cache, kv"}}
  script:
    - printf '\\033[%sm%s\\033[0m\\n' 93 'colored warning'
    - exit 1
"""
JOBS = (f"{LONG}: [3.11-with-extras]", f"{LONG}: [3.12-with-extras]")
SERVICES = (
    "postgres:15 (host postgres); tutum/wordpress (host tutum__wordpress or tutum-wordpress);"
    " redis:7 (host redis or cache or kv)"
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "80")
    return make_repo(tmp_path / "p", {".gitlab-ci.yml": PIPELINE})


@pytest.mark.parametrize(
    ("service", "names"),
    [
        (("postgres:15", None), ("postgres",)),
        (("tutum/wordpress:latest", None), ("tutum__wordpress", "tutum-wordpress")),
        (
            ("registry.example.com:5000/grp/db:1@sha256:ab", None),
            ("registry.example.com__grp__db", "registry.example.com-grp-db"),
        ),
        (("redis:7", "cache, kv"), ("redis", "cache", "kv")),
        (("mysql", "db mysql"), ("mysql", "db")),
    ],
)
def test_service_host_names_follow_gitlab(
    service: tuple[str, str | None], names: tuple[str, ...]
) -> None:
    assert host_names(*service) == names


def test_derived_aliases_of_an_empty_name() -> None:
    assert derived_aliases("") == ()


def test_list_off_a_terminal_never_truncates_and_names_the_services(repo: Path) -> None:
    result = run_cli(repo, "list")
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    for job in JOBS:
        assert job in result.stdout
    assert f"services not started: {SERVICES}." in result.stdout


def test_dry_run_names_each_service_alias_and_what_to_do(repo: Path) -> None:
    # --executor venv: what a machine without a container engine does
    result = run_cli(repo, "run", "--dry-run", "--no-tty", "--executor", "venv")
    assert result.exit_code == 0, result.output
    assert f"{JOBS[0]}, {JOBS[1]}: services not started: {SERVICES}." in result.stdout
    assert "install a container engine (podman or docker)" in result.stdout
    assert "--var DATABASE_URL=postgres://app:secret@localhost:5432/app" in result.stdout


def test_run_off_a_terminal(repo: Path) -> None:
    report = repo.parent / "report.json"
    result = run_cli(
        repo, "run", "--no-tty", "--executor", "venv", "--allow-host", "--json-report", str(report)
    )
    out = result.stdout
    assert result.exit_code == 1, result.output
    # item 10: distinct, uncut [job] prefixes; escape sequences rendered per NO_COLOR
    for job in JOBS:
        assert f"[{job}] $ exit 1" in out
    assert "…" not in out and "[93m" not in out and "\x1b" not in out
    assert "\ncolored warning\n" in out  # the failed-log tail, its colour dropped
    # item 9: the image as the runner would pull it
    assert "image 'registry.example.com/tool:2.1' is not emulated" in out
    # item 11: the job's log, its failure tail, the summary row
    log = next((repo / ".localci" / "pipelines" / "1" / "jobs").glob("*3.11*.log"))
    assert f"WARNING: services not started: {SERVICES}." in log.read_text()
    tail = out.split(f"── {JOBS[0]} failed", 1)[1]
    assert tail.splitlines()[1] == f"ran without its services (no container engine): {SERVICES}"
    row = next(line for line in out.splitlines() if line.startswith(f"│{JOBS[1]} "))
    assert row.rstrip("│ ").endswith(SERVICES)
    assert "2 job(s) ran without their services" in out
    assert "services: not emulated locally" not in out  # the old one-line run header
    jobs = json.loads(report.read_text())["jobs"]
    assert [job["services_not_started"] for job in jobs] == [SERVICES.split("; ")] * 2


def test_failed_tail_renders_the_jobs_colours_or_drops_them(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("$ pytest\n\x1b[93mcolored warning\x1b[0m\n", encoding="utf-8")
    job = JobResult("job", "test", Status.FAILED, log=str(log), reason="exit 1", attempts=1)
    result = RunResult(1, "failed", (job,), 1.0)
    for color, expected in ((True, "\x1b[93mcolored warning"), (False, "\ncolored warning\n")):
        out = io.StringIO()
        console = Console(file=out, force_terminal=color, no_color=not color, width=40)
        print_failed_tails(console, result)
        assert expected in out.getvalue()
        assert "[93m" not in out.getvalue().replace("\x1b[93m", "")
