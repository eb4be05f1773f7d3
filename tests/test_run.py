"""`localci run` on real pipelines in temporary git repositories (issue: executor)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localci.state import project_builds_root
from tests.helpers import git, make_repo, processes_with, run_cli, write_files

pytestmark = pytest.mark.slow


def tree_hash(root: Path) -> str:
    """Hash of every file (path, mode, bytes) under root, .git included, .localci excluded."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".localci":
            continue
        digest.update(str(rel).encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(oct(path.stat().st_mode).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def report(repo: Path, *args: str) -> tuple[int, dict, str]:
    out = repo.parent / "report.json"
    result = run_cli(repo, "run", "--no-tty", "--json-report", str(out), *args)
    data = json.loads(out.read_text()) if out.exists() else {}
    return result.exit_code, data, result.output


def statuses(data: dict) -> dict[str, str]:
    return {j["name"]: j["status"] for j in data["jobs"]}


def log_of(data: dict, job: str) -> str:
    entry = next(j for j in data["jobs"] if j["name"] == job)
    return Path(entry["log"]).read_text()


def test_destructive_jobs_leave_the_user_tree_byte_identical(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            wreck:
              script:
                - echo changed > README.md
                - git commit -qam "job commit" && git gc -q
                - rm -rf ./* .git
                - ls -la
        """,
            "README.md": "hello\n",
        },
    )
    write_files(repo, {"untracked.txt": "not yet added\n", "README.md": "edited, uncommitted\n"})
    before = tree_hash(repo)
    code, data, _ = report(repo)
    assert code == 0, data
    assert tree_hash(repo) == before
    assert (repo / ".localci" / ".gitignore").read_text().strip() == "*"


def test_jobs_see_uncommitted_and_untracked_but_not_ignored_files(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            look:
              script:
                - cat tracked.txt new.txt
                - test ! -e secret.log
                - git rev-parse HEAD
                - git status --porcelain
        """,
            ".gitignore": "*.log\n",
            "tracked.txt": "v1\n",
        },
    )
    write_files(repo, {"tracked.txt": "v2\n", "new.txt": "untracked\n", "secret.log": "x\n"})
    code, data, _ = report(repo)
    log = log_of(data, "look")
    assert code == 0, log
    assert "v2" in log and "untracked" in log
    assert git(repo, "rev-parse", "HEAD") in log


def test_each_job_gets_its_own_virtualenv(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            stages: [one, two]
            install:
              stage: one
              script:
                - python -c "import sys; print('prefix', sys.prefix)"
                - python -c "import site; open(site.getsitepackages()[0] + '/{MOD}.py', 'w')"
                - python -c "import localci_demo_pkg"
            check:
              stage: two
              script:
                - python -c "import sys; print('prefix', sys.prefix)"
                - "! python -c 'import localci_demo_pkg'"
        """.replace("{MOD}", "localci_demo_pkg"),
        },
    )
    code, data, _ = report(repo)
    assert code == 0, log_of(data, "install")
    assert "prefix " + str(project_builds_root(repo)) in log_of(data, "check")
    with pytest.raises(ImportError):
        __import__("localci_demo_pkg")


def _tiny_wheel(directory: Path) -> str:
    """A minimal pure-Python wheel pip installs offline: `import localci_tiny`."""
    import zipfile

    name = "localci_tiny-1.0-py3-none-any.whl"
    info = "localci_tiny-1.0.dist-info"
    files = {
        "localci_tiny.py": "VALUE = 42\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: localci-tiny\nVersion: 1.0\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(directory / name, "w") as wheel:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            wheel.writestr(path, text)
    return name


def test_a_pip_install_never_reaches_the_next_job_of_the_slot(tmp_path: Path) -> None:
    """Venvs are kept between jobs only when untouched; one `pip install` makes it new."""
    repo = make_repo(tmp_path / "p", {"README": "x"})
    wheel = _tiny_wheel(repo)
    write_files(
        repo,
        {
            ".gitlab-ci.yml": f"""
            stages: [one, two, three]
            plain:
              stage: one
              script: ["! python -c 'import localci_tiny'"]
            install:
              stage: two
              script:
                - pip install --no-index {wheel}
                - python -c "import localci_tiny; assert localci_tiny.VALUE == 42"
            after:
              stage: three
              script: ["! python -c 'import localci_tiny'"]
            """
        },
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "wheel")
    for _ in range(2):
        code, data, output = report(repo, "-j", "1")
        assert code == 0, output
        assert statuses(data) == {"plain": "success", "install": "success", "after": "success"}
    assert "(created)" in log_of(data, "after")
    assert "untouched since its creation, kept" in log_of(data, "install")


def test_shell_semantics_pipefail_and_after_script(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            pipes:
              before_script:
                - export FROM_BEFORE=yes
              script:
                - echo "before=$FROM_BEFORE"
                - false | true
                - echo never printed
              after_script:
                - echo "status=$CI_JOB_STATUS before=${FROM_BEFORE:-unset}"
                - exit 7
        """,
        },
    )
    code, data, _ = report(repo)
    log = log_of(data, "pipes")
    assert code == 1
    assert "$ false | true" in log and "never printed" not in log.replace("$ echo never", "")
    assert "before=yes" in log
    assert "status=failed before=unset" in log
    assert data["jobs"][0]["exit_code"] == 1


def test_statuses_allow_failure_exit_codes_and_when(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            stages: [a, b, c]
            allowed:
              stage: a
              script: [exit 3]
              allow_failure: {exit_codes: [3]}
            broken:
              stage: a
              script: [exit 4]
              allow_failure: {exit_codes: [3]}
            next:
              stage: b
              script: [echo next]
            cleanup:
              stage: c
              script: [echo cleanup]
              when: on_failure
            always:
              stage: c
              script: [echo always]
              when: always
            deploy:
              stage: c
              script: [echo deploy]
              when: manual
        """,
        },
    )
    code, data, _ = report(repo)
    assert code == 1
    assert statuses(data) == {
        "allowed": "failed",
        "broken": "failed",
        "next": "skipped",
        "cleanup": "success",
        "always": "success",
        "deploy": "skipped",
    }
    allowed = {j["name"]: j["allow_failure"] for j in data["jobs"]}
    assert allowed["allowed"] is True and allowed["broken"] is False


def test_retry_and_timeout(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            flaky:
              script:
                - n=$(cat /tmp/FLAKY_FILE 2>/dev/null || echo 0); echo $((n+1)) > /tmp/FLAKY_FILE
                - test "$(cat /tmp/FLAKY_FILE)" -ge 2
              retry: 2
            slow:
              script: [sleep 30]
              timeout: 2s
              after_script: [echo after-script-ran]
        """.replace("/tmp/FLAKY_FILE", str(tmp_path / "flaky")),
        },
    )
    started = time.monotonic()
    code, data, _ = report(repo)
    assert time.monotonic() - started < 25
    assert code == 1
    assert statuses(data) == {"flaky": "success", "slow": "failed"}
    assert (tmp_path / "flaky").read_text().strip() == "2"
    assert "after-script-ran" not in log_of(data, "slow")
    assert "timed out" in next(j for j in data["jobs"] if j["name"] == "slow")["reason"]


def test_needs_dag_runs_before_stage_barrier(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            stages: [build, test]
            slow-build:
              stage: build
              script: [sleep 2, date +%s.%N > /dev/null]
            fast-build:
              stage: build
              script: [echo fast]
            fast-test:
              stage: test
              needs: [fast-build]
              script: [echo "fast-test-at $(date +%s%N)"]
            stage-test:
              stage: test
              script: [echo stage-test]
        """,
        },
    )
    code, data, _ = report(repo, "-j", "3")
    assert code == 0
    by_name = {j["name"]: j for j in data["jobs"]}
    record = json.loads((repo / ".localci/pipelines/1/pipeline.json").read_text())
    finished = [j["name"] for j in record["jobs"]]  # in the order they finished
    assert finished.index("fast-test") < finished.index("slow-build")
    assert by_name["stage-test"]["status"] == "success"


def test_branch_main_runs_only_main_deploy_and_stage_filter(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            stages: [test, deploy]
            unit:
              script: [echo "branch=$CI_COMMIT_BRANCH slug=$CI_COMMIT_REF_SLUG"]
            deploy:
              stage: deploy
              script: [echo deploying]
              only: [main]
        """,
        },
        branch="feature/x",
    )
    code, data, _ = report(repo)
    assert code == 0 and statuses(data) == {"unit": "success"}
    assert "branch=feature/x slug=feature-x" in log_of(data, "unit")
    code, data, _ = report(repo, "--branch", "main")
    assert statuses(data) == {"unit": "success", "deploy": "success"}
    code, data, _ = report(repo, "--branch", "main", "--stage", "deploy")
    assert statuses(data) == {"deploy": "success"}


def test_workflow_rules_can_stop_the_pipeline(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            workflow:
              rules:
                - if: $CI_COMMIT_BRANCH == "main"
            job: {script: [echo hi]}
        """,
        },
        branch="dev",
    )
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 0
    assert "No pipeline is created" in result.output


def test_logs_command_prints_a_job_log(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "job: {script: [echo hello-log]}\n"})
    assert run_cli(repo, "run", "--no-tty", "-q").exit_code == 0
    result = run_cli(repo, "logs", "job")
    assert "$ echo hello-log" in result.stdout and "hello-log" in result.stdout


def test_sigint_stops_everything_and_exits_130(tmp_path: Path) -> None:
    marker = f"localci-sleep-marker-{os.getpid()}"
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            a: {{script: ["bash -c 'exec -a {marker} sleep 300' &
                          bash -c 'exec -a {marker} sleep 301'"]}}
            b: {{script: ["exec -a {marker} sleep 302"]}}
        """,
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "localci", "run", "--no-tty"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(processes_with(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker), "jobs did not start"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    time.sleep(0.5)
    assert processes_with(marker) == []
    record = json.loads(max((repo / ".localci" / "pipelines").glob("*/pipeline.json")).read_text())
    assert record["status"] == "canceled"
    assert "Traceback" not in out
