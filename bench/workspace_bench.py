"""Benchmark of job workspaces: snapshot, first prepare and re-prepare of a slot; prints medians.

Usage: python bench/workspace_bench.py [--files 5000] [--mb 40] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localci.execute.snapshot import Snapshot, take_snapshot
from localci.execute.workspace import WorkspacePool, prepare_workspace
from localci.state import Store

_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
# Share of files and of bytes per size class: many small sources, a few large assets.
_CLASSES = ((0.80, 0.15), (0.18, 0.27), (0.019, 0.36), (0.001, 0.22))


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env=_ENV, check=True, capture_output=True)
    return out.stdout.decode().strip()


def make_repo(root: Path, files: int, total_mb: float) -> Path:
    """A committed repo of `files` files (~total_mb MB), then 20 edits and 50 untracked files."""
    rng = random.Random(42)  # noqa: S311  (reproducible test data, not secrets)
    project = root / "project"
    project.mkdir()
    _git(project, "init", "-q", "-b", "main")
    total = int(total_mb * 1024 * 1024)
    index = 0
    for share_files, share_bytes in _CLASSES:
        count = max(1, round(files * share_files))
        size = int(total * share_bytes / count)
        for _ in range(count):
            path = project / f"pkg{index % 40}" / f"mod{index % 7}" / f"file{index}.dat"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randint(size // 2, size * 3 // 2)))
            index += 1
    (project / ".gitignore").write_text(".venv/\n")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "bench")
    for path in sorted(project.rglob("*.dat"))[:20]:
        path.write_bytes(path.read_bytes() + b"edit")
    for i in range(50):
        (project / f"untracked{i}.txt").write_text(f"untracked {i}\n")
    return project


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms  (n={len(samples)})"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fresh_snapshot(project: Path, store: Store, *, cold: bool) -> Snapshot:
    if cold:
        shutil.rmtree(store.root / "objects", ignore_errors=True)
        shutil.rmtree(store.root / "snapshots", ignore_errors=True)
        store.ensure()
    sha = _git(project, "rev-parse", "HEAD")
    return take_snapshot(project, store, pipeline_id=store.next_pipeline_id(), sha=sha)


def _full_copy(project: Path, dest: Path) -> None:
    """The alternative design: copy every snapshot file into .localci/ each pipeline."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=project,
        check=True,
        capture_output=True,
    ).stdout
    shutil.rmtree(dest, ignore_errors=True)
    for raw in filter(None, out.split(b"\0")):
        rel = os.fsdecode(raw)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / rel, target, follow_symlinks=False)


def _job(root: Path) -> None:
    files = sorted(root.rglob("*.dat"))
    for path in files[:: max(1, len(files) // 10)][:10]:
        path.write_bytes(b"changed by the job")
    for i in range(100):
        out = root / "build" / f"out{i % 5}" / f"{i}.o"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"object")


def run(files: int, total_mb: float, reps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="localci-bench-") as tmp:
        project = make_repo(Path(tmp), files, total_mb)
        size = sum(
            p.stat().st_size for p in project.rglob("*") if p.is_file() and ".git" not in p.parts
        )
        print(f"repository: {files} committed files + 50 untracked, {size / 2**20:.1f} MB")
        time.sleep(2.5)  # let file ctimes leave the stat cache's racy window
        store = Store(project)
        store.ensure()
        pool = WorkspacePool(store, "project")
        results: dict[str, list[float]] = {}

        def measure(name: str, fn: Callable[[], object]) -> None:
            results.setdefault(name, []).append(_timed(fn))

        for _ in range(reps):
            measure("snapshot, cold store", lambda: _fresh_snapshot(project, store, cold=True))
            measure(
                "snapshot, warm (unchanged tree)",
                lambda: _fresh_snapshot(project, store, cold=False),
            )
            measure(
                "alternative: full copy into .localci",
                lambda: _full_copy(project, store.root / "copy"),
            )
        snap = _fresh_snapshot(project, store, cold=False)
        git_dir = project / ".git"
        with pool.acquire() as ws:

            def prepare() -> None:
                prepare_workspace(ws, snap, ref="main", ref_is_tag=False, user_git_dir=git_dir)

            for _ in range(reps):
                shutil.rmtree(ws.builds_dir, ignore_errors=True)
                shutil.rmtree(ws.state_dir, ignore_errors=True)
                measure("prepare, first use of a slot", prepare)
                _job(ws.project_dir)
                measure("re-prepare after job (10 modified, 100 created)", prepare)
                measure("re-prepare, nothing changed", prepare)
            measure(
                "git status in the workspace", lambda: _git(ws.project_dir, "status", "--porcelain")
            )
        for name, samples in results.items():
            print(f"{name:<48} {_median_ms(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=float, default=40.0)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    run(args.files, args.mb, args.reps)


if __name__ == "__main__":
    main()
