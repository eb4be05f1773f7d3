"""The runner's Git settings (GIT_STRATEGY, GIT_DEPTH, submodules...) on real repositories."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import git, make_repo, run_cli, write_files


def report(repo: Path, *args: str) -> tuple[int, dict, str]:
    out = repo.parent / "report.json"
    out.unlink(missing_ok=True)
    result = run_cli(repo, "run", "--no-tty", "--json-report", str(out), *args)
    data = json.loads(out.read_text()) if out.exists() else {}
    return result.exit_code, data, result.output


def log_of(data: dict, name: str) -> str:
    entry = next(j for j in data["jobs"] if j["name"] == name)
    return Path(entry["log"]).read_text()


def commits(repo: Path, count: int) -> None:
    for number in range(count):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {number}")


def test_git_strategy_none_starts_without_the_source(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                stages: [build, test]
                build:
                  stage: build
                  script: [mkdir -p dist, echo wheel > dist/pkg.whl]
                  artifacts:
                    paths: [dist/]
                installed-only:
                  stage: test
                  variables:
                    GIT_STRATEGY: none
                  script:
                    - ls -A
                    - test ! -e .gitlab-ci.yml && test ! -e src && test ! -e .git
                    - cat dist/pkg.whl
                empty:
                  stage: test
                  variables:
                    GIT_STRATEGY: empty
                  script:
                    - test ! -e .gitlab-ci.yml
                with-source:
                  stage: test
                  script: [test -f src/mod.py]
            """,
            "src/mod.py": "X = 1\n",
        },
    )
    code, data, output = report(repo, "-j", "1")
    assert code == 0, output
    log = log_of(data, "installed-only")
    assert "Skipping Git repository setup (GIT_STRATEGY=none)" in log
    assert "wheel" in log


def test_git_depth_gives_a_shallow_history_like_gitlab(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                depth-3:
                  variables:
                    GIT_DEPTH: "3"
                  script:
                    - git rev-list --count HEAD
                    - git describe --tags || echo "describe failed"
                    - git status --porcelain | wc -l
                default-depth:
                  script: [git rev-list --count HEAD]
                full:
                  variables:
                    GIT_DEPTH: "0"
                  script: [git rev-list --count HEAD, git describe --tags]
            """,
        },
    )
    git(repo, "tag", "v1.0")
    commits(repo, 24)
    code, data, output = report(repo)
    assert code == 0, output
    assert "\n3\n" in log_of(data, "depth-3")
    assert "describe failed" in log_of(data, "depth-3")  # the tag is 24 commits back
    assert "\n0\n" in log_of(data, "depth-3")  # git status: a clean, consistent checkout
    assert "\n20\n" in log_of(data, "default-depth")  # a new GitLab project's default
    assert "\n25\n" in log_of(data, "full")
    assert "v1.0-24-g" in log_of(data, "full")

    code, data, output = report(repo, "--full-history", "default-depth")
    assert code == 0, output
    assert "\n25\n" in log_of(data, "default-depth")
    assert git(repo, "rev-list", "--count", "HEAD") == "25"  # the user's repository untouched
    assert not (repo / ".git" / "shallow").exists()


def _submodule_repos(tmp_path: Path) -> Path:
    deep = make_repo(tmp_path / "deep", {"deep.txt": "deepest\n"}, remote=None)
    lib = make_repo(tmp_path / "lib", {"lib.txt": "library\n"}, remote=None)
    git(lib, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(deep), "nested")
    git(lib, "commit", "-q", "-m", "nested submodule")
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                recursive:
                  variables:
                    GIT_SUBMODULE_STRATEGY: recursive
                  script:
                    - cat lib/lib.txt lib/nested/deep.txt
                    - git submodule status --recursive
                normal:
                  variables:
                    GIT_SUBMODULE_STRATEGY: normal
                  script:
                    - cat lib/lib.txt
                    - test -z "$(ls -A lib/nested)"
                no-strategy:
                  script: [test -z "$(ls -A lib)"]
                excluded:
                  variables:
                    GIT_SUBMODULE_STRATEGY: recursive
                    GIT_SUBMODULE_PATHS: ":(exclude)lib"
                  script: [test -z "$(ls -A lib)"]
            """,
        },
    )
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "update", "--init", "--recursive")
    git(repo, "commit", "-q", "-m", "submodule")
    return repo


def test_recursive_submodules_come_from_the_users_checkouts_offline(tmp_path: Path) -> None:
    repo = _submodule_repos(tmp_path)
    # The sources are gone: nothing can be fetched, only the user's checkouts are there.
    for name in ("deep", "lib"):
        (tmp_path / name).rename(tmp_path / f"{name}-moved")
    write_files(repo, {"lib/lib.txt": "library with an uncommitted edit\n"})
    code, data, output = report(repo)
    assert code == 0, output
    log = log_of(data, "recursive")
    assert "library with an uncommitted edit" in log
    assert "deepest" in log
    status_lines = [line for line in log.splitlines() if " lib" in line and "(" in line]
    assert status_lines and not any(line.startswith("-") for line in status_lines), log
    assert "lib/nested" in log


def test_git_checkout_false_and_ignored_settings_warn(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                no-checkout:
                  variables:
                    GIT_CHECKOUT: "false"
                    GIT_CLEAN_FLAGS: -ffd
                  script:
                    - test -d .git && test ! -e .gitlab-ci.yml && test ! -e README
                    - git rev-parse HEAD
            """,
            "README": "read me\n",
        },
    )
    code, data, output = report(repo)
    assert code == 0, output
    log = log_of(data, "no-checkout")
    assert "Skipping Git checkout (GIT_CHECKOUT=false)" in log
    assert git(repo, "rev-parse", "HEAD") in log
    assert "GIT_CLEAN_FLAGS='-ffd' is ignored" in output


def test_git_clean_flags_none_keeps_what_earlier_jobs_left(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                stages: [one, two, three]
                leave:
                  stage: one
                  script: [echo left > leftover.txt, echo changed > tracked.txt]
                keep:
                  stage: two
                  variables:
                    GIT_CLEAN_FLAGS: none
                  script:
                    - cat leftover.txt
                    - grep original tracked.txt
                clean:
                  stage: three
                  script: [test ! -e leftover.txt]
            """,
            "tracked.txt": "original\n",
        },
    )
    code, data, output = report(repo, "-j", "1")
    assert code == 0, output
    assert "left" in log_of(data, "keep")
    assert "ignored" not in output


def test_lfs_skip_smudge_leaves_pointers(tmp_path: Path) -> None:
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n",
            "model.bin": pointer,
            "plain.txt": "not lfs\n",
            ".gitlab-ci.yml": """
                pointers:
                  variables:
                    GIT_LFS_SKIP_SMUDGE: "1"
                  script: [cat model.bin plain.txt]
                contents:
                  script: [cat model.bin]
            """,
        },
    )
    # What a checkout with git-lfs installed holds: the real content, not the pointer.
    (repo / "model.bin").write_text("the real model weights\n")
    code, data, output = report(repo)
    assert code == 0, output
    assert "oid sha256:4d7a2146" in log_of(data, "pointers")
    assert "not lfs" in log_of(data, "pointers")
    assert "the real model weights" in log_of(data, "contents")
