"""A job that `apt-get install`s in its Debian container leaves this machine unchanged.

Slow: the image is a `debootstrap --variant=minbase` root filesystem (about 4 minutes to make,
then kept by the engine) and the job downloads from a Debian mirror. It runs when the image is
already present or when LOCALCI_TEST_DEBOOTSTRAP=1 allows making it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.container_support import require_engine
from tests.helpers import make_repo, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # making the image takes minutes
DEBIAN = "localhost/localci-test/debian:bookworm"


def _debian_image(engine_cli: str, scratch: Path) -> None:
    present = subprocess.run(
        [engine_cli, "image", "inspect", DEBIAN], check=False, capture_output=True
    )
    if present.returncode == 0:
        return
    if os.environ.get("LOCALCI_TEST_DEBOOTSTRAP") != "1" or shutil.which("debootstrap") is None:
        pytest.skip("set LOCALCI_TEST_DEBOOTSTRAP=1 (and install debootstrap) to build the image")
    root = scratch / "rootfs"
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), "http://deb.debian.org/debian"],
        check=True,
        capture_output=True,
    )
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        [engine_cli, "import", "--change", 'CMD ["/bin/bash"]', "-", DEBIAN],
        stdin=tar.stdout,
        check=True,
        capture_output=True,
    )
    tar.wait()


def test_apt_get_install_in_the_container_leaves_the_host_unchanged(tmp_path: Path) -> None:
    engine = require_engine()
    _debian_image(engine.cli, tmp_path)
    hosts_before = hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest()
    assert shutil.which("hello") is None
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            install:
              image: {DEBIAN}
              before_script:
                - apt-get update -qq
                - apt-get install -y -qq --no-install-recommends hello > /dev/null
              script:
                - hello
                - echo "127.0.0.1 added-by-the-job" >> /etc/hosts
                - echo "shell=$BASH_VERSION"
            """
        },
    )
    report = tmp_path / "report.json"
    result = run_cli(repo, "run", "--no-tty", "--json-report", str(report))
    job = json.loads(report.read_text())["jobs"][0]
    log = Path(job["log"]).read_text()
    assert result.exit_code == 0, result.output + log
    assert "Hello, world!" in log and "shell=5." in log
    assert shutil.which("hello") is None
    assert hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest() == hosts_before
