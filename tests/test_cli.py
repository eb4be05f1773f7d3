"""The CLI's read-only commands: lint, config, list, explain; exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import make_repo, run_cli

PIPELINE = """
stages: [build, test, deploy]
build:
  stage: build
  script: [echo build]
test:
  parallel:
    matrix:
      - PY: ["3.10", "3.11"]
  script: [echo test]
  needs: [build]
deploy:
  stage: deploy
  script: [echo deploy]
  only: [main]
"""


def repo(tmp_path: Path, text: str = PIPELINE, branch: str = "feature/x") -> Path:
    return make_repo(tmp_path / "p", {".gitlab-ci.yml": text}, branch=branch)


def test_lint_summary_and_exit_zero(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "lint")
    assert result.exit_code == 0, result.output
    assert "is valid: 3 jobs in 3 stages" in result.stdout


def test_lint_reports_every_error_located_and_exits_3(tmp_path: Path) -> None:
    text = "stages: [build]\na: {script: [x]}\nb: {stage: build}\n"
    result = run_cli(repo(tmp_path, text), "lint")
    assert result.exit_code == 3
    assert ".gitlab-ci.yml:2" in result.stderr and ".gitlab-ci.yml:3" in result.stderr
    assert "Traceback" not in result.output


def test_missing_file_and_bad_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(empty, "lint").exit_code == 3
    assert run_cli(tmp_path / "nope", "lint").exit_code == 2


def test_unknown_option_is_usage_error(tmp_path: Path) -> None:
    assert run_cli(repo(tmp_path), "list", "--bogus").exit_code == 2


def test_config_json_resolves_jobs(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "config", "--json")
    merged = json.loads(result.stdout)
    assert merged["stages"] == [".pre", "build", "test", "deploy", ".post"]
    assert merged["test"]["needs"] == ["build"]


def test_list_json_shape(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "list", "--json")
    jobs = {j["name"]: j for j in json.loads(result.stdout)}
    assert set(jobs) == {"build", "test: [3.10]", "test: [3.11]", "deploy"}
    assert jobs["deploy"]["when"] == "never"
    assert jobs["test: [3.10]"]["needs"] == [{"job": "build", "artifacts": True, "optional": False}]
    assert "needs" not in jobs["build"]
    assert jobs["build"]["allow_failure"] is False and jobs["build"]["description"] == ""


def test_list_table_shows_bracketed_names_and_reasons(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "list", "--all")
    assert "test: [3.10]" in result.stdout
    assert "[main]" in result.stdout


def test_list_branch_main_includes_deploy(tmp_path: Path) -> None:
    jobs = json.loads(run_cli(repo(tmp_path), "list", "--json", "--branch", "main").stdout)
    assert {j["name"]: j["when"] for j in jobs}["deploy"] == "on_success"


def test_explain_shows_the_deciding_clause(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "explain", "deploy")
    assert result.exit_code == 0
    assert "only" in result.stdout and "NOT included" in result.stdout


def test_explain_unknown_job_suggests(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "explain", "deplyo")
    assert result.exit_code == 2
    assert "deploy" in result.stderr


def test_bad_var_assignment_is_usage_error(tmp_path: Path) -> None:
    result = run_cli(repo(tmp_path), "list", "--var", "no-equals-sign")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_run_outside_git_explains_what_to_do(tmp_path: Path) -> None:
    (tmp_path / ".gitlab-ci.yml").write_text("job: {script: [echo hi]}\n")
    result = run_cli(tmp_path, "run", "--no-tty")
    assert result.exit_code == 3
    assert "git init" in result.stderr and "Traceback" not in result.output
    assert run_cli(tmp_path, "list", "--json").exit_code == 0


def test_lint_schema_checks_files_after_input_interpolation(tmp_path: Path) -> None:
    # Issue 14 item 8: GitLab validates after interpolating `$[[ inputs.x ]]`; so does the
    # schema check, for the root file and for included files with the inputs given to them.
    text = """
spec:
  inputs:
    retries: {type: number, default: 2}
    manual: {type: boolean, default: false}
---
include:
  - local: tpl.yml
    inputs: {when_to: manual}
job:
  script: [echo]
  retry: $[[ inputs.retries ]]
  allow_failure: $[[ inputs.manual ]]
"""
    tpl = """
spec:
  inputs:
    when_to: {default: bogus}
---
from-template:
  script: [echo]
  when: $[[ inputs.when_to ]]
"""
    root = make_repo(tmp_path / "p", {".gitlab-ci.yml": text, "tpl.yml": tpl})
    result = run_cli(root, "lint", "--strict")
    assert result.exit_code == 0, result.output
    assert "schema" not in result.stderr
    bad = text.replace("default: 2}", "default: 2}\n    pattern: {default: abc}")
    bad += "  coverage: $[[ inputs.pattern ]]\n"
    (root / ".gitlab-ci.yml").write_text(bad, encoding="utf-8")
    result = run_cli(root, "lint")
    assert result.exit_code == 0, result.output
    assert "warning: .gitlab-ci.yml:15: job.coverage: 'abc' does not match" in result.stderr
    assert result.stderr.count("GitLab CI schema") == 1
