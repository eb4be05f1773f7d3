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
    _timed(localci, repo)  # warm-up: slot, snapshot, engine cache
    _timed(by_hand, repo)
    samples: dict[str, list[float]] = {"localci": [], "by hand": []}
    for _ in range(args.reps):
        samples["localci"].append(_timed(localci, repo))
        samples["by hand"].append(_timed(by_hand, repo))
    local, hand = (statistics.median(samples[k]) for k in ("localci", "by hand"))
    print(f"engine: {engine.describe()}; median of {args.reps}")
    print("| row | localci | baseline | overhead |")
    print("|---|---|---|---|")
    print(
        f"| 1 container job (`{SCRIPT}`) | {local:.2f} s | {hand:.2f} s "
        f"(`{engine.kind} run` by hand) | {local - hand:+.2f} s ({local / hand:.2f}x) |"
    )
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
