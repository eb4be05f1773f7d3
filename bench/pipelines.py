"""Generators of benchmark pipelines and of the repositories that hold them.

Everything here is deterministic: the same arguments give byte-identical files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "localci-bench",
    "GIT_AUTHOR_EMAIL": "bench@localci.invalid",
    "GIT_COMMITTER_NAME": "localci-bench",
    "GIT_COMMITTER_EMAIL": "bench@localci.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
# Skipped when an example is copied: what a previous run or an editor leaves behind.
_SCRATCH = frozenset(
    {".venv", ".localci", ".gitlab-ci-local", "__pycache__", ".pytest_cache", "models", ".coverage"}
)


@dataclass(frozen=True, slots=True)
class TrivialJob:
    """One `echo` job of a synthetic pipeline, in the order GitLab would list it."""

    name: str
    stage: str
    command: str


def trivial_jobs(jobs_per_stage: int, stages: int) -> list[TrivialJob]:
    """`stages` stages of `jobs_per_stage` jobs that each echo one line."""
    return [
        TrivialJob(f"s{s}-job{j}", f"s{s}", f"echo stage {s} job {j}")
        for s in range(stages)
        for j in range(jobs_per_stage)
    ]


def trivial_yaml(jobs: Sequence[TrivialJob]) -> str:
    """A stage-mode `.gitlab-ci.yml` for `jobs` (no needs, no rules)."""
    stages = list(dict.fromkeys(job.stage for job in jobs))
    lines = [f"stages: [{', '.join(stages)}]", ""]
    for job in jobs:
        lines += [f"{job.name}:", f"  stage: {job.stage}", f'  script: ["{job.command}"]', ""]
    return "\n".join(lines)


def bash_script(jobs: Iterable[TrivialJob]) -> str:
    """The jobs' commands as one bash script, in order: the by-hand baseline."""
    return "set -eo pipefail\n" + "".join(f"{job.command}\n" for job in jobs)


def dag_yaml(total_jobs: int, *, stages: int = 10, fan_in: int = 3) -> str:
    """A pipeline of `total_jobs` jobs over `stages` stages in which every job after the first
    stage `needs` `fan_in` jobs of the stage before; every fourth job has `rules` and every
    third `extends` a template, so loading and planning do what they do on real pipelines.
    """
    per_stage = max(1, total_jobs // stages)
    names = [[f"s{s}-job{j}" for j in range(per_stage)] for s in range(stages)]
    lines = [
        f"stages: [{', '.join(f's{s}' for s in range(stages))}]",
        "",
        "variables:",
        '  DEPLOY_TARGET: "staging"',
        "",
        ".template:",
        "  variables:",
        '    FROM_TEMPLATE: "yes"',
        "  retry: 1",
        "",
    ]
    count = 0
    for s in range(stages):
        for j, name in enumerate(names[s]):
            lines += [f"{name}:", f"  stage: s{s}"]
            if count % 3 == 0:
                lines.append("  extends: .template")
            if s > 0:
                needed = {names[s - 1][(j + k) % per_stage] for k in range(fan_in)}
                lines.append(f"  needs: [{', '.join(sorted(needed))}]")
            if count % 4 == 0:
                lines += [
                    "  rules:",
                    '    - if: $CI_COMMIT_BRANCH == "main" || $DEPLOY_TARGET =~ /^stag/',
                    "    - when: never",
                ]
            lines += [f'  script: ["echo {name}"]', ""]
            count += 1
    return "\n".join(lines)


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    out = subprocess.run(
        ["git", *args], cwd=repo, env={**env, **GIT_ENV}, check=True, capture_output=True
    )
    return out.stdout.decode().strip()


def make_git_repo(root: Path, files: Mapping[str, str], *, branch: str = "main") -> Path:
    """A committed repository at `root` with an origin remote whose HEAD is `branch`."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", branch)
    git(root, "config", "commit.gpgsign", "false")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    commit_all(root, "bench")
    git(root, "remote", "add", "origin", "git@gitlab.example.com:bench/project.git")
    git(root, "update-ref", f"refs/remotes/origin/{branch}", "HEAD")
    git(root, "symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{branch}")
    return root


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)


def copy_example(source: Path, dest: Path) -> Path:
    """Copy an example directory, leaving out what earlier runs may have left in it."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _SCRATCH or n.endswith(".pyc")}

    shutil.copytree(source, dest, ignore=ignore)
    return dest
