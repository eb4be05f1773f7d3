"""The runner's Git settings applied to a job workspace: `GIT_STRATEGY`, `GIT_CHECKOUT`,
`GIT_DEPTH`, `GIT_SUBMODULE_STRATEGY`/`_PATHS`/`_DEPTH`, `GIT_LFS_SKIP_SMUDGE`.

The workspace itself is prepared by localci.execute.workspace (a copy of the working tree with a
.git borrowing the user's objects); this module only narrows it to what GitLab's runner would
have fetched, and fills submodules from the user's own submodule checkouts (never the network).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localci.execute.snapshot import Snapshot
from localci.execute.workspace import Workspace, clear_workspace, prepare_workspace
from localci.files import remove_tree
from localci.git import git_output, run_git

# GitLab's "Git shallow clone" setting of a new project (since 14.7, was 50 from 12.0).
DEFAULT_DEPTH = 20
STRATEGIES = ("clone", "fetch", "none", "empty")
SUBMODULE_STRATEGIES = ("none", "normal", "recursive")
# Runner variables localci accepts but cannot honour, with what happens instead.
IGNORED = {
    "GIT_CLEAN_FLAGS": "localci cleans with -ffdx, or not at all with `none`",
    "GIT_FETCH_EXTRA_FLAGS": "nothing is fetched: the workspace is a copy of your working tree",
    "GIT_CLONE_PATH": "the project directory is localci's workspace",
    "GIT_SUBMODULE_FORCE_HTTPS": "submodules come from your checkouts, not the network",
}
_DEFAULTS = {"GIT_FETCH_EXTRA_FLAGS": "--prune --quiet"}
_CLEAN_FLAGS_KNOWN = ("-ffdx", "none")
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class GitSettings:
    """The Git settings of one job, as the runner reads them from its variables."""

    strategy: str = "fetch"
    checkout: bool = True
    clean: bool = True  # GIT_CLEAN_FLAGS none: files left by earlier jobs of the slot stay
    depth: int = 0  # 0: the full history
    submodule_strategy: str = "none"
    submodule_paths: tuple[str, ...] = ()
    submodule_depth: int = 0
    lfs_skip_smudge: bool = False
    warnings: tuple[str, ...] = ()


def git_settings(variables: Mapping[str, str], *, full_history: bool = False) -> GitSettings:
    """Read the job's `GIT_*` variables; unknown values fall back to GitLab's defaults."""
    warnings: list[str] = []
    strategy = variables.get("GIT_STRATEGY", "fetch").strip().lower() or "fetch"
    if strategy not in STRATEGIES:
        warnings.append(f"GIT_STRATEGY={strategy!r} is not a strategy; using fetch")
        strategy = "fetch"
    submodules = variables.get("GIT_SUBMODULE_STRATEGY", "none").strip().lower() or "none"
    if submodules not in SUBMODULE_STRATEGIES:
        warnings.append(f"GIT_SUBMODULE_STRATEGY={submodules!r} is not a strategy; using none")
        submodules = "none"
    depth = _depth(variables, "GIT_DEPTH", DEFAULT_DEPTH, warnings)
    if full_history:
        depth = 0
    clean_flags = variables.get("GIT_CLEAN_FLAGS", "-ffdx").strip() or "-ffdx"
    for name, effect in IGNORED.items():
        value = variables.get(name)
        if name == "GIT_CLEAN_FLAGS" and clean_flags in _CLEAN_FLAGS_KNOWN:
            continue
        if value is not None and value.strip() and value.strip() != _DEFAULTS.get(name):
            warnings.append(f"{name}={value!r} is ignored: {effect}")
    flags = variables.get("GIT_SUBMODULE_UPDATE_FLAGS", "")
    if "--remote" in flags.split():
        warnings.append(
            "GIT_SUBMODULE_UPDATE_FLAGS --remote is ignored: submodules are your checkouts"
        )
    return GitSettings(
        strategy=strategy,
        checkout=variables.get("GIT_CHECKOUT", "true").strip().lower() != "false",
        clean=clean_flags != "none",
        depth=depth,
        submodule_strategy=submodules,
        submodule_paths=tuple(variables.get("GIT_SUBMODULE_PATHS", "").split()),
        submodule_depth=_depth(variables, "GIT_SUBMODULE_DEPTH", depth, warnings),
        lfs_skip_smudge=variables.get("GIT_LFS_SKIP_SMUDGE", "").strip() in ("1", "true"),
        warnings=tuple(warnings),
    )


def _depth(variables: Mapping[str, str], name: str, default: int, warnings: list[str]) -> int:
    raw = variables.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        warnings.append(f"{name}={raw!r} is not a number; using {default or 'the full history'}")
        return default
    return max(value, 0)


# ------------------------------------------------------------------------------ the workspace


def prepare_job_workspace(
    ws: Workspace,
    snapshot: Snapshot,
    settings: GitSettings,
    *,
    ref: str,
    ref_is_tag: bool,
    user_git_dir: Path | None,
    log: Log,
) -> None:
    """The job's project directory as GitLab's runner would leave it for these settings."""
    if settings.strategy in ("none", "empty"):
        log(f"Skipping Git repository setup (GIT_STRATEGY={settings.strategy})")
        clear_workspace(ws)
        return
    # An unborn branch has no history to cut.
    shallow = bool(settings.depth and snapshot.sha.strip("0") and user_git_dir is not None)
    key = (_refs_key(snapshot, ref), snapshot.sha, settings.depth)
    with _VISIBLE_LOCK:
        known = _SHALLOW.get(key) if shallow else None
    # Known shallow files go into the .git as it is written, so that the next job of the slot
    # finds it untouched instead of rewriting it.
    extra = {"shallow": known[0], "packed-refs": known[1]} if known else None
    prepare_workspace(
        ws,
        snapshot,
        ref=ref,
        ref_is_tag=ref_is_tag,
        user_git_dir=user_git_dir,
        git_files_extra=extra,
        clean=settings.clean,
    )
    if user_git_dir is None or not (ws.project_dir / ".git").is_dir():
        return
    if shallow and (
        known or make_shallow(ws.project_dir, settings.depth, head=snapshot.sha, cache_key=key[0])
    ):
        log(f"Shallow history: the last {settings.depth} commits (GIT_DEPTH)")
    if not settings.checkout:
        log("Skipping Git checkout (GIT_CHECKOUT=false)")
        _remove_checkout(ws.project_dir)
        return
    if settings.submodule_strategy != "none":
        recursive = settings.submodule_strategy == "recursive"
        copy_submodules(
            snapshot.root,
            ws.project_dir,
            paths=settings.submodule_paths,
            recursive=recursive,
            depth=settings.submodule_depth,
            log=log,
        )
    if settings.lfs_skip_smudge:
        _lfs_pointers(ws.project_dir, log)


def _refs_key(snapshot: Snapshot, ref: str) -> str:
    """Every job of a pipeline gets the same shallow .git: what it depends on, as a key."""
    return f"{snapshot.root}|{ref}|{hash(snapshot.refs)}"


def _remove_checkout(project_dir: Path) -> None:
    for item in os.scandir(project_dir):
        if item.name == ".git":
            continue
        if item.is_dir(follow_symlinks=False):
            remove_tree(Path(item.path))
        else:
            Path(item.path).unlink()
    (project_dir / ".git" / "index").unlink(missing_ok=True)


# ------------------------------------------------------------------------------ shallow history


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return git_output(cwd, *args, stdin=stdin)


def _parents(repo: Path, commits: Iterable[str]) -> dict[str, list[str]]:
    wanted = list(commits)
    if not wanted:
        return {}
    out = _git(
        repo, "rev-list", "--parents", "--no-walk", "--stdin", stdin="\n".join(wanted).encode()
    )
    return _parent_map(out)


def _parent_map(output: bytes) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in output.decode().splitlines():
        commit, *parents = line.split()
        found[commit] = parents
    return found


_VISIBLE_LOCK = threading.Lock()


def visible_commits(
    repo: Path, depth: int, *, head: str | None = None
) -> tuple[frozenset[str], frozenset[str]]:
    """The commits `git fetch --depth DEPTH` gives for HEAD, and the shallow boundary among them
    (commits at distance DEPTH-1 whose parents are cut off); the boundary is empty when the
    whole history is within reach."""
    head = head or _git(repo, "rev-parse", "HEAD").decode().strip()
    return _walk(repo, head, depth)


def _walk(repo: Path, head: str, depth: int) -> tuple[frozenset[str], frozenset[str]]:
    known = _parent_map(_git(repo, "rev-list", "--parents", f"--max-count={depth * 4}", head))
    visible = {head}
    level = [head]
    for _ in range(depth - 1):
        missing = [c for c in level if c not in known]
        known.update(_parents(repo, missing))
        following = []
        for commit in level:
            for parent in known.get(commit, []):
                if parent not in visible:
                    visible.add(parent)
                    following.append(parent)
        level = following
    missing = [c for c in level if c not in known]
    known.update(_parents(repo, missing))
    return frozenset(visible), frozenset(c for c in level if known.get(c))


def make_shallow(
    repo: Path, depth: int, *, head: str | None = None, cache_key: str | None = None
) -> bool:
    """Cut the workspace's history to `depth` commits from HEAD (and its refs to what such a
    fetch brings: refs and tags pointing into that history). False if nothing was cut."""
    key = (cache_key, head or "", depth) if cache_key and head else None
    with _VISIBLE_LOCK:
        files = _SHALLOW.get(key) if key is not None else None
    if files is None:
        files = _shallow_files(repo, depth, head)
        if key is not None:
            with _VISIBLE_LOCK:
                _SHALLOW[key] = files
    if not files:
        return False
    shallow_text, refs_text = files
    (repo / ".git" / "shallow").write_text(shallow_text)
    (repo / ".git" / "packed-refs").write_text(refs_text)
    return True


# (shallow file, packed-refs) of a workspace for (objects, HEAD, depth); () when nothing is cut
_SHALLOW: dict[tuple[str, str, int], tuple[str, str] | tuple[()]] = {}


def _shallow_files(repo: Path, depth: int, head: str | None) -> tuple[str, str] | tuple[()]:
    visible, boundary = visible_commits(repo, depth, head=head)
    if not boundary:
        return ()
    shallow = repo / ".git" / "shallow"
    earlier = set(shallow.read_text().split()) if shallow.is_file() else set()
    lines = sorted(boundary | (earlier & visible))
    refs = _git(repo, "for-each-ref", "--format=%(objectname) %(*objectname) %(refname)")
    kept = []
    for line in refs.decode().splitlines():
        parts = line.split()
        sha, peeled, name = (parts[0], "", parts[1]) if len(parts) == 2 else parts
        if (peeled or sha) in visible:
            kept.append(f"{sha} {name}\n" + (f"^{peeled}\n" if peeled else ""))
    header = "# pack-refs with: peeled fully-peeled \n"
    return "".join(f"{sha}\n" for sha in lines), header + "".join(kept)


# ------------------------------------------------------------------------------ submodules


def _submodule_paths(repo: Path) -> list[str]:
    out = _git(repo, "ls-files", "-s", "-z")
    paths = []
    for record in out.split(b"\0"):
        if record.startswith(b"160000 "):
            paths.append(os.fsdecode(record.split(b"\t", 1)[1]))
    return paths


def _selected(path: str, patterns: tuple[str, ...]) -> bool:
    """GIT_SUBMODULE_PATHS: pathspecs, `:(exclude)path` / `:!path` to leave one out."""
    include = [p for p in patterns if not p.startswith((":(exclude)", ":!", ":^"))]
    exclude = [
        p.removeprefix(":(exclude)").removeprefix(":!").removeprefix(":^")
        for p in patterns
        if p not in include
    ]

    def hit(pattern: str) -> bool:
        pattern = pattern.rstrip("/")
        return path == pattern or path.startswith(pattern + "/")

    if include and not any(hit(p) for p in include):
        return False
    return not any(hit(p) for p in exclude)


def copy_submodules(
    user_repo: Path,
    ws_repo: Path,
    *,
    paths: tuple[str, ...] = (),
    recursive: bool,
    depth: int,
    log: Log,
) -> None:
    """Fill the workspace's submodule directories from the user's submodule checkouts: their
    working trees (tracked and untracked-not-ignored files, edits included) and a .git that
    borrows their objects. Nothing is fetched."""
    for path in _submodule_paths(user_repo):
        if not _selected(path, paths):
            continue
        source = user_repo / path
        if not (source / ".git").exists():
            log(
                f"WARNING: submodule {path} is not checked out in {user_repo}; it stays empty "
                "(run `git submodule update --init` there)"
            )
            continue
        target = ws_repo / path
        _copy_tree(source, target)
        _submodule_git_dir(source, target)
        _register(ws_repo, path, user_repo)
        if depth:
            make_shallow(target, depth)
        log(f"Submodule {path} copied from your checkout")
        if recursive:
            copy_submodules(source, target, recursive=True, depth=depth, log=log)


def _register(ws_repo: Path, path: str, user_repo: Path) -> None:
    """`git submodule init` in the workspace: the submodule is active, with the user's URL."""
    found = run_git(
        ws_repo, "config", "-f", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$"
    )
    for line in os.fsdecode(found.stdout).splitlines():
        key, _, value = line.partition(" ")
        if value != path:
            continue
        name = key.removeprefix("submodule.").removesuffix(".path")
        url = os.fsdecode(run_git(user_repo, "config", "--get", f"submodule.{name}.url").stdout)
        url = url.strip()
        _git(ws_repo, "config", f"submodule.{name}.active", "true")
        if url:
            _git(ws_repo, "config", f"submodule.{name}.url", url)


def _copy_tree(source: Path, target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    target.mkdir(parents=True, exist_ok=True)
    listed = _git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    nested = set(_submodule_paths(source))
    for raw in listed.split(b"\0"):
        if not raw:
            continue
        rel = os.fsdecode(raw).rstrip("/")
        src, dst = source / rel, target / rel
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
            dst.unlink()  # left by an earlier job of the slot (GIT_CLEAN_FLAGS: none)
        if rel in nested or stat.S_ISDIR(st.st_mode):
            dst.mkdir(exist_ok=True)
        elif stat.S_ISLNK(st.st_mode):
            dst.symlink_to(os.readlink(src))  # noqa: PTH115 - exact target, not normalised
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(src, dst)


def _submodule_git_dir(source: Path, target: Path) -> None:
    """A .git for the copied submodule: HEAD where the user's is, objects borrowed."""
    common = Path(_git(source, "rev-parse", "--git-common-dir").decode().strip())
    objects = (source / common / "objects").resolve()
    head = _git(source, "rev-parse", "HEAD").decode().strip()
    git_dir = target / ".git"
    remove_tree(git_dir)
    for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
        (git_dir / sub).mkdir(parents=True)
    (git_dir / "objects/info/alternates").write_text(f"{objects}\n")
    shallow = objects.parent / "shallow"
    if shallow.is_file():
        (git_dir / "shallow").write_text(shallow.read_text())
    (git_dir / "config").write_text(
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
    )
    (git_dir / "HEAD").write_text(head + "\n")
    _git(target, "read-tree", "HEAD")
    run_git(target, "update-index", "-q", "--refresh")


# ------------------------------------------------------------------------------ LFS


def _lfs_pointers(repo: Path, log: Log) -> None:
    """GIT_LFS_SKIP_SMUDGE=1: files tracked with `filter=lfs` hold their pointer, not content."""
    files = [p for p in _git(repo, "ls-files", "-z").split(b"\0") if p]
    if not files:
        return
    attrs = _git(repo, "check-attr", "-z", "--stdin", "filter", stdin=b"\0".join(files) + b"\0")
    fields = attrs.split(b"\0")
    lfs = [os.fsdecode(fields[i]) for i in range(0, len(fields) - 2, 3) if fields[i + 2] == b"lfs"]
    for rel in lfs:
        pointer = _git(repo, "cat-file", "blob", f"HEAD:{rel}")
        target = repo / rel
        if target.is_file() and not target.is_symlink():
            target.unlink()
            target.write_bytes(pointer)
    if lfs:
        log(f"GIT_LFS_SKIP_SMUDGE: {len(lfs)} LFS file(s) left as pointers")
