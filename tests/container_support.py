"""Real containers for the tests: the machine's engine, images built from this machine's own
binaries (no registry is reachable from CI), and a local registry for pull tests.

Without an engine the tests skip on a developer machine, and fail under CI=true: in CI the
container executor must be proven, not skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from localci.execute.container.engine import Engine, detect_engine
from tests.helpers import run_cli

BUSYBOX = "localhost/localci-test/busybox:1"
BASH = "localhost/localci-test/bash:1"
HTTPD = "localhost/localci-test/httpd:1"
SLOW_HTTPD = "localhost/localci-test/slow-httpd:1"
ENTRY = "localhost/localci-test/entrypoint:1"
REPO_CONF = Path(__file__).resolve().parent.parent / ".ci" / "containers.conf"


def _required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("LOCALCI_TEST_REQUIRE_ENGINE") == "1"


def require_engine() -> Engine:
    if "CONTAINERS_CONF" not in os.environ and REPO_CONF.is_file() and os.geteuid() == 0:
        # This repository's settings for rootful Podman on CI machines (runc, no ulimits).
        os.environ["CONTAINERS_CONF"] = str(REPO_CONF)
    engine = detect_engine(use_cache=False)
    if engine is None:
        message = "no container engine (Docker or Podman) answers on this machine"
        if _required():
            pytest.fail(f"{message}; CI must run the container tests (.ci/run installs Podman)")
        pytest.skip(message)
    return engine


def ensure_images(engine: Engine, scratch: Path) -> None:
    """The test images, imported from root filesystems made of busybox-static (and bash)."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox (Debian's busybox-static) is needed to build the test images")
    specs: dict[str, tuple[bool, Sequence[str]]] = {
        BUSYBOX: (False, ['CMD ["/bin/sh"]']),
        BASH: (True, ['CMD ["/bin/bash"]']),
        HTTPD: (False, ["EXPOSE 80", 'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]']),
        SLOW_HTTPD: (
            False,
            ["EXPOSE 8080", 'CMD ["sh", "-c", "sleep 3; exec httpd -f -p 8080 -h /www"]'],
        ),
        ENTRY: (
            False,
            ['ENTRYPOINT ["/bin/false"]', 'CMD ["/bin/sh"]'],
        ),
    }
    for name, (with_bash, changes) in specs.items():
        if _present(engine, name):
            continue
        root = scratch / name.replace("/", "_").replace(":", "_")
        _busybox_root(root, Path(busybox), with_bash)
        archive = root.with_suffix(".tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        args = [engine.cli, "import"]
        for change in changes:
            args += ["--change", change]
        subprocess.run([*args, str(archive), name], check=True, capture_output=True)


def _present(engine: Engine, name: str) -> bool:
    done = subprocess.run([engine.cli, "image", "inspect", name], capture_output=True, check=False)
    return done.returncode == 0


def _busybox_root(root: Path, busybox: Path, with_bash: bool) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("bin", "tmp", "etc", "root", "www"):
        (root / sub).mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout
    for applet in applets.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "www" / "index.html").write_text("hello from the service\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "tmp").chmod(0o1777)
    if with_bash:
        _copy_with_libraries(Path(shutil.which("bash") or "/bin/bash"), root)


def _copy_with_libraries(binary: Path, root: Path) -> None:
    shutil.copy2(binary, root / "bin" / "bash")
    listing = subprocess.run(
        ["ldd", str(binary)], check=True, capture_output=True, text=True
    ).stdout
    for line in listing.splitlines():
        parts = line.split()
        path = next((p for p in parts if p.startswith("/")), None)
        if path is None:
            continue
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def localci_objects(engine: Engine, project: Path) -> tuple[list[str], list[str]]:
    """Containers and networks localci made for `project` (other runs may share the engine)."""
    scope = ["--filter", f"label=io.localci.project={project.resolve()}"]

    def names(*listing: str) -> list[str]:
        done = subprocess.run(
            [engine.cli, *listing, *scope], capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    return names("ps", "-a", "--format", "{{.Names}}"), names(
        "network", "ls", "--format", "{{.Name}}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_registry(scratch: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1 (plain HTTP), as `host:port`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        if _required():
            pytest.fail("docker-registry is needed (apt-get install docker-registry)")
        pytest.skip("docker-registry is not installed")
    port = free_port()
    config = scratch / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {scratch / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [str(binary), "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the local registry did not start")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def insecure_registries_conf(scratch: Path, registry: str) -> Path:
    """A registries.conf letting Podman talk plain HTTP to the test registry."""
    conf = scratch / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
    return conf


def run_json(repo: Path, *args: str) -> tuple[int, dict, str]:
    """`localci run` with a JSON report: the exit code, the report and the output."""
    out = repo.parent / "report.json"
    out.unlink(missing_ok=True)
    result = run_cli(repo, "run", "--no-tty", "--json-report", str(out), *args)
    data = json.loads(out.read_text()) if out.exists() else {"jobs": []}
    if not data["jobs"]:
        raise AssertionError(f"no job ran (exit {result.exit_code}):\n{result.output}")
    return result.exit_code, data, result.output


def job_log(data: dict, name: str) -> str:
    entry = next(j for j in data["jobs"] if j["name"] == name)
    return Path(entry["log"]).read_text()
