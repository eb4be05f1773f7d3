"""Per-job overhead of a container job: `localci run` of a 1-job pipeline whose job runs in a
busybox image, against `<engine> run` of the same command on the same bind-mounted directory
by hand. Medians of interleaved runs (the machine is noisy).

    python bench/container_bench.py [--reps 7]

Needs Docker or Podman; the image is built from this machine's busybox-static (no registry).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.container_support import BUSYBOX, ensure_images, require_engine  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localci.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localci.invalid",
}
SCRIPT = "echo hello from the job && ls > /dev/null"


def _timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **GIT_ENV, "NO_COLOR": "1"},
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    engine = require_engine()
    scratch = Path(tempfile.mkdtemp(prefix="localci-container-bench-"))
    ensure_images(engine, scratch)
    repo = scratch / "project"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(f"job:\n  image: {BUSYBOX}\n  script: ['{SCRIPT}']\n")
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *command], cwd=repo, check=True, env={**os.environ, **GIT_ENV})
    localci = [str(Path(sys.executable).with_name("localci")), "run", "-q", "--no-tty"]
    # The same job without an image: localci's own fixed cost (start, plan, workspace, venv).
    venv_job = [*localci, "--executor", "venv", "--allow-host"]
    by_hand = [
        engine.cli,
        "run",
        "--rm",
        "-v",
        f"{repo}:/builds/project",
        "-w",
        "/builds/project",
        BUSYBOX,
        "sh",
        "-c",
        SCRIPT,
    ]
    commands = {"localci": localci, "by hand": by_hand, "venv": venv_job}
    for command in commands.values():
        _timed(command, repo)  # warm-up: slot, snapshot, venv, engine cache
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.reps):
        for name, command in commands.items():
            samples[name].append(_timed(command, repo))
    local, hand, venv = (statistics.median(samples[k]) for k in commands)
    print(f"engine: {engine.describe()}; median of {args.reps}")
    print("| row | localci | baseline | overhead |")
    print("|---|---|---|---|")
    print(
        f"| 1 container job (`{SCRIPT}`) | {local:.2f} s | {hand:.2f} s "
        f"(`{engine.kind} run` by hand) | {local - hand:+.2f} s ({local / hand:.2f}x) |"
    )
    print(
        f"the same job in a venv (`--executor venv`): {venv:.2f} s; container-specific cost "
        f"beyond `{engine.kind} run` = {local - venv - hand:+.2f} s"
    )
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
