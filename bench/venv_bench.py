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

from localci.execute.interpreters import Interpreter, PythonRequest, choose, discover_here
from localci.execute.venvs import VenvFactory
from localci.files import remove_tree

_OLD_FLAGS = ("--no-download", "--no-periodic-update", "--activators", "bash",
              "--no-setuptools", "--symlink-app-data")  # fmt: skip


def _old_create(dest: Path, python: Path, app_data: Path) -> None:
    """What VenvFactory.create did before: virtualenv seeds pip (3.9+ only) from its app-data."""
    args = [str(dest), *_OLD_FLAGS, "--app-data", str(app_data), "-p", str(python)]
    with virtualenv.session_via_cli(args, setup_logging=False) as session:
        session.run()


def _timed(fn: Callable[[], object], fresh: Path | None) -> float:
    """Milliseconds `fn` takes, after removing `fresh` (the venv it creates) untimed."""
    if fresh is not None:
        remove_tree(fresh)
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _measure(factory: VenvFactory, root: Path, found: Interpreter, reps: int) -> str:
    """One table row for `found`."""
    dest, record, old = root / f"venv{found.minor}", root / f"v{found.minor}.json", root / "old"
    python = str(found.path)
    start = time.perf_counter()
    factory.create(root / f"first{found.minor}", python)
    first = (time.perf_counter() - start) * 1000
    old_ok = found.version[:2] >= (3, 9)  # virtualenv's seeder refuses older targets
    if old_ok:
        _old_create(old, found.path, root / "old-app-data")  # warm-up
    new_ms, old_ms = [], []
    for _ in range(reps):  # interleaved: a busy moment hits both columns alike
        new_ms.append(_timed(lambda: factory.create(dest, python), dest))
        if old_ok:
            old_ms.append(_timed(lambda: _old_create(old, found.path, root / "old-app-data"), old))
    factory.fresh(dest, python, record)
    kept = [_timed(lambda: factory.fresh(dest, python, record), None) for _ in range(reps)]
    before = f"{statistics.median(old_ms):.0f} ms" if old_ms else "n/a"
    site = next((dest / "lib").glob("python*/site-packages"))
    seeded = ", ".join(sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info")))
    return (
        f"{found.full:<8} {first:>19.0f} ms {before:>10} {statistics.median(new_ms):>7.0f} ms "
        f"{statistics.median(kept):>5.0f} ms  {seeded}"
    )


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
            print(_measure(factory, root, found, args.reps) if found else f"{minor:<8} missing")


if __name__ == "__main__":
    main()
