"""Labels on everything localci creates in the engine, and removal of what a killed run left.

Every container and network carries `io.localci.owner=<pid>:<start>`, the localci process that
made it (its pid and the process's start time, so a reused pid is not mistaken for it). A run
removes the labelled objects whose owner is gone: nothing survives a SIGKILLed localci for
longer than the next run's start.
"""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

from localci.execute.container.engine import Engine
from localci.execute.process import process_alive

__all__ = [
    "MANAGED_LABEL",
    "OWNER_LABEL",
    "PROJECT_LABEL",
    "labels",
    "remove_leftovers",
    "remove_objects",
]

MANAGED_LABEL = "io.localci.managed"
OWNER_LABEL = "io.localci.owner"


@cache
def owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


PROJECT_LABEL = "io.localci.project"


def labels(job_name: str, project_dir: Path) -> tuple[str, ...]:
    """The labels of everything made for a job: localci's, the owning process, the project
    (`podman ps --filter label=io.localci.project=$PWD` lists a project's containers)."""
    return (
        f"{MANAGED_LABEL}=true",
        f"{OWNER_LABEL}={owner_token()}",
        f"{PROJECT_LABEL}={project_dir}",
        f"io.localci.job={job_name}",
    )


def remove_objects(engine: Engine, containers: list[str], network: str | None) -> None:
    """Remove containers (at once, no stop grace) and then their network; missing is fine."""
    if network and engine.kind == "podman":
        # One call removes the network and every container on it (a job's are all on it).
        done = engine.command("network", "rm", "-f", "-t", "0", network, check=False, timeout_s=60)
        if done.returncode == 0:
            return
    for delay in (0.0, 0.5, 2.0) if containers else ():
        # A container whose CLI was just killed can be briefly busy (being stopped, cleaned).
        time.sleep(delay)
        done = engine.command(
            "rm", "-f", *_no_grace(engine), *containers, check=False, timeout_s=60
        )
        if done.returncode == 0 or _only_missing(done.stderr):
            break
    if network:
        # Docker removes a `run --rm` container asynchronously: its endpoint may linger briefly.
        for delay in (0.0, 0.5, 2.0):
            time.sleep(delay)
            done = engine.command("network", "rm", network, check=False, timeout_s=60)
            if done.returncode == 0 or _only_missing(done.stderr):
                break


def _only_missing(stderr: str) -> bool:
    """Whether every complaint of a failed `rm` is about an object that is already gone."""
    lines = [line.lower() for line in stderr.splitlines() if line.strip()]
    return all("no such" in line or "not found" in line or "not known" in line for line in lines)


def remove_leftovers(engine: Engine) -> int:
    """Remove containers and networks of localci processes that no longer run; their count."""
    containers = _stale(engine, ["ps", "-a"], "{{.ID}} {{.Labels}}")
    networks = _stale(engine, ["network", "ls"], "{{.Name}} {{.Labels}}")
    remove_objects(engine, containers, None)
    for network in networks:
        engine.command("network", "rm", network, check=False, timeout_s=60)
    return len(containers) + len(networks)


def _stale(engine: Engine, listing: list[str], fmt: str) -> list[str]:
    done = engine.command(
        *listing, "--filter", f"label={MANAGED_LABEL}=true", "--format", fmt, check=False
    )
    stale = []
    for line in done.stdout.splitlines():
        ident, _, label_text = line.partition(" ")
        owner = _owner_of(label_text)
        if ident and owner is not None and not _alive(owner):
            stale.append(ident)
    return stale


def _owner_of(label_text: str) -> str | None:
    # `{{.Labels}}` prints Go's map syntax: map[key:value key2:value2].
    marker = f"{OWNER_LABEL}:"
    start = label_text.find(marker)
    if start < 0:
        marker = f"{OWNER_LABEL}="
        start = label_text.find(marker)
    if start < 0:
        return None
    value = label_text[start + len(marker) :]
    return value.split(" ", 1)[0].split(",", 1)[0].rstrip("]")


def _alive(owner: str) -> bool:
    pid_text, _, started = owner.partition(":")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return process_alive(pid) and _start_time(pid) == started


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "0"
    return stat.rsplit(")", 1)[1].split()[19]


def _no_grace(engine: Engine) -> list[str]:
    # Docker's `rm -f` kills at once; Podman's waits for the stop timeout unless told not to.
    return ["--time", "0"] if engine.kind == "podman" else []
