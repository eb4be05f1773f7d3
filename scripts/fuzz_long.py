"""Run the fuzz properties of tests/test_fuzz.py for a long time (the suite runs them ~20 s).

Usage, from the repository root:

    python scripts/fuzz_long.py --minutes 10            # every property, in rounds
    python scripts/fuzz_long.py --minutes 30 --only pipeline
    LOCALCI_FUZZ_SCALE=20 python scripts/fuzz_long.py   # bigger rounds (default 10x the suite)

Each round runs every property test with `max_examples` multiplied by the scale, with fresh
random seeds, until the time is up. A failure is printed with hypothesis' reproduction blob
(`@reproduce_failure(...)`) and the run goes on with the next property; the exit status is 1
when anything failed. At the end it prints how many inputs each property tried.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="total time (default 5)")
    parser.add_argument("--only", default="", help="run only tests whose name contains this")
    args = parser.parse_args()
    os.environ.setdefault("LOCALCI_FUZZ_SCALE", "10")
    sys.path.insert(0, str(ROOT))
    from tests import test_fuzz

    tests: list[tuple[str, Callable[[], None]]] = [
        (name, getattr(test_fuzz, name))
        for name in dir(test_fuzz)
        if name.startswith("test_")
        and args.only in name
        and name != "test_every_seed_loads_or_fails_cleanly"
    ]
    print(f"{len(test_fuzz.SEEDS)} seed configurations; scale {test_fuzz.SCALE}", flush=True)
    end = time.monotonic() + args.minutes * 60
    failures: dict[str, str] = {}
    rounds = 0
    while time.monotonic() < end:
        rounds += 1
        for name, test in tests:
            if time.monotonic() >= end:
                break
            try:
                test()
            except Exception:
                text = traceback.format_exc()
                failures.setdefault(name, text)
                print(f"FAILED {name}:\n{text}", flush=True)
        print(f"round {rounds} done: {dict(test_fuzz.TRIED)}", flush=True)
    print("\ninputs tried:")
    for key, count in sorted(test_fuzz.TRIED.items()):
        print(f"  {key:<32} {count:>9,}")
    print(f"failures: {len(failures)} ({', '.join(failures) or 'none'})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
