"""A slot's own .git: HEAD, refs and config as a GitLab checkout has them, objects borrowed.

The user's objects are reached through `alternates`, read-only; nothing is ever written into
the user's repository.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from localci.errors import GitError
from localci.execute.snapshot import Snapshot
from localci.execute.workspace_files import remove_path


def is_unborn(sha: str) -> bool:
    return not sha.strip("0")


_BAD_REF = re.compile(r"(^|/)\.|\.\.|[\x00-\x20\x7f~^:?*\[\\]|@\{|//|/$|\.lock(/|$)|^@$|\.$|^/")


def _valid_branch(name: str) -> bool:
    return bool(name) and not _BAD_REF.search(name) and not name.startswith("-")


def _objects_dir(git_dir: Path) -> Path:
    if git_dir.is_file():  # a `.git` file of a linked worktree or submodule
        text = git_dir.read_text().strip().removeprefix("gitdir:").strip()
        git_dir = git_dir.parent / text
    common = git_dir
    commondir = git_dir / "commondir"  # linked worktrees keep objects in the main .git
    if commondir.is_file():
        common = git_dir / commondir.read_text().strip()
    return (common / "objects").resolve()


_GIT_SUBDIRS = ("objects/info", "objects/pack", "refs/heads", "refs/tags", "info")


def git_dir_files(
    snapshot: Snapshot, *, ref: str, ref_is_tag: bool, user_git_dir: Path | None
) -> dict[str, str]:
    """The files of a workspace's .git (relative path -> content): HEAD, refs, config, and
    `alternates` borrowing the user's objects."""
    if not is_unborn(snapshot.sha) and user_git_dir is None:
        raise GitError(f"commit {snapshot.sha} given but the project has no git directory")
    files = {"config": _git_config(snapshot.sha)}
    if user_git_dir is not None:
        objects = _objects_dir(user_git_dir)
        files["objects/info/alternates"] = f"{objects}\n"
        shallow = objects.parent / "shallow"
        if shallow.is_file():
            files["shallow"] = shallow.read_text()
    head, refs = _head_and_refs(snapshot, ref=ref, ref_is_tag=ref_is_tag)
    files["packed-refs"] = "".join(f"{sha} {name}\n" for name, sha in refs.items())
    files["HEAD"] = head + "\n"
    return files


def digest_of(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0{files[name]}".encode())
    return digest.hexdigest()


def write_git_dir(git_dir: Path, files: Mapping[str, str]) -> None:
    """A fresh .git: whatever a job committed, configured or hooked is discarded."""
    remove_path(git_dir)
    for sub in _GIT_SUBDIRS:
        (git_dir / sub).mkdir(parents=True)
    for name, text in files.items():
        (git_dir / name).write_text(text)


def _git_config(sha: str) -> str:
    sha256 = len(sha) == 64
    lines = [
        "[core]",
        f"\trepositoryformatversion = {1 if sha256 else 0}",
        "\tfilemode = true",
        "\tbare = false",
        "\tlogallrefupdates = true",
    ]
    if sha256:
        lines += ["[extensions]", "\tobjectformat = sha256"]
    return "\n".join(lines) + "\n"


def _head_and_refs(snapshot: Snapshot, *, ref: str, ref_is_tag: bool) -> tuple[str, dict[str, str]]:
    """HEAD's content and the refs a GitLab checkout would have (origin/* branches, tags)."""
    refs: dict[str, str] = {}
    for r in snapshot.refs:
        if r.name.startswith("refs/heads/"):
            refs["refs/remotes/origin/" + r.name.removeprefix("refs/heads/")] = r.sha
        else:
            refs[r.name] = r.sha
    sha = snapshot.sha
    valid = _valid_branch(ref)
    branch = ref if valid else "localci"
    if is_unborn(sha):
        return f"ref: refs/heads/{branch}", refs
    if ref_is_tag:
        tag = f"refs/tags/{ref}"
        if valid and not any(r.name == tag and sha in (r.sha, r.peeled) for r in snapshot.refs):
            _add_ref(refs, tag, sha)  # a simulated tag: lightweight, on the commit under test
        return sha, refs
    refs[f"refs/heads/{branch}"] = sha
    _add_ref(refs, f"refs/remotes/origin/{branch}", sha)
    return f"ref: refs/heads/{branch}", refs


def _add_ref(refs: dict[str, str], name: str, sha: str) -> None:
    # "a" and "a/b" cannot both exist (file vs directory); the simulated ref loses.
    clash = any(other.startswith(name + "/") or name.startswith(other + "/") for other in refs)
    if not clash:
        refs[name] = sha
