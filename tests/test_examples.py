"""End-to-end runs of the bundled examples (examples/*) through the real `localci` CLI.

Each example is copied into a fresh git repository (committed on main, origin/main set, then a
feature branch checked out) and run the way the example's README tells a user to.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Result, git, make_repo, run_cli, run_localci

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FEATURE = "feature/try-localci"
# What a developer's own runs of an example may leave in examples/ (never part of it).
_LEFTOVERS = {".venv", ".localci", "__pycache__", ".pytest_cache", "models", ".coverage"}


def example_repo(name: str, dest: Path) -> Path:
    """examples/<name> committed on main (with origin/main) and checked out on FEATURE."""
    shutil.copytree(
        EXAMPLES / name, dest, ignore=lambda _d, names: {n for n in names if n in _LEFTOVERS}
    )
    make_repo(dest, {})
    git(dest, "checkout", "-q", "-b", FEATURE)
    return dest


def run_report(repo: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    """`localci run ARGS --json-report` in a subprocess: the result and the report's jobs."""
    report = repo.parent / f"report-{len(list(repo.parent.glob('report-*')))}.json"
    result = run_localci(repo, "run", "--no-tty", "--json-report", str(report), *args)
    assert report.exists(), result.output
    return result, json.loads(report.read_text())


def jobs_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["name"]: job for job in report["jobs"]}


def log_of(repo: Path, job: str) -> str:
    result = run_cli(repo, "logs", job)
    assert result.exit_code == 0, result.output
    return result.stdout


def listed(repo: Path, *args: str) -> dict[str, str]:
    """Job name -> `when` ("never" when not in the pipeline) from `localci list --json`."""
    result = run_cli(repo, "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return {job["name"]: job["when"] for job in json.loads(result.stdout)}


# --------------------------------------------------------------------------- data-science


def test_data_science_feature_branch_main_branch_and_one_stage(tmp_path: Path) -> None:
    repo = example_repo("data-science", tmp_path / "iris")
    deploy_dir = tmp_path / "deployed"
    deploy = ("--var", f"DEPLOY_DIR={deploy_dir}")

    # A feature branch: everything but the main-only deploy job; the venv is installed once.
    result, report = run_report(repo, *deploy)
    assert result.exit_code == 0, result.output
    jobs = jobs_by_name(report)
    assert list(jobs) == ["install", "unit-tests", "flake8", "train-model"]
    assert all(job["status"] == "success" for job in jobs.values()), report
    tests = jobs["unit-tests"]["tests"]
    assert tests["failed"] == 0
    assert tests["passed"] >= 10
    assert 50 <= jobs["unit-tests"]["coverage"] <= 100
    assert "test accuracy: 0.9" in log_of(repo, "train-model")
    assert not deploy_dir.exists()
    assert not (repo / ".venv").exists(), "jobs must not write into the user's tree"

    # As if pushed to main: deploy-model runs too and gets the model as an artifact.
    result, report = run_report(repo, "--branch", "main", *deploy)
    assert result.exit_code == 0, result.output
    jobs = jobs_by_name(report)
    assert list(jobs)[-1] == "deploy-model"
    assert jobs["deploy-model"]["status"] == "success", result.output
    assert json.loads((deploy_dir / "model.json").read_text())["classes"] == [
        "setosa",
        "versicolor",
        "virginica",
    ]
    assert (deploy_dir / "predict.py").is_file()
    assert "setosa (p=" in log_of(repo, "deploy-model")

    # One stage: only the tests, with the cached venv.
    result, report = run_report(repo, "--stage", "test")
    assert result.exit_code == 0, result.output
    assert [job["name"] for job in report["jobs"]] == ["unit-tests"]
    assert report["jobs"][0]["tests"]["failed"] == 0


# --------------------------------------------------------------------------- dag-matrix


def test_dag_matrix_lists_rules_per_ref(tmp_path: Path) -> None:
    repo = example_repo("dag-matrix", tmp_path / "dag")
    instances = {"test: [3.10]", "test: [3.11]", "test: [3.12]"}

    feature = listed(repo)
    assert instances <= {name for name, when in feature.items() if when != "never"}
    assert feature["docs"] == feature["release"] == "never"
    main = listed(repo, "--branch", "main")
    assert main["docs"] == "on_success"
    assert main["release"] == "never"
    tag = listed(repo, "--tag", "v1.4.0")
    assert tag["release"] == "on_success"
    assert tag["docs"] == "never"


def test_dag_matrix_runs_the_dag_with_artifacts(tmp_path: Path) -> None:
    repo = example_repo("dag-matrix", tmp_path / "dag")

    result, report = run_report(repo)
    assert result.exit_code == 0, result.output
    jobs = jobs_by_name(report)
    assert set(jobs) == {"build", "lint", "test: [3.10]", "test: [3.11]", "test: [3.12]", "summary"}
    assert all(job["status"] == "success" for job in jobs.values()), result.output
    for version in ("3.10", "3.11", "3.12"):
        log = log_of(repo, f"test: [{version}]")
        assert f"checked build 1.4.0 on Python {version}" in log  # build's dist/ artifact
        if "instead of" in log:
            assert f"instead of {version}" in result.output
    assert f"from {FEATURE}" in log_of(repo, "summary")

    result, report = run_report(repo, "--tag", "v1.4.0")
    assert result.exit_code == 0, result.output
    assert jobs_by_name(report)["release"]["status"] == "success"
    assert "releasing v1.4.0 (version 1.4.0)" in log_of(repo, "release")


# --------------------------------------------------------------------------- reports


def test_reports_junit_coverage_and_dotenv(tmp_path: Path) -> None:
    repo = example_repo("reports", tmp_path / "reports")

    result, report = run_report(repo)
    assert result.exit_code == 0, result.output
    jobs = jobs_by_name(report)
    unit = jobs["unit-tests"]
    assert unit["status"] == "success"
    assert unit["tests"] == {
        "passed": 4,
        "failed": 0,
        "skipped": 2,
        "errors": 0,
        "failed_names": [],
    }
    assert 0 < unit["coverage"] < 100
    integration = jobs["integration-tests"]
    assert (integration["status"], integration["allow_failure"]) == ("failed", True)
    assert integration["tests"]["failed"] == 1
    assert integration["tests"]["failed_names"] == [
        "tests.test_flaky.IntegrationTest.test_remote_service"
    ]
    assert all(jobs[name]["status"] == "success" for name in ("version", "package", "publish"))
    assert f"publishing calc 1.2.3 built from {FEATURE.replace('/', '-')}" in log_of(
        repo, "publish"
    )
    assert "VERSION is 'unset' here" in log_of(repo, "audit")


def test_coverage_regex_with_a_non_capturing_group(tmp_path: Path) -> None:
    repo = example_repo("reports", tmp_path / "reports")
    config = repo / ".gitlab-ci.yml"
    config.write_text(
        config.read_text().replace(
            r"coverage: '/^Coverage: (\d+\.\d+)%/'", r"coverage: '/^Coverage: (\d+(?:\.\d+)?)%/'"
        )
    )
    result, report = run_report(repo, "unit-tests")
    assert result.exit_code == 0, result.output
    assert jobs_by_name(report)["unit-tests"].get("coverage") == pytest.approx(66.7)


# --------------------------------------------------------------------------- templates


def test_templates_merge_and_run(tmp_path: Path) -> None:
    repo = example_repo("templates", tmp_path / "templates")

    result = run_cli(repo, "config", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    unit = config["unit"]
    assert unit["variables"] == {
        "LOG_LEVEL": "debug",
        "PYTHONPATH": "app",
        "REPORT_DIR": "reports",
        "GREETING": "Hello",
    }
    assert unit["before_script"][0] == 'echo "setting up $APP_NAME"'
    assert unit["script"][-1] == 'echo "job $CI_JOB_NAME finished with LOG_LEVEL=$LOG_LEVEL"'
    assert config["package"]["before_script"] == config["default"]["before_script"]
    assert "before_script" not in config["bare"]

    result, report = run_report(repo)
    assert result.exit_code == 0, result.output
    assert {job["name"]: job["status"] for job in report["jobs"]} == dict.fromkeys(
        ("syntax", "bare", "unit", "smoke", "package"), "success"
    )
    assert "bare job sees APP_NAME=greeter LOG_LEVEL=unset" in log_of(repo, "bare")
    syntax = log_of(repo, "syntax")
    assert "setting up greeter" in syntax
    assert "default before_script" not in syntax
    assert "job syntax finished with LOG_LEVEL=debug" in syntax  # after_script from the template
    assert "Ran 1 test" in log_of(repo, "unit")
    assert "unit report received from the test stage" in log_of(repo, "package")


# --------------------------------------------------------------------------- child-pipelines


def test_child_pipelines_dynamic_depend_and_parent_artifacts(tmp_path: Path) -> None:
    repo = example_repo("child-pipelines", tmp_path / "child-pipelines")
    result, report = run_report(repo)
    assert result.exit_code == 0, result.output
    services = jobs_by_name(report)["service-tests"]["downstream"]
    children = {job["name"]: job["status"] for job in services["jobs"]}
    assert children == {"test-billing": "success", "test-search": "success", "smoke": "success"}
    assert "testing billing for demo (source parent_pipeline)" in log_of(repo, "test-billing")
    assert "services/billing/test_billing.py" in log_of(repo, "service-tests > smoke")
    docs = jobs_by_name(report)["docs"]["downstream"]
    assert docs["status"] == "success" and docs["strategy"] is None

    test = repo / "services" / "billing" / "test_billing.py"
    test.write_text(test.read_text().replace("3.3)", "3.4)"))
    result, report = run_report(repo)
    assert result.exit_code == 1, result.output
    assert jobs_by_name(report)["service-tests"]["status"] == "failed"
