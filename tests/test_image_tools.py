"""A Python-image job whose script runs the image's package manager (`apt-get install`, `apk
add`) needs its image: a virtualenv has no package manager, and as root the command would
install packages on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localci.execute.image_tools import package_manager_in
from tests.container_support import job_log, require_engine, run_json
from tests.helpers import make_repo, run_cli

PIPELINE = """
apt:
  image: python:3.10-bookworm
  before_script:
    - apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y libgl1
  script: [python -c pass]
plain:
  image: python:3.10
  script: [pip --version, echo "apt-get is not run here"]
"""


@pytest.mark.parametrize(
    ("line", "tool"),
    [
        ("apk add gcc g++ libffi-dev", "apk"),
        ("apt-get update && apt-get install -y libgl1", "apt-get"),
        ("DEBIAN_FRONTEND=noninteractive apt-get install -yq git", "apt-get"),
        ("python -V; apt install -y curl", "apt"),
        ("sudo -E yum install -y gcc", "yum"),
        ("if true; then dnf -y install make; fi", "dnf"),
        ("/usr/bin/apt-get -y install zip", "apt-get"),
        ("test -f x || microdnf install tar", "microdnf"),
        ("zypper --non-interactive in git", "zypper"),
        ("echo apt-get install is not run", None),
        ("pip install apt", None),
        ("python -m apkutils", None),
        ("./apt-get-wrapper.sh", None),
        ("pip install -r requirements.txt", None),
    ],
)
def test_package_managers_are_found_in_command_position_only(line: str, tool: str | None) -> None:
    assert package_manager_in([line]) == tool


def test_with_an_engine_such_a_python_job_is_placed_in_its_image(tmp_path: Path) -> None:
    require_engine()
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": PIPELINE})
    dry = run_cli(repo, "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "apt: container (python:3.10-bookworm)" in dry.output
    assert "plain: venv (python:3.10)" in dry.output


def test_in_a_virtualenv_the_job_log_and_header_say_the_package_manager_is_missing(
    tmp_path: Path,
) -> None:
    config = """
    probe:
      image: python:3.11-alpine
      script:
        - apk --version || echo "no apk on this machine"
    """
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    dry = run_cli(repo, "run", "--dry-run", "--executor", "venv")
    assert "probe: runs `apk`, the package manager of image python:3.11-alpine" in dry.output
    if os.geteuid() == 0:
        refused = run_cli(repo, "run", "--no-tty", "--executor", "venv")
        assert refused.exit_code == 2
        assert "probe (image python:3.11-alpine)" in refused.output
    code, data, output = run_json(repo, "--executor", "venv", "--allow-host")
    assert code == 0, output
    log = job_log(data, "probe")
    assert "the script runs `apk`, the package manager of image 'python:3.11-alpine'" in log
    assert "install Podman or Docker" in log
