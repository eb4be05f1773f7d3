"""Benchmark of cache save and restore against `cp -a` of the same tree; prints medians and ratios.

The tree looks like a virtualenv: many small text files, some scripts that contain the
workspace path (relocated on restore), a few large binaries. Restores go into another slot.
Usage: python bench/cache_bench.py [--files 10000] [--mb 200] [--reps 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localci.execute.cache import CacheStore
from localci.files import remove_tree
from localci.state import Store

# Share of files and of bytes per size class: many small sources, a few large libraries.
_CLASSES = ((0.80, 0.15), (0.18, 0.27), (0.019, 0.36), (0.001, 0.22))
_SCRIPTS = 60


def make_tree(project_dir: Path, files: int, total_mb: float) -> list[str]:
    """A `.venv`-like tree of `files` files (~total_mb MB); returns its relative paths."""
    rng = random.Random(7)  # noqa: S311  (reproducible test data, not secrets)
    venv = project_dir / ".venv"
    total = int(total_mb * 1024 * 1024)
    index = 0
    for share_files, share_bytes in _CLASSES:
        count = max(1, round(files * share_files))
        size = int(total * share_bytes / count)
        for _ in range(count - (_SCRIPTS if index == 0 else 0)):
            path = venv / "lib" / f"pkg{index % 60}" / f"sub{index % 9}" / f"mod{index}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randint(size // 2, size * 3 // 2)))
            index += 1
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    for number in range(_SCRIPTS):
        script = venv / "bin" / f"tool{number}"
        script.write_text(f"#!{venv}/bin/python\nimport sys\nsys.exit(main{number}())\n")
        script.chmod(0o755)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    return sorted(str(p.relative_to(project_dir)) for p in venv.rglob("*"))


def timed_together(
    actions: list[Callable[[], object]], before: Callable[[], object], reps: int
) -> list[float]:
    """Median seconds of each action, each run after an untimed `before` and a sync; the
    actions interleaved (a, b, a, b...) so that a busy moment of the machine hits them alike."""
    samples: list[list[float]] = [[] for _ in actions]
    for _ in range(reps):
        for index, action in enumerate(actions):
            before()
            os.sync()
            started = time.perf_counter()
            action()
            samples[index].append(time.perf_counter() - started)
    return [statistics.median(column) for column in samples]


def copy_method(src: Path, dest: Path) -> str:
    """reflink when this file system clones (btrfs, XFS), else copy_file_range."""
    probe_src, probe_dest = src / ".probe", dest / ".probe"
    probe_src.write_bytes(b"x" * 4096)
    try:
        with probe_src.open("rb") as a, probe_dest.open("wb") as b:
            fcntl.ioctl(b.fileno(), 0x40049409, a.fileno())  # FICLONE
        return "reflink"
    except OSError:
        return "copy_file_range, 4 threads"
    finally:
        probe_src.unlink()
        probe_dest.unlink(missing_ok=True)


def run(files: int, total_mb: float, reps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        store = Store(Path(tmp) / "project")
        store.project_dir.mkdir()
        builds = [store.path("builds", str(n)) for n in (0, 1)]
        src, dest = (b / "project" for b in builds)
        src.mkdir(parents=True)
        paths = make_tree(src, files, total_mb)
        caches = CacheStore(store)
        print(f"tree: {sum(1 for p in paths if (src / p).is_file())} files, {total_mb:.0f} MB")

        def clear_dest() -> None:
            remove_tree(dest)
            dest.mkdir(parents=True)

        def save() -> None:
            caches.save("venv", src, paths, builds_dir=builds[0], meta={}, known={})

        def restore() -> None:
            result = caches.restore("venv", dest, relocate_to=(dest, builds[1]))
            assert result.status == "restored", result

        save()  # an entry to restore from
        cp, links, copy, saving = timed_together(
            [
                lambda: subprocess.run(["cp", "-a", str(src / ".venv"), str(dest)], check=True),
                lambda: subprocess.run(["cp", "-al", str(src / ".venv"), str(dest)], check=True),
                restore,
                save,
            ],
            clear_dest,
            reps,
        )

        rows = [
            ("cp -a (baseline)", cp),
            ("cp -al (hard links, not used: shared writes)", links),
            (f"restore, private copies ({copy_method(src, dest)})", copy),
            ("save (copies + hash small files, replaces the entry)", saving),
        ]
        print(f"{'operation':<46} {'median s':>9} {'vs cp -a':>9}")
        for name, seconds in rows:
            print(f"{name:<46} {seconds:>9.3f} {seconds / cp:>8.2f}x")
        shutil.rmtree(dest, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    run(args.files, args.mb, args.reps)


if __name__ == "__main__":
    main()
