"""The interpreters behind Python-image jobs, for people: `localci doctor`, the interpreter lines
of `run --dry-run`, and `run --install-python` (uv installs what the pipeline's images name)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from localci.errors import GitError, StateError, UsageError
from localci.execute.interpreters import (
    Interpreter,
    PythonRequest,
    choose,
    current_interpreter,
    discover_here,
)
from localci.execute.job import python_for_job
from localci.git import run_git
from localci.plan.model import PlannedJob

__all__ = [
    "Dependency",
    "container_engine",
    "dependencies",
    "install_missing_pythons",
    "print_doctor",
    "print_job_interpreters",
    "served_tags",
]

_OLDEST_USABLE = (3, 6)


@dataclass(frozen=True, slots=True)
class Dependency:
    """One thing a run relies on, and what was found."""

    name: str
    found: str
    ok: bool


def container_engine(project_dir: Path) -> str | None:
    """The engine container jobs would run in (probed now, the project's `engine:` setting
    first), described in one line; None when no engine answers."""
    from localci.execute.container.engine import detect_engine
    from localci.settings import load_settings

    engine = detect_engine(load_settings(project_dir).engine, use_cache=False)
    return None if engine is None else engine.describe()


def served_tags(interpreter: Interpreter, found: Sequence[Interpreter]) -> str:
    """Which `python:` image tags run on `interpreter` (the others of its X.Y pick a newer one)."""
    tags = []
    if interpreter.full != interpreter.minor:
        tags.append(f"python:{interpreter.full}")
    if choose(found, PythonRequest(interpreter.minor)) == interpreter:
        tags.insert(0, f"python:{interpreter.minor}")
    if choose(found, PythonRequest(str(interpreter.version[0]))) == interpreter:
        tags.insert(0, f"python:{interpreter.version[0]}")
    if interpreter.version[:2] < _OLDEST_USABLE and tags:
        return f"{', '.join(tags)} (jobs fail: no virtualenv for Python {interpreter.minor})"
    return ", ".join(tags) or f"none (another {interpreter.minor} is used)"


def dependencies(project_dir: Path, env: Mapping[str, str]) -> list[Dependency]:
    """git, uv, the container engine and the free disk of .localci/."""
    out = [_git(), _uv(env)]
    engine = container_engine(project_dir)
    none = "none answers: jobs on non-Python images run on this machine (install Docker or Podman)"
    out.append(Dependency("container engine", engine or none, True))
    out.append(_free_disk(project_dir / ".localci"))
    return out


def _git() -> Dependency:
    try:
        done = run_git(None, "--version")
    except GitError:
        done = None
    if done is None or done.returncode != 0:
        return Dependency("git", "not found (localci run needs it)", False)
    return Dependency("git", f"{os.fsdecode(done.stdout).strip()} ({shutil.which('git')})", True)


def _uv(env: Mapping[str, str]) -> Dependency:
    uv = shutil.which("uv", path=env.get("PATH"))
    return Dependency("uv", uv or "not found (only --install-python needs it)", True)


def _free_disk(folder: Path) -> Dependency:
    probe = folder if folder.exists() else folder.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as exc:
        return Dependency("free disk in .localci/", f"unknown ({exc.strerror})", False)
    low = free < 1 << 30
    text = f"{free / (1 << 30):.1f} GiB ({folder})" + (" - low" if low else "")
    return Dependency("free disk in .localci/", text, not low)


def print_doctor(console: Console, project_dir: Path, env: Mapping[str, str]) -> bool:
    """Print the interpreters found and the run's dependencies; False when one is missing."""
    found = discover_here()
    table = Table(title="Python interpreters", title_justify="left", pad_edge=False)
    for column in ("version", "from", "path", "image tags served"):
        table.add_column(column, overflow="fold")
    for interpreter in found:
        table.add_row(
            interpreter.full,
            interpreter.source,
            str(interpreter.path),
            served_tags(interpreter, found),
        )
    console.print(table)
    own = current_interpreter()
    console.print(
        f"Other versions run on localci's own Python {own.full} ({own.path}) and are marked "
        f'"ran on {own.minor} instead of X.Y"',
        markup=False,
    )
    ok = True
    for dependency in dependencies(project_dir, env):
        style = "" if dependency.ok else "red"
        console.print(Text.assemble(f"{dependency.name}: ", (dependency.found, style)))
        ok = ok and dependency.ok
    return ok


def print_job_interpreters(
    console: Console, jobs: Iterable[PlannedJob], option: str | None, env: Mapping[str, str]
) -> None:
    """`run --dry-run`: the interpreter each job would use."""
    console.print("Interpreters:")
    for job in jobs:
        text = python_for_job(job, option, env).describe().replace("; ran on ", "; would run on ")
        console.print(f"  {job.name}: {text}", markup=False)


def install_missing_pythons(
    jobs: Iterable[PlannedJob], option: str | None, env: Mapping[str, str]
) -> list[str]:
    """`uv python install` the versions the jobs name that are not here (uv shows progress);
    returns them. Raises UsageError without uv."""
    choices = [python_for_job(job, option, env) for job in jobs]
    missing = sorted({c.wanted for c in choices if c.substitution and c.wanted})
    if not missing:
        return []
    uv = shutil.which("uv", path=env.get("PATH"))
    if uv is None:
        raise UsageError(
            f"--install-python: Python {', '.join(missing)} would be installed with uv, "
            "which is not on PATH (https://docs.astral.sh/uv/)"
        )
    done = subprocess.run([uv, "python", "install", *missing], check=False)
    if done.returncode != 0:
        raise StateError(f"`uv python install {' '.join(missing)}` failed ({done.returncode})")
    discover_here.cache_clear()
    return missing
