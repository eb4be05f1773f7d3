"""Per-job venv cost: before (virtualenv's own seeder, pip only, symlinked app-data) and after
(localci's image seeding: pip, setuptools and wheel as the official image, symlinked read-only
images), for the interpreters installed here. Warm caches: the one-time image build is timed apart.

    python bench/venv_bench.py [--reps 9] [--versions 3.8,3.11,3.13]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import virtualenv

from localci.execute.interpreters import PythonRequest, choose, discover_here
from localci.execute.store import remove_tree
from localci.execute.venvs import VenvFactory

_OLD_FLAGS = ("--no-download", "--no-periodic-update", "--activators", "bash",
              "--no-setuptools", "--symlink-app-data")  # fmt: skip


def _old_create(dest: Path, python: Path, app_data: Path) -> None:
    """What VenvFactory.create did before: virtualenv seeds pip (3.9+ only) from its app-data."""
    args = [str(dest), *_OLD_FLAGS, "--app-data", str(app_data), "-p", str(python)]
    with virtualenv.session_via_cli(args, setup_logging=False) as session:
        session.run()


def _median_ms(fn: Callable[[], object], reset: Callable[[], object], reps: int) -> float:
    samples = []
    for _ in range(reps):
        reset()
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--versions", default="3.8,3.11,3.13")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        factory = VenvFactory(root / "app-data")
        print(f"{'python':<8} {'first (builds images)':>22} {'before':>10} {'after':>10} "
              f"{'kept':>8}  seeded")  # fmt: skip
        for minor in args.versions.split(","):
            found = choose(discover_here(), PythonRequest(minor))
            if found is None:
                print(f"{minor:<8} not installed")
                continue
            dest, record = root / f"venv{minor}", root / f"venv{minor}.json"
            start = time.perf_counter()
            factory.create(root / f"first{minor}", str(found.path))
            first = (time.perf_counter() - start) * 1000
            after = _median_ms(
                lambda found=found, dest=dest: factory.create(dest, str(found.path)),
                lambda dest=dest: remove_tree(dest),
                args.reps,
            )
            factory.fresh(dest, str(found.path), record)
            kept = _median_ms(
                lambda found=found, dest=dest, record=record: factory.fresh(
                    dest, str(found.path), record
                ),
                lambda: None,
                args.reps,
            )
            before = "n/a"
            if found.version[:2] >= (3, 9):  # virtualenv's seeder refuses older targets
                old = root / f"old{minor}"
                _old_create(old, found.path, root / "old-app-data")  # warm-up
                before = f"{_median_ms(lambda old=old, found=found: _old_create(old, found.path, root / 'old-app-data'), lambda old=old: remove_tree(old), args.reps):.0f} ms"  # noqa: E501
            site = next((dest / "lib").glob("python*/site-packages"))
            seeded = sorted(p.name for p in site.glob("*.dist-info"))
            print(f"{found.full:<8} {first:>19.0f} ms {before:>10} {after:>7.0f} ms "
                  f"{kept:>5.0f} ms  {', '.join(seeded)}")  # fmt: skip


if __name__ == "__main__":
    main()
