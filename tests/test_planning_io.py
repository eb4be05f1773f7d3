"""Planning does no I/O of its own: git facts are gathered into the context before planning,
and the only git planning may still reach is `rules:changes`/`rules:exists` through its
`RepoFacts` (docs/ARCHITECTURE.md, "Where I/O happens")."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import git, make_repo
from planfactory import pipeline

from localci.plan import StaticFacts, build_plan, git_reads
from localci.plan.context import PipelineContext, detect_context

WITHOUT_REPOSITORY_RULES = """
variables:
  GREETING: "hello $CI_COMMIT_REF_NAME"
workflow:
  rules:
    - if: $CI_COMMIT_BRANCH
build:
  stage: build
  script: [make]
  parallel:
    matrix:
      - PY: ["3.11", "3.12"]
test:
  stage: test
  needs: [build]
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
      variables: {LEVEL: full}
  script: [pytest]
"""

WITH_REPOSITORY_RULES = """
lint:
  script: [ruff]
  rules:
    - changes: ["src/**/*.py"]
docs:
  script: [mkdocs]
  rules:
    - changes: ["src/**/*.py"]
    - exists: [mkdocs.yml]
other:
  script: [true]
  rules:
    - changes: {paths: [README.md], compare_to: main}
"""


class ForbiddenIO(AssertionError):
    pass


@pytest.fixture
def project(tmp_path: Path) -> PipelineContext:
    repo = make_repo(tmp_path / "project", {"src/app.py": "print(1)\n", "README.md": "hi\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "src" / "app.py").write_text("print(2)\n")
    return detect_context(repo, changes_since="main")


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """From here on, starting a process or opening a file fails the test."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenIO(f"I/O during planning: {args[:2]!r}")

    for target, name in [
        (subprocess, "Popen"),
        (builtins, "open"),
        (io, "open"),
        (os, "open"),
        (os, "scandir"),
        (os, "listdir"),
    ]:
        monkeypatch.setattr(target, name, forbidden)
    yield


def test_planning_with_given_facts_starts_no_process_and_opens_no_file(
    project: PipelineContext, no_io: None
) -> None:
    facts = StaticFacts(
        changed=frozenset({"src/app.py"}),
        file_list=("src/app.py", "README.md"),
        compared={"main": frozenset({"src/app.py"})},
    )
    plan = build_plan(pipeline(WITH_REPOSITORY_RULES), project, facts=facts)
    assert sorted(job.name for job in plan.included) == ["docs", "lint"]


def test_a_pipeline_without_changes_or_exists_plans_without_git(
    project: PipelineContext, no_io: None
) -> None:
    plan = build_plan(pipeline(WITHOUT_REPOSITORY_RULES), project)
    assert sorted(job.name for job in plan.included) == ["build: [3.11]", "build: [3.12]"]
    assert plan.included[0].predefined["CI_COMMIT_REF_NAME"] == "feature"


def test_the_guard_does_catch_git_read_while_planning(
    project: PipelineContext, no_io: None
) -> None:
    with pytest.raises(ForbiddenIO):
        build_plan(pipeline(WITH_REPOSITORY_RULES), project)


def test_changes_and_exists_read_git_lazily_once_per_fact(
    project: PipelineContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []
    real = git_reads.run

    def counting(
        cwd: Path, *args: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        calls.append(args)
        return real(cwd, *args, stdin=stdin)

    monkeypatch.setattr(git_reads, "run", counting)
    plan = build_plan(pipeline(WITH_REPOSITORY_RULES), project)
    assert sorted(job.name for job in plan.included) == ["docs", "lint"]
    commands = sorted(" ".join(args[:2]) for args in calls)
    # changes without compare_to: one diff + untracked files, shared by lint and docs; with
    # compare_to: resolving `main` and another diff + untracked; exists is never reached.
    assert commands.count("diff --name-only") == 2
    assert "cat-file --batch" in commands
    assert not any("--cached" in args for args in calls)
