"""Test helpers: committed git repositories in tmp dirs, and the CLI run in-process or for real."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from click.testing import CliRunner


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def write_files(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def make_repo(
    root: Path,
    files: Mapping[str, str],
    *,
    branch: str = "main",
    remote: str | None = "git@gitlab.example.com:group/project.git",
) -> Path:
    """A git repository with `files` committed on `branch` (origin/<branch> = HEAD)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", branch)
    git(root, "config", "commit.gpgsign", "false")
    write_files(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial commit")
    if remote:
        git(root, "remote", "add", "origin", remote)
        git(root, "update-ref", f"refs/remotes/origin/{branch}", "HEAD")
        git(root, "symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{branch}")
    return root


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(directory: Path, *args: str) -> Result:
    """Run localci in-process (fast) with `-C directory`."""
    from localci.cli.root import run

    runner = CliRunner()
    with runner.isolation() as (out, err, *_):
        code = run(["-C", str(directory), *args])
        sys.stdout.flush()
        sys.stderr.flush()
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


def run_localci(
    directory: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 240,
    stdin: str | None = None,
) -> Result:
    """Run the real `localci` console script in a subprocess."""
    exe = Path(sys.executable).with_name("localci")
    cmd: Sequence[str] = [str(exe)] if exe.exists() else [sys.executable, "-m", "localci"]
    proc = subprocess.run(
        [*cmd, *args],
        check=False,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=stdin,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Hang(Exception):
    """A `deadline` expired."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Turn a hang into a failure (SIGALRM also interrupts a long regular-expression match).
    Main thread only."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def processes_with(marker: str) -> list[int]:
    """The pids of the processes whose command line contains `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(proc.name))
    return found
