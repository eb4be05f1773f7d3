"""Keeps a job's git away from the user's repository.

Git exports repository-local variables to hooks (GIT_DIR, GIT_INDEX_FILE, GIT_WORK_TREE...),
so a localci started from a hook or a worktree would hand them to every job: a job's
`git add -A` would then stage into the user's index. `git rev-parse --local-env-vars` names
exactly those variables; they are dropped from what the job inherits, and
GIT_CEILING_DIRECTORIES stops git's upward search at the job's build directory, so a job that
deletes its own .git finds no repository at all rather than one of the user's.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from localci.errors import GitError
from localci.git import REDIRECTING_VARIABLES, run_git

# git's repository-local variables as localci.git lists them, for when git cannot be asked.
KNOWN_LOCAL_ENV_VARS = REDIRECTING_VARIABLES


def without_user_repository(
    inherited: Mapping[str, str], ceiling: Path, local_vars: frozenset[str]
) -> dict[str, str]:
    """`inherited` minus git's repository-local variables (and the numbered GIT_CONFIG_KEY_n /
    GIT_CONFIG_VALUE_n that GIT_CONFIG_COUNT enables), with `ceiling` first in
    GIT_CEILING_DIRECTORIES."""
    env = {
        key: value
        for key, value in inherited.items()
        if key not in local_vars and not key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    existing = env.get("GIT_CEILING_DIRECTORIES", "")
    env["GIT_CEILING_DIRECTORIES"] = f"{ceiling}:{existing}" if existing else str(ceiling)
    return env


@functools.cache
def local_env_vars() -> frozenset[str]:
    """What this machine's git lists as repository-local, plus localci.git's list (for when
    git cannot be asked)."""
    try:
        proc = run_git(None, "rev-parse", "--local-env-vars", timeout=10)
        listed = os.fsdecode(proc.stdout).split() if proc.returncode == 0 else []
    except GitError:
        listed = []
    return frozenset(listed).union(KNOWN_LOCAL_ENV_VARS)


def job_inherited_env(inherited: Mapping[str, str], builds_dir: Path) -> dict[str, str]:
    """The environment a job inherits from the user's shell, cut off from the user's repo."""
    return without_user_repository(inherited, builds_dir, local_env_vars())
