"""Isolation and secrets: a pipeline cannot change the user's working tree or `.git`, masked
variables never reach logs, records or reports, and nothing from the configuration is executed
outside a job's script.

Masking matches GitLab's runner: every occurrence of a masked value in the job's output is
replaced by `[MASKED]`, wherever it stands (twice on a line, in before/after_script, on stderr,
inside a longer value). Output that never holds the whole value is not masked: a job printing
the value in pieces (split across lines) or transformed shows those pieces. GitLab documents
that masking only hides the exact value as it appears in the log, not parts of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import git, make_repo, run_cli, run_localci, write_files

SECRET = "s3cr3t-Val_ue-9f2c7a"
HALF = len(SECRET) // 2


def tree_hash(root: Path) -> str:
    """Every file under root (path, mode, bytes, symlink target), .git included, .localci not."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".localci":
            continue
        digest.update(str(rel).encode() + b"\0")
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(oct(path.stat().st_mode).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# ---- isolation ---------------------------------------------------------------------------------

DESTRUCTIVE = """\
stages: [wreck, check]
.git-identity: &identity
  - git config user.email evil@example.invalid
  - git config user.name evil
rewrite:
  stage: wreck
  script:
    - *identity
    - echo changed > README.md && echo new > new-file.txt
    - git add -A && git commit -qm "evil commit"
    - git tag -f evil-tag && git branch -f main HEAD || true
    - git push origin HEAD:refs/heads/evil || true
    - git remote add origin /nonexistent/remote.git || git remote set-url origin /nonexistent/r.git
    - git push origin HEAD:main || true
    - git push --force file:///nonexistent/elsewhere.git HEAD || true
    - git gc --prune=now --aggressive -q
    - git reflog expire --expire=now --all && git fsck --no-progress || true
    - git config core.hooksPath /tmp && git config --unset core.hooksPath
    - git stash list; git checkout -q -b other && git checkout -q -
wipe:
  stage: wreck
  script:
    - chmod -R u+w . 2>/dev/null || true
    - find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    - test -z "$(ls -A)"
check:
  stage: check
  script:
    - test "$(cat README.md)" = "original"
"""


@pytest.mark.slow
def test_jobs_that_wreck_their_workspace_leave_the_user_tree_and_git_identical(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": DESTRUCTIVE, "README.md": "original\n"})
    write_files(repo, {"untracked.txt": "not committed\n", "src/work.py": "print('wip')\n"})
    git(repo, "add", "src/work.py")  # staged but not committed: the index holds it
    before = tree_hash(repo)
    refs_before = git(repo, "show-ref")
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 0, result.output
    assert tree_hash(repo) == before
    assert git(repo, "show-ref") == refs_before
    again = run_cli(repo, "run", "--no-tty")
    assert again.exit_code == 0, again.output
    assert tree_hash(repo) == before


# ---- masked variables --------------------------------------------------------------------------

MASKING = """\
stages: [one, two]
variables:
  DERIVED: "prefix-${SECRET}-suffix"
tracer:
  stage: one
  variables:
    CI_DEBUG_TRACE: "true"
  script:
    - echo "traced $SECRET"
printer:
  stage: one
  before_script:
    - echo "before $SECRET"
  script:
    - echo "$SECRET"
    - echo "$SECRET$SECRET"
    - echo "a $SECRET b $SECRET c"
    - echo "$SECRET" >&2
    - echo "$DERIVED"
    - printf '%s' "${SECRET:0:5}"; sleep 0.3; printf '%s\\n' "${SECRET:5}"
    - env | grep -c SECRET
    - echo "SECRET=$SECRET" > build.env
  after_script:
    - echo "after $SECRET"
  artifacts:
    reports: {dotenv: build.env}
  cache: {key: "key-$SECRET", paths: [build.env]}
failing:
  stage: one
  script:
    - echo "dying with $SECRET"
    - exit 3
  after_script:
    - echo "after failure $SECRET"
  allow_failure: true
split:
  stage: one
  script:
    - echo "${SECRET:0:HALF}"
    - echo "${SECRET:HALF}"
receiver:
  stage: two
  script:
    - echo "from dotenv $SECRET"
""".replace("HALF", str(HALF))


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("masked")
    repo = make_repo(root / "p", {".gitlab-ci.yml": MASKING})
    write_files(
        repo,
        {".localci/variables.yml": f"SECRET:\n  value: {SECRET}\n  masked: true\n"},
    )
    report = root / "report.json"
    result = run_localci(repo, "run", "--no-tty", "-v", "--json-report", str(report))
    assert result.exit_code == 0, result.output
    return repo, result.output, report.read_text()


@pytest.mark.slow
def test_masked_values_never_reach_the_run_output(masked_run: tuple[Path, str, str]) -> None:
    _, output, _ = masked_run
    assert SECRET not in output
    assert "[MASKED]" in output
    assert "[MASKED][MASKED]" in output
    assert "a [MASKED] b [MASKED] c" in output
    assert "prefix-[MASKED]-suffix" in output
    assert "before [MASKED]" in output
    assert "after [MASKED]" in output
    assert "after failure [MASKED]" in output


@pytest.mark.slow
def test_masked_values_never_reach_records_logs_or_reports(
    masked_run: tuple[Path, str, str],
) -> None:
    repo, _, report = masked_run
    assert SECRET not in report
    assert json.loads(report)["jobs"]
    # the dotenv report's own values are stored with the artifacts, as GitLab stores them
    for path in (repo / ".localci" / "pipelines").rglob("*"):
        if path.is_file() and "artifacts" not in path.relative_to(repo).parts:
            assert SECRET.encode() not in path.read_bytes(), path
    listing = run_cli(repo, "logs")
    assert listing.exit_code == 0
    assert SECRET not in listing.output
    for job in ("printer", "failing", "receiver", "tracer"):
        log = run_cli(repo, "logs", job)
        assert log.exit_code == 0, log.output
        assert SECRET not in log.output
        assert "[MASKED]" in log.output
    for command in (("list",), ("explain", "printer"), ("config",)):
        result = run_cli(repo, *command)
        assert SECRET not in result.output, command


@pytest.mark.slow
def test_a_value_printed_in_pieces_is_not_masked_as_in_gitlab(
    masked_run: tuple[Path, str, str],
) -> None:
    repo, _, _ = masked_run
    log = run_cli(repo, "logs", "split").output
    lines = log.splitlines()
    assert SECRET[:HALF] in lines
    assert SECRET[HALF:] in lines
    assert SECRET not in log


@pytest.mark.slow
def test_a_value_written_in_two_pieces_on_one_line_is_masked(
    masked_run: tuple[Path, str, str],
) -> None:
    repo, _, _ = masked_run
    log = run_cli(repo, "logs", "printer").output
    assert log.count("[MASKED]") >= 8
    assert SECRET[:5] not in log.replace("[MASKED]", "")


# ---- nothing from the configuration is executed ------------------------------------------------

CANARY = "localci-canary"


def _evil_configs(canary: Path) -> dict[str, str]:
    cmd = f"touch {canary}"
    py = f"__import__('os').system('{cmd}')"
    return {
        "python-apply": f"job:\n  script: !!python/object/apply:os.system ['{cmd}']\n",
        "python-new": f"job:\n  script: !!python/object/new:os.system ['{cmd}']\n",
        "python-name": "job: !!python/name:os.system\n",
        "python-module": "job: !!python/module:os\n",
        "eval-like values": (
            f'job:\n  script: echo\n  timeout: "{py}"\n  retry: "{py}"\n  parallel: "{py}"\n'
            f'  start_in: "{py}"\n  when: "{py}"\n  variables: {{A: "{py}"}}\n'
            f"  rules:\n    - if: '$A == \"x\" || {py}'\n"
        ),
        "shell-like values": (
            f'"$({cmd})":\n  script: echo\n  stage: "`{cmd}`"\n'
            f'  cache: {{key: "$({cmd})", paths: ["$({cmd})"]}}\n'
            f'  environment: {{name: "$({cmd})"}}\nstages: ["`{cmd}`"]\n'
            f'workflow: {{name: "$({cmd})"}}\n'
        ),
        "include": f"include: '$({cmd}).yml'\njob: {{script: echo}}\n",
    }


@pytest.mark.parametrize(
    "name",
    [
        "python-apply",
        "python-new",
        "python-name",
        "python-module",
        "eval-like values",
        "shell-like values",
        "include",
    ],
)
def test_configuration_values_are_never_executed(tmp_path: Path, name: str) -> None:
    canary = tmp_path / CANARY
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "job:\n  script: echo\n"})
    (repo / ".gitlab-ci.yml").write_text(_evil_configs(canary)[name])
    for command in (("lint",), ("config",), ("list",), ("explain", "job"), ("run", "--dry-run")):
        result = run_cli(repo, *command)
        assert result.exit_code in (0, 2, 3), (command, result.output)
        assert "internal error" not in result.output
    assert not canary.exists()


def test_a_variables_file_is_never_executed(tmp_path: Path) -> None:
    canary = tmp_path / CANARY
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "job:\n  script: echo\n"})
    write_files(
        repo,
        {
            ".localci/variables.yml": f"A: !!python/object/apply:os.system ['touch {canary}']\n",
            "vars.env": f"A=$(touch {canary})\nB=`touch {canary}`\n",
        },
    )
    result = run_cli(repo, "list")
    assert result.exit_code == 3, result.output
    assert ".localci/variables.yml" in result.stderr
    (repo / ".localci" / "variables.yml").unlink()
    result = run_cli(repo, "list", "--variables-file", str(repo / "vars.env"))
    assert result.exit_code == 0, result.output
    assert not canary.exists()


def test_git_in_the_repository_is_never_given_configuration_text(tmp_path: Path) -> None:
    canary = tmp_path / CANARY
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "job:\n  script: echo\n"})
    (repo / ".gitlab-ci.yml").write_text(
        "job:\n  script: echo\n  rules:\n"
        f"    - changes: {{paths: [a], compare_to: '--output={canary}'}}\n"
        f"    - exists: ['$(touch {canary})']\n"
    )
    result = run_cli(repo, "list")
    assert result.exit_code in (0, 3), result.output
    assert "internal error" not in result.output
    assert not canary.exists()
    proc = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "M .gitlab-ci.yml"


# ---- cache and artifact paths that try to leave the workspace ---------------------------------

ESCAPES = {
    "dots": ("artifacts: {paths: [../OUTSIDE/secret.txt]}", "artifacts path '../OUTSIDE"),
    "absolute": ("artifacts: {paths: [OUTSIDE_ABS/secret.txt]}", "artifacts path '/"),
    "report": (
        "artifacts: {reports: {dotenv: ../OUTSIDE/secret.txt}}",
        "artifacts:reports:dotenv path",
    ),
    "symlink-file": ("artifacts: {paths: [leak.txt]}", "goes through symlink leak.txt"),
    "symlink-dir": ("artifacts: {paths: [leakdir/secret.txt]}", "goes through symlink leakdir"),
    "cache-dots": ("cache: {key: k1, paths: [../OUTSIDE/]}", "cache 'k1' path '../OUTSIDE/'"),
    "cache-symlink": ("cache: {key: k2, paths: [leakdir/]}", "cache 'k2' path 'leakdir/'"),
    "cache-key-slash": ("cache: {key: ../../evil, paths: [x]}", "cache key '../../evil'"),
    "cache-key-dots": ('cache: {key: "..", paths: [x]}', "cache key '..'"),
    "cache-key-variable": ("cache: {key: $EVIL, paths: [x]}", "cache key '../x'"),
    "cache-key-files": (
        "cache: {key: {files: [../OUTSIDE/secret.txt]}, paths: [x]}",
        "cache key file '../OUTSIDE/secret.txt'",
    ),
}


@pytest.mark.slow
def test_cache_and_artifact_paths_cannot_leave_the_workspace(tmp_path: Path) -> None:
    outside = tmp_path / "OUTSIDE"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE-CONTENT-7c1e\n")
    jobs = []
    for name, (raw, _) in ESCAPES.items():
        keyword = raw.replace("OUTSIDE_ABS", str(outside))
        jobs.append(
            f"{name}:\n  variables: {{EVIL: ../x}}\n  script:\n"
            f"    - ln -s {outside}/secret.txt leak.txt && ln -s {outside} leakdir\n"
            f"    - echo x > x\n  {keyword}\n"
        )
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "".join(jobs)})
    before = tree_hash(outside)
    result = run_cli(repo, "run", "--no-tty", "-j", "4")
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    for name, (_, message) in ESCAPES.items():
        log = run_cli(repo, "logs", name).output
        assert f"job {name!r}" in log, (name, log)
        assert message in log, (name, log)
    assert tree_hash(outside) == before
    for path in (repo / ".localci").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"OUTSIDE-CONTENT-7c1e" not in path.read_bytes(), path
