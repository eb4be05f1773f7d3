"""The git plumbing behind the pipeline context: each function runs one git process and parses it.

Everything goes through `run`, so a test can count the processes (the context's budget is six).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from localci.errors import GitError
from localci.git import run_git


@dataclass(frozen=True, slots=True)
class GitObject:
    """One object read by `git cat-file --batch`."""

    sha: str
    kind: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """The fields of a commit object the CI variables use."""

    author: str
    timestamp: str
    message: str


@dataclass(frozen=True, slots=True)
class Repo:
    """The git facts read once from a repository."""

    root: Path
    config: Mapping[str, str]
    refs: Mapping[str, str]
    symrefs: Mapping[str, str]
    head_branch: str | None
    objects: Mapping[str, GitObject | None]

    @property
    def head(self) -> GitObject | None:
        return self.objects.get("HEAD")

    def upstream_remote(self, branch: str) -> str:
        remote = self.config.get(f"branch.{branch}.remote", "")
        return remote if remote and remote != "." else "origin"


def run(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_git(cwd, *args, stdin=stdin)


def error_text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"


def not_a_repo(proc: subprocess.CompletedProcess[bytes]) -> bool:
    return proc.returncode == 128 and b"not a git repository" in proc.stderr


def git_paths(root: Path, *args: str) -> list[str]:
    proc = run(root, *args)
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed in {root}: {error_text(proc)}")
    return split_paths(proc.stdout)


def split_paths(output: bytes) -> list[str]:
    return [os.fsdecode(item) for item in output.split(b"\0") if item]


def read_head(root: Path) -> tuple[bool, str | None]:
    """(is a repository, checked-out branch or None when detached). Works on unborn branches."""
    proc = run(root, "symbolic-ref", "-q", "HEAD")
    if proc.returncode == 0:
        return True, proc.stdout.decode("utf-8", "replace").strip().removeprefix("refs/heads/")
    if proc.returncode == 1:
        return True, None
    if not_a_repo(proc):
        return False, None
    raise GitError(f"cannot read the git repository at {root}: {error_text(proc)}")


def read_config(root: Path) -> dict[str, str]:
    proc = run(root, "config", "-z", "--list")
    if proc.returncode != 0:
        return {}
    entries: dict[str, str] = {}
    for item in proc.stdout.decode("utf-8", "replace").split("\0"):
        key, _, value = item.partition("\n")
        if key:
            entries[key] = value
    return entries


def list_refs(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    proc = run(
        root,
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(symref)",
        "refs/heads",
        "refs/remotes",
    )
    if proc.returncode != 0:
        raise GitError(f"could not list the branches of {root}: {error_text(proc)}")
    refs: dict[str, str] = {}
    symrefs: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "replace").split("\n"):
        if line:
            name, sha, target = line.split("\0")
            refs[name] = sha
            if target:
                symrefs[name] = target
    return refs, symrefs


def read_objects(root: Path, names: Sequence[str]) -> dict[str, GitObject | None]:
    """Resolve and read several objects in one `git cat-file --batch` process."""
    stdin = "".join(f"{name}\n" for name in names).encode()
    proc = run(root, "cat-file", "--batch", stdin=stdin)
    if proc.returncode != 0:
        raise GitError(f"could not read objects of {root}: {error_text(proc)}")
    data, pos = proc.stdout, 0
    found: dict[str, GitObject | None] = {}
    for name in names:
        end = data.index(b"\n", pos)
        header = data[pos:end].decode("utf-8", "replace")
        pos = end + 1
        parts = header.split(" ")
        if len(parts) != 3 or not parts[2].isdigit():
            found[name] = None  # "<name> missing" or "<name> ambiguous"
            continue
        size = int(parts[2])
        found[name] = GitObject(parts[0], parts[1], data[pos : pos + size])
        pos += size + 1
    return found


def branch_containing_head(root: Path) -> str:
    proc = run(root, "for-each-ref", "--contains", "HEAD", "--format=%(refname)", "refs/heads")
    if proc.returncode != 0:
        raise GitError(f"could not find the branch of the detached HEAD: {error_text(proc)}")
    names = [
        line.removeprefix("refs/heads/")
        for line in proc.stdout.decode("utf-8", "replace").split("\n")
        if line
    ]
    if len(names) == 1:
        return names[0]
    found = (
        f"{len(names)} local branches contain it ({', '.join(names[:5])})"
        if names
        else "no local branch contains it"
    )
    raise GitError(
        f"HEAD is detached and {found}; pass --branch NAME or --tag NAME to choose the ref"
    )


def object_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.partition(b"\n\n")[0].split(b"\n"):
        if line and not line.startswith(b" "):
            key, _, value = line.decode("utf-8", "replace").partition(" ")
            headers.setdefault(key, value)
    return headers


def parse_commit(raw: bytes) -> Commit:
    headers = object_headers(raw)
    author = headers.get("author", "").rsplit(" ", 2)[0]
    try:
        epoch = int(headers.get("committer", "").rsplit(" ", 2)[1])
    except (IndexError, ValueError):
        epoch = 0
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    message = decode_text(raw.partition(b"\n\n")[2], headers.get("encoding", "utf-8"))
    return Commit(author=author, timestamp=stamp, message=message)


def decode_text(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        return data.decode("utf-8", "replace")


def chomp(text: str) -> str:
    for ending in ("\r\n", "\n", "\r"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


def walk_files(root: Path) -> list[str]:
    files: list[str] = []
    for current, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".localci")]
        base = Path(current).relative_to(root)
        files.extend((base / name).as_posix() for name in names)
    return sorted(files)
