"""localci's own .gitlab-ci.yml (lint, types, tests) is one localci lints and plans, and its
.pre-commit-config.yaml runs the same checks as .ci/run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_localci_lints_its_own_pipeline() -> None:
    result = run_cli(ROOT, "lint", "--strict")
    assert result.exit_code == 0, result.output


def test_localci_lists_its_own_pipeline_in_stages() -> None:
    result = run_cli(ROOT, "list", "--json", "--branch", "main")
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.stdout)
    assert [(job["name"], job["stage"]) for job in jobs] == [
        ("ruff", "lint"),
        ("mypy", "types"),
        ("pytest", "tests"),
    ]
    dry = run_cli(ROOT, "run", "--stage", "lint", "--dry-run", "--no-tty", "--branch", "main")
    assert dry.exit_code == 0, dry.output
    assert "ruff" in dry.output
    assert "pytest" not in dry.output


def test_ci_and_pre_commit_run_the_same_checks() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    entries = [hook["entry"].split(" --force-exclude")[0] for hook in hooks]
    assert entries == ["ruff check", "ruff format", "mypy"]
    for line in ("ruff check .", "ruff format --check .", "mypy"):
        assert line in ci.split("# ---- README's test command")[0]
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    scripts = [line for job in ("ruff", "mypy") for line in pipeline[job]["script"]]
    assert scripts == ["ruff check .", "ruff format --check .", "mypy"]
