"""What a job's `paths`, `untracked` and `exclude` select from its workspace, as
gitlab-runner's archiver does (docs/SEMANTICS.md §13, §14), for caches, artifacts and reports."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localci.errors import ConfigError, GitError, Problem
from localci.git import run_git
from localci.globs import doublestar_match, glob_tree, project_relative_pattern
from localci.plan.variables import expand_runner


class TransferError(ConfigError):
    """A cache or artifacts definition the job cannot use (bad key, path outside the project)."""


def transfer_error(job: str, message: str, hint: str | None = None) -> TransferError:
    return TransferError(Problem(message, job=job, hint=hint))


@dataclass(frozen=True, slots=True)
class Selection:
    """Relative paths (files, symlinks, directories) chosen from a workspace, sorted."""

    paths: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def select_paths(
    root: Path,
    patterns: Sequence[str],
    env: Mapping[str, str],
    *,
    job: str,
    what: str,
    untracked: bool = False,
    exclude: Sequence[str] = (),
) -> Selection:
    """What gitlab-runner's archiver takes for `paths`/`untracked`/`exclude` (§13, §14).

    Patterns are runner-expanded with `env`, may name `$CI_PROJECT_DIR/...`, and are doublestar
    globs; a matched directory is taken recursively, symlinks are taken as links and never
    followed. `exclude` patterns drop the paths they match (not what lies below them).
    TransferError (naming `job` and `what`) when a pattern leaves the project directory.
    """
    found: set[str] = set()
    warnings: list[str] = []
    for raw in patterns:
        pattern = _project_pattern(root, raw, env, job=job, what=what)
        if pattern is None:
            continue
        matches = _glob(root, pattern)
        if not matches:
            warnings.append(f"{raw}: no matching files")
        for match in matches:
            found.update(_expand_match(root, match))
    if untracked:
        listed, problem = _untracked(root)
        warnings.extend(problem)
        for path in listed:
            found.update(_expand_match(root, path))
    drop = [p for p in (_exclude_pattern(root, e, env) for e in exclude) if p]
    kept = sorted(
        p
        for p in found
        if p not in (".", ".git")
        and not p.startswith(".git/")
        and not any(doublestar_match(e, p) for e in drop)
    )
    return Selection(tuple(kept), tuple(warnings))


def check_patterns(
    root: Path, patterns: Sequence[str], env: Mapping[str, str], *, job: str, what: str
) -> None:
    """Refuse patterns that leave the project (before the job runs, so it fails fast)."""
    for raw in patterns:
        _project_pattern(root, raw, env, job=job, what=what)


def _project_pattern(
    root: Path, raw: str, env: Mapping[str, str], *, job: str, what: str
) -> str | None:
    expanded = expand_runner(raw, env)
    if not expanded.strip():
        return None
    try:
        pattern = project_relative_pattern(root, expanded)
    except ValueError:
        raise transfer_error(
            job,
            f"{what} path {raw!r} is outside the project directory",
            "paths are relative to $CI_PROJECT_DIR and may not leave it",
        ) from None
    _refuse_symlink_escape(root, pattern, raw, job=job, what=what)
    return pattern


def _refuse_symlink_escape(root: Path, pattern: str, raw: str, *, job: str, what: str) -> None:
    """A literal directory of the pattern that is a symlink leading out of the project."""
    if pattern == ".":
        return
    current = root
    for segment in pattern.split("/"):
        if any(c in segment for c in "*?[{\\"):
            return
        current = current / segment
        if not current.is_symlink():
            if not current.is_dir():
                return
            continue
        target = Path(os.path.realpath(current))
        if not _inside(target, root):
            raise transfer_error(
                job,
                f"{what} path {raw!r} goes through symlink {current.relative_to(root)} "
                f"to {target}, outside the project directory",
            )
        return


def _inside(path: Path, root: Path) -> bool:
    real_root = Path(os.path.realpath(root))
    return path == real_root or real_root in path.parents


def _exclude_pattern(root: Path, raw: str, env: Mapping[str, str]) -> str | None:
    try:
        return project_relative_pattern(root, expand_runner(raw, env))
    except ValueError:
        return None  # an exclude outside the project can exclude nothing


def _glob(root: Path, pattern: str) -> list[str]:
    try:
        return glob_tree(root, pattern)
    except ValueError:
        return []  # a malformed pattern matches nothing, as in the runner


def _expand_match(root: Path, rel: str) -> list[str]:
    if rel == ".":
        return _walk(root, "")
    try:
        st = os.lstat(root / rel)
    except OSError:
        return []
    if stat.S_ISDIR(st.st_mode):
        return [rel, *_walk(root, rel)]
    return [rel]


def _walk(root: Path, rel: str) -> list[str]:
    found: list[str] = []
    pending = [rel]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(f"{root}/{current}" if current else root) as scan:
                items = list(scan)
        except OSError:
            continue
        for item in items:
            path = f"{current}/{item.name}" if current else item.name
            found.append(path)
            if item.is_dir(follow_symlinks=False):
                pending.append(path)
    return found


def _untracked(root: Path) -> tuple[list[str], list[str]]:
    """`git ls-files -o` as the runner runs it: ignored files are included."""
    try:
        proc = run_git(root, "ls-files", "-o", "-z")
    except GitError as exc:
        return [], [f"untracked files cannot be listed: {exc}"]
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        return [], [f"untracked files cannot be listed: {detail}"]
    paths = (os.fsdecode(raw).rstrip("/") for raw in proc.stdout.split(b"\0") if raw)
    return [p for p in paths if safe_relative(p)], []


def report_files(
    root: Path, patterns: Sequence[str], env: Mapping[str, str], job: str
) -> Selection:
    """Files named by an `artifacts:reports:*` entry (directories are not reports)."""
    selection = select_paths(root, patterns, env, job=job, what="artifacts:reports")
    files = tuple(
        p for p in selection.paths if (root / p).is_file() and not (root / p).is_symlink()
    )
    return Selection(files, selection.warnings)


def safe_relative(path: str) -> bool:
    """A relative path that names something inside its root (no `..`, no empty part)."""
    if not path or path.startswith("/") or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))
