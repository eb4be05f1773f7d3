"""Issue 20 hardening: each test is built from the issue's reproduction."""

from __future__ import annotations

from pathlib import Path

import pytest

from localci.execute.git_isolation import (
    KNOWN_LOCAL_ENV_VARS,
    local_env_vars,
    without_user_repository,
)
from tests.helpers import git, make_repo, run_cli, run_localci

MISTAGGED = [
    ("timeout: !!int soon", "'soon' cannot be read as !!int", 3),
    ("timeout: !!float x", "'x' cannot be read as !!float", 3),
    ("timeout: !!bool x", "'x' cannot be read as !!bool", 3),
    ("timeout: !!seq b", "'b' cannot be read as !!seq", 3),
    ("timeout: !!map x", "'x' cannot be read as !!map", 3),
    ("timeout: !!map [1]", "a list cannot be read as !!map", 3),
    ("timeout: !!seq {a: 1}", "a mapping cannot be read as !!seq", 3),
]


@pytest.mark.parametrize("command", ["lint", "list", "config"])
@pytest.mark.parametrize(("line", "message", "line_no"), MISTAGGED)
def test_mistagged_yaml_is_a_located_config_error(
    tmp_path: Path, command: str, line: str, message: str, line_no: int
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": f"job:\n  script: [echo hi]\n  {line}\n"})
    result = run_cli(repo, command)
    assert result.exit_code == 3, result.output
    assert f".gitlab-ci.yml:{line_no}" in result.output
    assert "invalid YAML" in result.output and message in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize("command", ["lint", "list", "config"])
def test_map_tag_over_a_list_document_is_a_located_config_error(
    tmp_path: Path, command: str
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "--- !!map\n- a\n- b\n"})
    result = run_cli(repo, command)
    assert result.exit_code == 3, result.output
    assert ".gitlab-ci.yml:1" in result.output
    assert "invalid YAML: a list cannot be read as !!map" in result.output


# ---- item 2: git variables of the caller's shell --------------------------------------------


def test_without_user_repository_drops_every_local_git_variable() -> None:
    inherited = {
        "GIT_DIR": "/u/.git",
        "GIT_INDEX_FILE": "/u/.git/index",
        "GIT_WORK_TREE": "/u",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.hooksPath",
        "GIT_CONFIG_VALUE_0": "/u/hooks",
        "GIT_AUTHOR_NAME": "me",
        "GIT_CEILING_DIRECTORIES": "/home",
        "PATH": "/bin",
    }
    env = without_user_repository(inherited, Path("/b/0"), local_env_vars())
    assert env == {
        "GIT_AUTHOR_NAME": "me",
        "GIT_CEILING_DIRECTORIES": "/b/0:/home",
        "PATH": "/bin",
    }
    assert local_env_vars() >= set(KNOWN_LOCAL_ENV_VARS)


def test_git_variables_of_a_hook_never_reach_the_users_repository(tmp_path: Path) -> None:
    user = make_repo(
        tmp_path / "user",
        {
            "README": "hello\n",
            ".gitlab-ci.yml": """\
                job:
                  script:
                    - echo job-file > job-file
                    - git add -A
                    - git -c user.name=j -c user.email=j@x commit -qm job-commit
                    - git checkout -q -b job-branch
                    - rm -rf .git ../../.git ../.git
                    - if git rev-parse --git-dir; then echo "FOUND-$((40 + 2))"; fi
            """,
        },
    )
    (user / "staged.txt").write_text("the user's staged work\n")
    git(user, "add", "staged.txt")
    before = (git(user, "rev-parse", "HEAD"), git(user, "status", "--porcelain"))
    hook_env = {
        "GIT_DIR": str(user / ".git"),
        "GIT_WORK_TREE": str(user),
        "GIT_INDEX_FILE": str(user / ".git" / "index"),
    }
    result = run_localci(user, "run", env=hook_env)
    assert result.exit_code == 0, result.output
    assert "FOUND-42" not in result.output
    assert (git(user, "rev-parse", "HEAD"), git(user, "status", "--porcelain")) == before
    assert git(user, "branch", "--list", "job-branch") == ""
    assert git(user, "symbolic-ref", "HEAD") == "refs/heads/main"
