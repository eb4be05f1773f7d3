"""localci's own git commands: one runner and one environment policy for all of them.

Jobs get their environment elsewhere; this is only for the git that localci itself runs to
read facts, snapshot the working tree, list files and fetch included projects."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from localci.errors import GitError

__all__ = ["REDIRECTING_VARIABLES", "git_environment", "git_output", "git_process", "run_git"]

# Variables that point git at another repository, work tree, index, object store or config
# than the directory it runs in: git's own list (`git rev-parse --local-env-vars`, which git
# clears for the same reason when it enters a submodule) plus GIT_NAMESPACE. git sets them for
# hooks and `git -c` passes them on, so inherited they would redirect every command we run.
# Everything else stays, so the user's settings (GIT_SSH_COMMAND, GIT_ASKPASS, GIT_SSL_CAINFO,
# GIT_CONFIG_GLOBAL, GIT_EXEC_PATH...) apply as they do to any git command the user types.
REDIRECTING_VARIABLES = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_CONFIG",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
        "GIT_DIR",
        "GIT_GRAFT_FILE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_NAMESPACE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_OBJECT_DIRECTORY",
        "GIT_PREFIX",
        "GIT_REPLACE_REF_BASE",
        "GIT_SHALLOW_FILE",
        "GIT_WORK_TREE",
    }
)
# GIT_CONFIG_COUNT's numbered pairs go with it.
_REDIRECTING_PREFIXES = ("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")

# Options for every command: paths as bytes, and no file-system monitor daemon started in the
# user's repository (or in a workspace) on localci's behalf.
_OPTIONS = ("-c", "core.quotepath=off", "-c", "core.fsmonitor=false")


def git_environment(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of localci's git commands: `base` (default: ours) without the
    redirecting variables, in the C locale (stable messages to parse), never prompting for a
    password and taking no optional locks (never contending with the user's own git); then
    `extra`, which may set GIT_DIR and friends on purpose."""
    inherited = os.environ if base is None else base
    env = {
        key: value
        for key, value in inherited.items()
        if key not in REDIRECTING_VARIABLES and not key.startswith(_REDIRECTING_PREFIXES)
    }
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    env.update(extra or {})
    return env


def run_git(
    cwd: Path | None,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` in `cwd` with localci's environment (`env` added on top) and return the
    finished process, whatever its exit status; GitError when git is missing, cannot be
    started, or outlives `timeout` seconds."""
    try:
        return subprocess.run(
            ["git", *_OPTIONS, *args],
            cwd=cwd,
            env=git_environment(env),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (not found on PATH); localci needs it") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"`git {args[0]}` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise GitError(f"git could not be run in {cwd}: {exc}") from None


def git_process(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    """A running `git ARGS` in `cwd` with localci's environment, stdin and stdout piped (for
    `cat-file --batch` and the like); GitError when git cannot be started."""
    try:
        return subprocess.Popen(
            ["git", *_OPTIONS, *args],
            cwd=cwd,
            env=git_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (not found on PATH); localci needs it") from None
    except OSError as exc:
        raise GitError(f"git could not be run in {cwd}: {exc}") from None


def git_output(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> bytes:
    """The standard output of `git ARGS`; GitError with git's message when it fails."""
    proc = run_git(cwd, *args, env=env, stdin=stdin)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise GitError(f"`git {' '.join(args)}` failed in {cwd}: {detail}")
    return proc.stdout
