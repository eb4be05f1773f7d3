"""What writing the pipeline page adds to a run: a real 50-job run, then its page written again
in fresh interpreters that have already imported what `localci run` imports.

Two figures: "end of run" is what the run's end waits for (the reporters load Jinja2 and the
templates in a background thread while the jobs run, so only reading the records, rendering
and writing are left); "cold" also counts those imports, as `localci report` pays them.
Both in CPU time (the shared machine's wall clock mostly measures its other tenants) and wall.

    python bench/page_bench.py [--jobs 50] [--lines 40] [--reps 7]

Target: the end-of-run figure under 100 ms for 50 jobs (issue 19).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pipelines

TARGET_S = 0.100
# What a `localci run` process has imported by the time the summary is printed.
MEASURE = """
import sys, time
from pathlib import Path
import localci.cli.root, localci.cli.run, localci.execute.pipeline, localci.execute.transfer
import localci.report.plain
import localci.report.summary
cold = sys.argv[2] == "cold"
if not cold:
    from localci.report.html import warm_up
    warm_up()
wall, cpu = time.perf_counter(), time.process_time()
from localci.report.html import write_pipeline_page
write_pipeline_page(Path(sys.argv[1]))
print(time.process_time() - cpu, time.perf_counter() - wall)
"""


def pipeline_yaml(jobs: int, lines: int) -> str:
    """`jobs` jobs over 5 stages with needs, each printing `lines` lines (some coloured)."""
    text = pipelines.dag_yaml(jobs, stages=5)
    coloured = "'\\\\033[32mok\\\\033[0m line %s of $CI_JOB_NAME\\\\n'"
    command = f"for i in $(seq {lines}); do printf {coloured} $i; done"
    return text.replace('script: ["echo ', f'script: ["{command}", "echo ')


def measure(record_dir: Path, kind: str, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(record_dir), kind],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--lines", type=int, default=40, help="log lines per job")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localci-page-bench-") as tmp:
        repo = pipelines.make_git_repo(
            Path(tmp) / "p", {".gitlab-ci.yml": pipeline_yaml(args.jobs, args.lines)}
        )
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "localci", "-C", str(repo), "run", "--no-tty", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        run_s = time.perf_counter() - started
        record_dir = repo / ".localci" / "pipelines" / "1"
        if run.returncode != 0:
            print(run.stdout, run.stderr, file=sys.stderr)
            return 1
        ran = len(json.loads((record_dir / "pipeline.json").read_text())["jobs"])
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        results = {}
        for kind in ("warm", "cold"):
            measure(record_dir, kind, env)  # writes the .pyc files and the template cache
            results[kind] = [measure(record_dir, kind, env) for _ in range(args.reps)]
        size = (record_dir / "pipeline.html").stat().st_size
    print(f"pipeline of {ran} jobs, {args.lines} log lines each; the run took {run_s:.2f}s")
    print(f"page: {size / 1024:.0f} KiB")
    for kind, label in (("warm", "end of run"), ("cold", "cold (imports too)")):
        cpu = statistics.median(c for c, _ in results[kind])
        wall = statistics.median(w for _, w in results[kind])
        print(
            f"{label:>20}: {cpu * 1000:4.0f} ms CPU, {wall * 1000:4.0f} ms wall "
            f"(medians of {args.reps})"
        )
    median = statistics.median(c for c, _ in results["warm"])
    verdict = "meets" if median < TARGET_S else "MISSES"
    print(f"{verdict} the target of {TARGET_S * 1000:.0f} ms at the end of a run")
    return 0 if median < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
