"""Jobs with an `image:` run in real containers, as GitLab's Docker executor runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localci.execute.container.engine import Engine
from localci.execute.container.services import service_aliases
from tests.container_support import (
    BASH,
    BUSYBOX,
    ENTRY,
    ensure_images,
    job_log,
    localci_objects,
    require_engine,
    run_json,
)
from tests.helpers import make_repo, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    found = require_engine()
    ensure_images(found, tmp_path_factory.mktemp("images"))
    yield found


def test_job_runs_in_its_image_at_gitlab_paths(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONLY_ON_THE_HOST", "leaked")
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            job:
              image: $JOB_IMAGE
              variables:
                GREETING: "hello world"
              script:
                - echo "dir=$CI_PROJECT_DIR builds=$CI_BUILDS_DIR pwd=$(pwd)"
                - cat tracked.txt
                - echo "host=${ONLY_ON_THE_HOST:-unset} greeting=$GREETING"
                - echo "shared=${CI_SHARED_ENVIRONMENT:-no} disposable=$CI_DISPOSABLE_ENVIRONMENT"
                - printf 'secret=%s\\n' "$(cat "$SECRET_FILE")"
                - echo "$SECRET_FILE"
                - echo changed > /etc/localci-container-marker
                - echo made > made-in-container.txt
            """,
            "tracked.txt": "from the repository\n",
            ".localci/variables.yml": (
                "SECRET_FILE: {value: s3cr3t-value, file: true}\n"
                f"JOB_IMAGE: {BUSYBOX}\n"  # a user variable names the image
            ),
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 0, output + log
    assert "dir=/builds/group/project builds=/builds pwd=/builds/group/project" in log
    assert "from the repository" in log
    assert "host=unset greeting=hello world" in log
    assert "shared=no disposable=true" in log
    assert "secret=s3cr3t-value" in log
    assert "/builds/group/project.tmp/SECRET_FILE" in log
    assert not Path("/etc/localci-container-marker").exists()
    assert not (repo / "made-in-container.txt").exists()  # the user's tree is never touched
    assert "Executor: auto; container engine: " + engine.kind in output
    assert localci_objects(engine, repo) == ([], [])


def test_sh_only_image_gets_sh_with_the_same_semantics(engine: Engine, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            sh-job:
              image: {BUSYBOX}
              script:
                - echo "shell=$0"
                - test -e /bin/bash || echo "no bash here"
                - false | true
                - echo not reached
              after_script:
                - echo "after in a new container, status=$CI_JOB_STATUS"
            bash-job:
              image: {BASH}
              script:
                - echo "bash=${{BASH_VERSION:+yes}}"
                - exit 3
            """
        },
    )
    code, data, _output = run_json(repo)
    sh_log, bash_log = job_log(data, "sh-job"), job_log(data, "bash-job")
    assert code == 1
    assert "shell=/builds/group/project.tmp/step-script.sh" in sh_log
    assert "$ false | true" in sh_log and "not reached" not in sh_log  # pipefail in ash
    assert "after in a new container, status=failed" in sh_log
    assert "bash=yes" in bash_log
    exit_codes = {j["name"]: j["exit_code"] for j in data["jobs"]}
    assert exit_codes == {"sh-job": 1, "bash-job": 3}


def test_entrypoint_override(engine: Engine, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            image-entrypoint:
              image: {ENTRY}
              script: [echo ran]
            emptied:
              image: {{name: {ENTRY}, entrypoint: [""]}}
              script: [echo ran without the entrypoint]
            replaced:
              image: {{name: {ENTRY}, entrypoint: ["/bin/env", "FROM_ENTRYPOINT=yes"]}}
              script: ['echo "replaced: $FROM_ENTRYPOINT"']
            """
        },
    )
    _code, data, _output = run_json(repo)
    status = {j["name"]: j["status"] for j in data["jobs"]}
    assert status == {"image-entrypoint": "failed", "emptied": "success", "replaced": "success"}
    assert "ran without the entrypoint" in job_log(data, "emptied")
    assert "replaced: yes" in job_log(data, "replaced")


def test_timeout_removes_containers_and_network(engine: Engine, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            slow:
              image: {BUSYBOX}
              timeout: 4s
              services: [{BUSYBOX}]
              script: [sleep 120]
            """
        },
    )
    started = time.monotonic()
    code, data, _output = run_json(repo)
    assert code == 1
    assert "timed out" in data["jobs"][0]["reason"]
    assert time.monotonic() - started < 60
    assert localci_objects(engine, repo) == ([], [])


def _wait_for_container(engine: Engine, repo: Path, seconds: float = 60) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        containers, _ = localci_objects(engine, repo)
        if any("-script" in name for name in containers):
            return containers
        time.sleep(0.3)
    raise AssertionError("the job's container never started")


def _spawn_localci(repo: Path) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("localci")
    return subprocess.Popen(
        [str(exe), "-C", str(repo), "run", "--no-tty"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _sleeping_repo(root: Path) -> Path:
    return make_repo(
        root,
        {
            ".gitlab-ci.yml": f"""
            sleeper:
              image: {BUSYBOX}
              services: [{{name: {BUSYBOX}, alias: helper, command: [sleep, "300"]}}]
              script: [sleep 300]
            """
        },
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_containers_and_network(
    engine: Engine, tmp_path: Path, signum: int
) -> None:
    repo = _sleeping_repo(tmp_path / "p")
    proc = _spawn_localci(repo)
    try:
        _wait_for_container(engine, repo)
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert localci_objects(engine, repo) == ([], [])


def test_next_run_removes_what_a_sigkilled_run_left(engine: Engine, tmp_path: Path) -> None:
    repo = _sleeping_repo(tmp_path / "p")
    proc = _spawn_localci(repo)
    try:
        _wait_for_container(engine, repo)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    containers, networks = localci_objects(engine, repo)
    assert containers and networks  # a SIGKILL leaves them: nobody could clean up
    (repo / ".gitlab-ci.yml").write_text(f"quick:\n  image: {BUSYBOX}\n  script: [true]\n")
    subprocess.run(["git", "commit", "-qam", "quick"], cwd=repo, check=True)
    code, _data, output = run_json(repo)
    assert code == 0, output
    assert "an interrupted run left" in output
    assert localci_objects(engine, repo) == ([], [])


def test_files_made_by_root_in_the_container_do_not_break_the_next_job(
    engine: Engine, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            stages: [one, two]
            make:
              stage: one
              image: {{name: {BUSYBOX}, docker: {{user: "0:0"}}}}
              script:
                - mkdir -p build/deep && echo x > build/deep/file && chmod -R 0500 build
                - echo cached > cached.txt
              cache: {{key: k, paths: [cached.txt]}}
              artifacts: {{paths: [build/]}}
            use:
              stage: two
              image: {BUSYBOX}
              cache: {{key: k, paths: [cached.txt]}}
              script:
                - cat build/deep/file cached.txt
            """
        },
    )
    for _ in range(2):  # the second run reuses the slots the first one dirtied
        code, data, output = run_json(repo, "-j", "1")
        assert code == 0, output + job_log(data, "use")
        assert "cached" in job_log(data, "use")


def test_service_aliases_as_gitlab_derives_them() -> None:
    assert service_aliases("postgres:15", None) == ("postgres",)
    assert service_aliases("tutum/wordpress", None) == ("tutum__wordpress", "tutum-wordpress")
    assert service_aliases("registry.example.com/group/img:1", "db, cache") == (
        "registry.example.com__group__img",
        "registry.example.com-group-img",
        "db",
        "cache",
    )
    # gitlab-runner drops a registry's port before the tag (splitServiceAndVersion)
    assert service_aliases("localhost:5000/img:2", None) == ("localhost__img", "localhost-img")


def test_root_without_engine_refuses_non_emulated_images(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the refusal applies to root only")
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            apt:
              image: debian:12
              services: [{name: "postgres:15", alias: db}]
              script: [echo would apt-get install here]
            py:
              image: python:3
              script: [echo fine]
            """
        },
    )
    dry = run_cli(repo, "run", "--dry-run", "--executor", "venv")
    assert dry.exit_code == 0
    assert "apt: image debian:12 is not emulated" in dry.output
    assert "postgres:15 (host postgres or db)" in dry.output
    refused = run_cli(repo, "run", "--no-tty", "--executor", "venv")
    assert refused.exit_code == 2
    assert "apt (image debian:12)" in refused.output and "--allow-host" in refused.output
    assert "py (image" not in refused.output
    allowed = run_cli(repo, "run", "--no-tty", "--executor", "venv", "--allow-host", "apt")
    assert allowed.exit_code == 0, allowed.output


def test_services_without_a_container_are_named_in_the_job_log(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            job:
              services: [{name: "postgres:15", alias: "db,pg"}]
              script: [echo ran]
            """
        },
    )
    code, data, output = run_json(repo, "--executor", "venv")
    log = job_log(data, "job")
    assert code == 0, output
    assert "WARNING: services not started: postgres:15 (host postgres or db or pg)" in log
    assert "services not started" in output  # the summary's notes


def test_files_a_rootful_container_made_are_given_back_to_a_non_root_user(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localci.execute.container import executor
    from localci.execute.workspace import Workspace

    if os.geteuid() != 0 or engine.rootless:
        pytest.skip("needs a rootful engine and root to stage files of another owner")
    builds = tmp_path / "slot"
    ws = Workspace(0, builds, builds / "project", builds / "state")
    (ws.project_dir / "out" / "deep").mkdir(parents=True)
    (ws.project_dir / "out" / "deep" / "file").write_text("made by root")
    (builds / "tmp").mkdir()
    user = 4321  # the non-root user localci pretends to run as; the files are root's
    monkeypatch.setattr(executor.os, "geteuid", lambda: user)
    monkeypatch.setattr(executor.os, "getegid", lambda: user)
    lines: list[str] = []
    executor.reclaim_files(engine, BUSYBOX, ws, lines.append)
    assert lines == []
    for path in (ws.project_dir / "out", ws.project_dir / "out" / "deep" / "file"):
        assert (path.stat().st_uid, path.stat().st_gid) == (user, user)


def test_detection_skips_a_docker_cli_without_daemon_and_is_cached(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localci.execute.container import engine as engines

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon. Is it running?' >&2\nexit 1\n"
    )
    docker.chmod(0o755)
    real = Path(engine.cli).parent
    monkeypatch.setenv("PATH", f"{fake_bin}:{real}:/usr/bin:/bin")
    found = engines.detect_engine()
    if engine.kind == "podman":
        assert found is not None and found.kind == "podman"
    else:  # only a Docker engine here: the daemon-less fake shadows it
        assert found is None
    started = time.monotonic()
    assert engines.detect_engine() == found  # from the disk cache: no CLI is run
    assert time.monotonic() - started < 0.2
    assert engines.detect_engine("docker", use_cache=False) is None


def test_engine_answers_are_cached_per_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two shells with different engine settings (or PATHs) must not evict each other's answer.
    from localci.execute.container import engine as engines

    monkeypatch.setenv("LOCALCI_CACHE_DIR", str(tmp_path / "cache"))
    probed: list[str] = []

    def probe(kinds: object) -> Engine:
        probed.append(os.environ["DOCKER_HOST"])
        return Engine("docker", "/fake/docker", "1.0", rootless=False)

    monkeypatch.setattr(engines, "_probe_all", probe)
    for host in ("unix:///a.sock", "unix:///b.sock", "unix:///a.sock", "unix:///b.sock"):
        monkeypatch.setenv("DOCKER_HOST", host)
        assert engines.detect_engine() == Engine("docker", "/fake/docker", "1.0", False)
    assert probed == ["unix:///a.sock", "unix:///b.sock"]


def test_executor_container_without_an_engine_is_an_unusable_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    repo = make_repo(
        tmp_path / "p", {".gitlab-ci.yml": f"job:\n  image: {BUSYBOX}\n  script: [true]\n"}
    )
    bare = tmp_path / "bin"  # git and bash, but neither docker nor podman
    bare.mkdir()
    for tool in ("git", "bash"):
        (bare / tool).symlink_to(shutil.which(tool) or tool)
    monkeypatch.setenv("PATH", str(bare))
    result = run_cli(repo, "run", "--no-tty", "--executor", "container")
    assert result.exit_code == 3
    assert "no container engine answers" in result.output


def test_executor_host_runs_without_a_virtualenv_and_venv_with_one(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": """
            job:
              script: ['echo "venv=${VIRTUAL_ENV:-none} dir=$CI_PROJECT_DIR"']
            """
        },
    )
    code, data, output = run_json(repo, "--executor", "host")
    assert code == 0, output
    log = job_log(data, "job")
    assert "venv=none" in log and "--executor host: no virtualenv" in log
    from localci.state import project_builds_root

    assert f"dir={project_builds_root(repo)}/" in log  # a build slot, outside the project
    (repo / ".localci").mkdir(exist_ok=True)
    (repo / ".localci" / "config.yml").write_text("executor: venv\n")
    code, data, output = run_json(repo)
    assert code == 0, output
    assert "venv=none" not in job_log(data, "job")
    (repo / ".localci" / "config.yml").write_text("executor: sideways\n")
    assert run_cli(repo, "run", "--no-tty").exit_code == 3
