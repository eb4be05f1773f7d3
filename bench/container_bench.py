"""Per-job overhead of container jobs against the same work done with the engine's CLI by hand.

    python bench/container_bench.py [--reps N]    (= python bench/run.py --only container)

Three cases, each a warm `localci run` against its by-hand equivalent, interleaved, medians:

- one job: a 1-job pipeline in a busybox image against `<engine> run --rm` of the same script
  through `sh -c`, on the same directory bind-mounted at the same place;
- five jobs: a pipeline of 5 such jobs in 5 stages against 5 `<engine> run` in a row; the
  difference to the one-job case over 4 is the cost of one more job (localci's start-up, the
  same for every executor, cancels out);
- a service: the job with an httpd service against `network create`, `run -d` of the service
  with its alias, a wait until its port listens, the job's `run --rm` on that network, and the
  removal of the service and the network.

Plus the one job with `--executor venv`: localci's own fixed cost per run, for reference.
Needs Docker or Podman; the images are built from this machine's busybox-static (no registry).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pipelines

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from localci.execute.container.engine import Engine, detect_engine  # noqa: E402

BUSYBOX = "localhost/localci-test/busybox:1"
HTTPD = "localhost/localci-test/httpd:1"
SERVICE_ALIAS = "localhost-localci-test-httpd"  # GitLab's name for the service, as localci's
SCRIPT = "echo hello from the job && ls > /dev/null"
SERVICE_SCRIPT = f"wget -q -O - http://{SERVICE_ALIAS}/ > /dev/null && echo reached the service"
JOBS = 5
MOUNT = "/builds/bench/project"


@dataclass(frozen=True, slots=True)
class Command:
    argv: tuple[str, ...]
    cwd: Path


def find_engine() -> tuple[Engine | None, str]:
    """The engine to measure, or None and why not."""
    conf = ROOT / ".ci" / "containers.conf"
    if "CONTAINERS_CONF" not in os.environ and conf.is_file() and os.geteuid() == 0:
        os.environ["CONTAINERS_CONF"] = str(conf)  # as the tests: rootful Podman with runc
    engine = detect_engine(use_cache=False)
    if engine is None:
        return None, "no container engine (Docker or Podman) answers on this machine"
    if shutil.which("busybox") is None:
        return None, "busybox (busybox-static) is needed to build the bench images"
    return engine, ""


def prepare(engine: Engine, base: Path, localci: list[str]) -> dict[str, Command]:
    """The images, the repositories and the commands to time, by name."""
    from tests.container_support import ensure_images

    base.mkdir(parents=True, exist_ok=True)
    ensure_images(engine, base)
    one = _repo(base / "one", _yaml(1, services=False))
    five = _repo(base / "five", _yaml(JOBS, services=False))
    service = _repo(base / "service", _yaml(1, services=True))
    hand = base / "by-hand"
    hand.mkdir()
    run = (*localci, "run", "-q", "--no-tty")
    scripts = {
        "hand 1": _by_hand_jobs(engine, one, 1),
        f"hand {JOBS}": _by_hand_jobs(engine, five, JOBS),
        "hand service": _by_hand_service(engine, service),
    }
    commands = {
        "localci 1": Command(run, one),
        "hand 1": Command(("bash", "-c", scripts["hand 1"]), hand),
        f"localci {JOBS}": Command(run, five),
        f"hand {JOBS}": Command(("bash", "-c", scripts[f"hand {JOBS}"]), hand),
        "localci service": Command(run, service),
        "hand service": Command(("bash", "-c", scripts["hand service"]), hand),
        "venv 1": Command((*run, "--executor", "venv", "--allow-host"), one),
    }
    (base / "by-hand.sh").write_text("\n\n".join(f"# {k}\n{v}" for k, v in scripts.items()))
    return commands


def _yaml(jobs: int, *, services: bool) -> str:
    stages = [f"s{index}" for index in range(jobs)]
    lines = [f"stages: [{', '.join(stages)}]", f"image: {BUSYBOX}", ""]
    for stage in stages:
        lines += [f"job-{stage}:", f"  stage: {stage}"]
        if services:
            lines += [f"  services: ['{HTTPD}']", f"  script: ['{SERVICE_SCRIPT}']", ""]
        else:
            lines += [f"  script: ['{SCRIPT}']", ""]
    return "\n".join(lines)


def _repo(path: Path, yaml: str) -> Path:
    return pipelines.make_git_repo(path, {".gitlab-ci.yml": yaml})


def _run_args(engine: Engine, repo: Path) -> str:
    return f"{engine.cli} run --rm -v {repo}:{MOUNT} -w {MOUNT}"


def _by_hand_jobs(engine: Engine, repo: Path, jobs: int) -> str:
    line = f"{_run_args(engine, repo)} {BUSYBOX} sh -c {shlex.quote(SCRIPT)}"
    return "set -e\n" + f"{line}\n" * jobs


def _by_hand_service(engine: Engine, repo: Path) -> str:
    """What a person types: network, service with its alias, wait for port 80, job, removal."""
    cli, net, svc = engine.cli, "bench-net-$$", "bench-svc-$$"
    port = "0050"  # 80 in /proc/net/tcp's hex
    remove = (
        f"{cli} network rm -f -t 0 {net}"
        if engine.kind == "podman"
        else (f"{cli} rm -f {svc} && {cli} network rm {net}")
    )
    return "\n".join(
        [
            "set -e",
            f"{cli} network create {net} > /dev/null",
            f"{cli} run -d --name {svc} --network {net} --network-alias {SERVICE_ALIAS} "
            f"{HTTPD} > /dev/null",
            f"pid=$({cli} inspect --format '{{{{.State.Pid}}}}' {svc})",
            # A listening socket (state 0A) on the port, IPv4 or IPv6; 30 s at most.
            "for _ in $(seq 300); do",
            f"  grep -Eq ':{port} [0-9A-F]+:0000 0A' /proc/$pid/net/tcp{{,6}} && break",
            "  sleep 0.1",
            "done",
            f"{_run_args(engine, repo)} --network {net} {BUSYBOX} "
            f"sh -c {shlex.quote(SERVICE_SCRIPT)}",
            f"{remove} > /dev/null",
        ]
    )


def rows(
    medians: Mapping[str, float], shown: Mapping[str, str], engine: Engine
) -> list[dict[str, str]]:
    """The rows of bench/run.py's table (its Row's fields) from the medians."""
    kind = engine.kind
    local1, hand1 = medians["localci 1"], medians["hand 1"]
    local5, hand5 = medians[f"localci {JOBS}"], medians[f"hand {JOBS}"]
    local_svc, hand_svc = medians["localci service"], medians["hand service"]
    per_job_local = (local5 - local1) / (JOBS - 1)
    per_job_hand = (hand5 - hand1) / (JOBS - 1)
    per_job_ratio = per_job_local / per_job_hand
    service_local, service_hand = local_svc - local1, hand_svc - hand1
    fixed = local1 - hand1
    return [
        {
            "name": "container: 1 busybox job",
            "localci": shown["localci 1"],
            "baseline": f"`{kind} run` by hand {shown['hand 1']}",
            "ratio": f"{local1 / hand1:.2f}x by hand",
            "per_job": f"+{fixed:.2f} s (venv job {shown['venv 1']})",
            "gcl": "-",
            "target": "-",
            "verdict": "",
        },
        {
            "name": f"container: each job of {JOBS} in a row",
            "localci": f"{per_job_local:.2f} s/job",
            "baseline": f"{per_job_hand:.2f} s/`{kind} run` ({JOBS} jobs: {shown[f'hand {JOBS}']})",
            "ratio": f"{per_job_ratio:.2f}x by hand",
            "per_job": f"{(per_job_local - per_job_hand) * 1000:+.0f} ms/job",
            "gcl": "-",
            "target": "<= 1.3x by hand",
            "verdict": "met" if per_job_ratio <= 1.3 else "NOT met",
        },
        {
            "name": "container: 1 job + 1 service",
            "localci": shown["localci service"],
            "baseline": f"network+service+wait+job+rm by hand {shown['hand service']}",
            "ratio": f"{local_svc / hand_svc:.2f}x by hand",
            "per_job": f"service costs {service_local:.2f} s vs {service_hand:.2f} s by hand "
            f"({service_local / service_hand:.2f}x)",
            "gcl": "-",
            "target": "service <= 1.3x by hand",
            "verdict": "met" if service_local <= 1.3 * service_hand else "NOT met",
        },
    ]


def main() -> int:
    import run

    return run.main(["--only", "container", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
