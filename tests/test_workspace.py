"""Snapshots and workspace slots: prepare, isolation, and the user's repository untouched."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localci.errors import GitError, StateError
from localci.execute import snapshot as snapshot_mod
from localci.execute.snapshot import Snapshot, load_snapshot, take_snapshot
from localci.execute.snapshot_cleanup import remove_stale
from localci.execute.workspace import Workspace, WorkspacePool, prepare_workspace
from localci.files import TMP_SUFFIX
from localci.state import Store, project_builds_root

GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.stdout


def bash(cwd: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo with a commit, a tag, then uncommitted edits, untracked and ignored files."""
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside the project\n")
    git(project, "init", "-q", "-b", "main")
    (project / ".gitignore").write_text(".venv/\n*.log\n")
    (project / "README.md").write_text("# readme\n")
    (project / "src" / "app.py").write_text("print('app')\n")
    (project / "run.sh").write_text("#!/bin/sh\necho run\n")
    (project / "run.sh").chmod(0o755)
    (project / "doomed.txt").write_text("deleted later\n")
    (project / "edited.txt").write_text("committed\n")
    (project / "link_in").symlink_to("README.md")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "initial")
    git(project, "tag", "-a", "v1.0", "-m", "release 1.0")
    (project / "edited.txt").write_text("uncommitted edit\n")
    (project / "doomed.txt").unlink()
    (project / "new.txt").write_text("untracked\n")
    (project / "dir with space").mkdir()
    (project / "dir with space" / "ü.txt").write_text("unicode\n")
    (project / "link_out").symlink_to(outside)
    (project / "debug.log").write_text("ignored\n")
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").write_text("ignored\n")
    return project


def head(project: Path) -> str:
    return git(project, "rev-parse", "HEAD").strip()


def snapshot_of(project: Path, store: Store | None = None) -> Snapshot:
    store = store or Store(project)
    pipeline_id = store.next_pipeline_id()
    sha = head(project) if git(project, "rev-list", "-n1", "--all").strip() else ""
    return take_snapshot(project, store, pipeline_id=pipeline_id, sha=sha)


def prepare(ws: Workspace, snap: Snapshot, ref: str = "main", *, tag: bool = False) -> None:
    prepare_workspace(ws, snap, ref=ref, ref_is_tag=tag, user_git_dir=snap.root / ".git")


def tree_digest(root: Path, *, skip: tuple[str, ...] = (".localci",)) -> str:
    """Hash of every path, type, mode, content and link target below root."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in sorted(filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]):
            path = Path(dirpath, name)
            st = path.lstat()
            h.update(f"{path.relative_to(root)}\0{st.st_mode}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            else:
                h.update(path.read_bytes())
    return h.hexdigest()


def test_snapshot_selects_the_right_files(repo: Path) -> None:
    snap = snapshot_of(repo)
    assert set(snap.files) == {
        ".gitignore",
        "README.md",
        "src/app.py",
        "run.sh",
        "edited.txt",
        "link_in",
        "new.txt",
        "dir with space/ü.txt",
        "link_out",
    }
    edited = snap.blob_path("edited.txt")
    assert edited is not None
    assert edited.read_text() == "uncommitted edit\n"
    assert snap.blob_path("link_in") is None
    # Unchanged tracked files are not copied: their content is the blob git's index names.
    app_blob = git(repo, "rev-parse", "HEAD:src/app.py").strip()
    assert snap.by_path["src/app.py"].data == f"git:{app_blob}"
    assert snap.blob_path("src/app.py") is None
    assert snap.by_path["edited.txt"].data == hashlib.sha256(b"uncommitted edit\n").hexdigest()
    assert load_snapshot(Store(repo), snap.pipeline_id) == snap


def test_snapshot_outside_git_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError):
        take_snapshot(tmp_path, Store(tmp_path), pipeline_id=1, sha="")


def test_workspace_content_links_and_modes(repo: Path) -> None:
    snap = snapshot_of(repo)
    with WorkspacePool(Store(repo), "proj").acquire() as ws:
        prepare(ws, snap)
        root = ws.project_dir
        assert root == project_builds_root(repo) / "0" / "proj"
        assert repo.resolve() not in root.parents
        assert (root / "edited.txt").read_text() == "uncommitted edit\n"
        assert (root / "new.txt").read_text() == "untracked\n"
        assert (root / "dir with space" / "ü.txt").read_text() == "unicode\n"
        assert not (root / "doomed.txt").exists()
        assert not (root / "debug.log").exists()
        assert not (root / ".venv").exists()
        assert not (root / ".localci").exists()
        assert os.readlink(root / "link_in") == "README.md"
        assert os.readlink(root / "link_out") == str(repo.parent / "outside.txt")
        assert os.access(root / "run.sh", os.X_OK)
        assert not os.access(root / "README.md", os.X_OK)
        assert (root / "README.md").stat().st_mtime_ns == (repo / "README.md").stat().st_mtime_ns


def test_git_inside_the_workspace(repo: Path) -> None:
    snap = snapshot_of(repo)
    with WorkspacePool(Store(repo), "proj").acquire() as ws:
        prepare(ws, snap, ref="feature/x")
        root = ws.project_dir
        assert git(root, "rev-parse", "HEAD").strip() == head(repo)
        assert git(root, "rev-parse", "--show-toplevel").strip() == str(root)
        assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature/x"
        assert git(root, "log", "-1", "--format=%s").strip() == "initial"
        assert git(root, "describe", "--tags").strip() == "v1.0"
        assert "+uncommitted edit" in git(root, "diff")
        assert git(root, "rev-parse", "origin/main").strip() == head(repo)
        status = git(root, "status", "--porcelain").splitlines()
        assert sorted(status) == sorted(git(repo, "status", "--porcelain").splitlines())
        assert " M edited.txt" in status
        assert " D doomed.txt" in status


def test_index_vouches_only_for_files_written_from_heads_blob(repo: Path) -> None:
    git(repo, "add", "new.txt")  # staged, so the snapshot reads it from git's objects
    (repo / "src" / "app.py").write_text("print('staged')\n")
    git(repo, "add", "src/app.py")  # staged and so not HEAD's blob: git must compare it
    snap = snapshot_of(repo)
    with WorkspacePool(Store(repo), "proj").acquire() as ws:
        prepare(ws, snap)
        root = ws.project_dir
        # diff-files trusts the index's stat data and reads no file: what it lists is all
        # that git will compare by content.
        stat_dirty = set(git(root, "diff-files", "--name-only").splitlines())
        assert stat_dirty == {"edited.txt", "doomed.txt", "link_in", "src/app.py"}
        assert sorted(git(root, "status", "--porcelain").splitlines()) == [
            " D doomed.txt",
            " M edited.txt",
            " M src/app.py",
            '?? "dir with space/"',
            "?? link_out",
            "?? new.txt",
        ]
        readme = root / "README.md"
        before = readme.stat()
        readme.write_text("# READ.ME\n")  # same size and, below, same mtime: only ctime differs
        os.utime(readme, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert " M README.md" in git(root, "status", "--porcelain").splitlines()


def test_sha256_repository(tmp_path: Path) -> None:
    project = tmp_path / "sha256"
    project.mkdir()
    git(project, "init", "-q", "--object-format=sha256", "-b", "main")
    (project / "a.txt").write_text("a\n")
    (project / "run.sh").write_text("#!/bin/sh\n")
    (project / "run.sh").chmod(0o755)
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "one")
    snap = snapshot_of(project)
    with WorkspacePool(Store(project), "sha256").acquire() as ws:
        prepare(ws, snap)
        root = ws.project_dir
        assert git(root, "diff-files", "--name-only") == ""
        assert git(root, "status", "--porcelain") == ""
        assert git(root, "rev-parse", "HEAD").strip() == snap.sha


def test_tag_pipeline_is_detached_at_the_tag(repo: Path) -> None:
    snap = snapshot_of(repo)
    with WorkspacePool(Store(repo), "proj").acquire() as ws:
        prepare(ws, snap, ref="v1.0", tag=True)
        assert git(ws.project_dir, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"
        assert git(ws.project_dir, "describe", "--exact-match").strip() == "v1.0"
        prepare(ws, snap, ref="v9.9", tag=True)  # a simulated tag that does not exist
        assert git(ws.project_dir, "rev-parse", "v9.9").strip() == head(repo)
        assert "v9.9" in git(ws.project_dir, "tag", "--points-at", "HEAD").split()


def test_repo_without_commits(tmp_path: Path) -> None:
    project = tmp_path / "empty"
    project.mkdir()
    git(project, "init", "-q")
    (project / "a.txt").write_text("a\n")
    snap = snapshot_of(project)
    assert snap.sha == ""
    with WorkspacePool(Store(project), "empty").acquire() as ws:
        prepare(ws, snap, ref="main")
        assert (ws.project_dir / "a.txt").read_text() == "a\n"
        assert git(ws.project_dir, "symbolic-ref", "--short", "HEAD").strip() == "main"
        assert git(ws.project_dir, "status", "--porcelain").splitlines() == ["?? a.txt"]


def test_edits_after_the_snapshot_are_not_seen(repo: Path) -> None:
    snap = snapshot_of(repo)
    (repo / "edited.txt").write_text("edited while the pipeline runs\n")
    (repo / "late.txt").write_text("late\n")
    with WorkspacePool(Store(repo), "proj").acquire() as ws:
        prepare(ws, snap)
        assert (ws.project_dir / "edited.txt").read_text() == "uncommitted edit\n"
        assert not (ws.project_dir / "late.txt").exists()


DESTRUCTIVE_JOB = """
set -e
echo changed >> README.md
git add -A && git commit -q -m "job commit" && git tag job-tag
git gc -q --prune=now
git config user.name Vandal
rm -rf ./* .git
if git status 2>/dev/null; then exit 7; fi
if git commit --allow-empty -m escape 2>/dev/null; then exit 8; fi
mkdir src && echo junk > src/app.py
"""


def test_destructive_job_leaves_user_repo_identical(repo: Path) -> None:
    before = tree_digest(repo)
    store = Store(repo)
    snap = snapshot_of(repo, store)
    with WorkspacePool(store, "proj").acquire() as ws:
        prepare(ws, snap)
        result = bash(ws.project_dir, DESTRUCTIVE_JOB)
        assert result.returncode == 0, result.stderr
        assert tree_digest(repo) == before
        prepare(ws, snap)
        assert tree_digest(repo) == before
        root = ws.project_dir
        assert (root / "README.md").read_text() == "# readme\n"
        assert (root / "src" / "app.py").read_text() == "print('app')\n"
        assert git(root, "log", "--format=%s").splitlines() == ["initial"]
        assert "job-tag" not in git(root, "tag")
        assert sorted(git(root, "status", "--porcelain").splitlines()) == sorted(
            git(repo, "status", "--porcelain").splitlines()
        )


def test_job_symlinks_into_the_user_tree_are_not_followed(repo: Path) -> None:
    store = Store(repo)
    snap = snapshot_of(repo, store)
    with WorkspacePool(store, "proj").acquire() as ws:
        prepare(ws, snap)
        root = ws.project_dir
        script = f"""
        set -e
        rm -rf src .git README.md
        ln -s {repo}/src src
        ln -s {repo}/.git .git
        ln -s {repo}/edited.txt README.md
        """
        # The user's tree now differs from the snapshot, so a write through a link would show.
        (repo / "src" / "app.py").write_text("edited after the snapshot\n")
        before = tree_digest(repo)
        assert bash(root, script).returncode == 0
        prepare(ws, snap)
        assert tree_digest(repo) == before
        assert not (root / "src").is_symlink()
        assert not (root / ".git").is_symlink()
        assert not (root / "README.md").is_symlink()
        assert (root / "README.md").read_text() == "# readme\n"
        assert (root / "src" / "app.py").read_text() == "print('app')\n"


def test_reuse_rewrites_only_what_changed(repo: Path) -> None:
    store = Store(repo)
    snap = snapshot_of(repo, store)
    with WorkspacePool(store, "proj").acquire() as ws:
        prepare(ws, snap)
        root = ws.project_dir
        untouched = (root / "src" / "app.py").stat()
        script = """
        set -e
        echo modified > README.md
        chmod +x new.txt
        mkdir -p build/ro && touch build/ro/x && chmod 555 build/ro
        echo junk > extra.txt
        rm link_in && ln -s elsewhere link_in
        rm -rf "dir with space" && echo file > "dir with space"
        """
        assert bash(root, script).returncode == 0
        prepare(ws, snap)
        again = (root / "src" / "app.py").stat()
        assert (again.st_ino, again.st_ctime_ns) == (untouched.st_ino, untouched.st_ctime_ns)
        assert (root / "README.md").read_text() == "# readme\n"
        assert not os.access(root / "new.txt", os.X_OK)
        assert not (root / "build").exists()
        assert not (root / "extra.txt").exists()
        assert os.readlink(root / "link_in") == "README.md"
        assert (root / "dir with space" / "ü.txt").read_text() == "unicode\n"


def test_next_pipeline_rewrites_only_files_the_user_changed(repo: Path) -> None:
    store = Store(repo)
    pool = WorkspacePool(store, "proj")
    with pool.acquire() as ws:
        prepare(ws, snapshot_of(repo, store))
        kept = (ws.project_dir / "src" / "app.py").stat()
    (repo / "new.txt").write_text("changed by the user\n")
    (repo / "README.md").unlink()
    snap = snapshot_of(repo, store)
    with pool.acquire() as ws:
        prepare(ws, snap)
        after = (ws.project_dir / "src" / "app.py").stat()
        assert (after.st_ino, after.st_ctime_ns) == (kept.st_ino, kept.st_ctime_ns)
        assert (ws.project_dir / "new.txt").read_text() == "changed by the user\n"
        assert not (ws.project_dir / "README.md").exists()
        assert " D README.md" in git(ws.project_dir, "status", "--porcelain")


def test_stat_cache_avoids_rereading_but_sees_same_size_edits(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_mod, "_RACY_NS", 0)
    store = Store(repo)
    snapshot_of(repo, store)
    hashed: list[str] = []
    real = snapshot_mod._hash_file

    def counting(full: str, blobs: object) -> object:
        hashed.append(full)
        return real(full, blobs)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshot_mod, "_hash_file", counting)
    snapshot_of(repo, store)
    assert hashed == []
    st = (repo / "new.txt").stat()
    (repo / "new.txt").write_text("UNTRACKED\n")  # same size
    os.utime(repo / "new.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    snap = snapshot_of(repo, store)
    assert hashed == [f"{repo.resolve()}/new.txt"]
    blob = snap.blob_path("new.txt")
    assert blob is not None
    assert blob.read_text() == "UNTRACKED\n"


def test_damaged_blob_is_detected_and_healed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_mod, "_RACY_NS", 0)
    store = Store(repo)
    snap = snapshot_of(repo, store)
    blob = snap.blob_path("new.txt")
    assert blob is not None
    blob.chmod(0o644)
    blob.write_bytes(b"")  # what a power cut can leave behind
    with WorkspacePool(store, "proj").acquire() as ws:
        with pytest.raises(StateError, match="damaged"):
            prepare(ws, snap)
        healed = snapshot_of(repo, store)
        prepare(ws, healed)
        assert (ws.project_dir / "new.txt").read_text() == "untracked\n"


def test_pool_gives_distinct_slots_in_one_process(repo: Path) -> None:
    pool = WorkspacePool(Store(repo), "proj")
    with pool.acquire() as a, pool.acquire() as b:
        assert (a.slot, b.slot) == (0, 1)
        assert a.project_dir != b.project_dir
    with pool.acquire() as again:
        assert again.slot == 0


_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from localci.state import Store
    from localci.execute.workspace import WorkspacePool
    with WorkspacePool(Store(Path(sys.argv[1])), "proj").acquire() as ws:
        print(ws.slot, flush=True)
        sys.stdin.read()
    """
)


def test_pool_gives_distinct_slots_across_processes(repo: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(repo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        other = int(proc.stdout.readline())
        with WorkspacePool(Store(repo), "proj").acquire() as ws:
            assert ws.slot != other
    finally:
        proc.communicate("", timeout=60)
    assert proc.returncode == 0


def test_remove_stale_keeps_running_pipelines(repo: Path) -> None:
    store = Store(repo)
    finished = snapshot_of(repo, store)
    gone = finished.blob_path("edited.txt")
    (repo / "edited.txt").write_text("second version\n")
    running_id = store.next_pipeline_id()
    with store.lock(f"pipeline-{running_id}"):
        running = take_snapshot(repo, store, pipeline_id=running_id, sha=head(repo))
        (repo / "edited.txt").write_text("third version\n")
        latest = snapshot_of(repo, store)  # its blobs stay: they seed the next snapshot
        dead = store.root / "snapshots" / f".x.99999999.0000{TMP_SUFFIX}"
        dead.write_text("left by a crash")
        alive = store.root / "snapshots" / f".x.{os.getpid()}.0000{TMP_SUFFIX}"
        alive.write_text("being written")
        remove_stale(store)
        assert not (store.root / "snapshots" / f"{finished.pipeline_id}.json").exists()
        assert not (store.root / "snapshots" / f"{latest.pipeline_id}.json").exists()
        assert load_snapshot(store, running_id) == running
        assert not dead.exists()
        assert alive.exists()
        assert gone is not None
        assert not gone.exists()
        for snap in (running, latest):
            blob = snap.blob_path("edited.txt")
            assert blob is not None
            assert blob.exists()
    remove_stale(store)
    assert not (store.root / "snapshots" / f"{running_id}.json").exists()


def test_linked_worktree_and_unusual_refs(repo: Path, tmp_path: Path) -> None:
    git(repo, "branch", "a")
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", str(linked))
    store = Store(linked)
    sha = head(linked)
    snap = take_snapshot(linked, store, pipeline_id=store.next_pipeline_id(), sha=sha)
    with WorkspacePool(store, "linked").acquire() as ws:
        for ref, expected in (("a/b", "a/b"), ("bad name", "localci")):
            prepare_workspace(ws, snap, ref=ref, ref_is_tag=False, user_git_dir=linked / ".git")
            root = ws.project_dir
            assert git(root, "rev-parse", "HEAD").strip() == sha
            assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == expected
            assert git(root, "status", "--porcelain") == ""


def test_large_files_and_nested_repositories(repo: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)
    (repo / "big.bin").write_bytes(big)
    (repo / "vendor" / "lib").mkdir(parents=True)
    git(repo / "vendor" / "lib", "init", "-q")
    (repo / "vendor" / "lib" / "inner.txt").write_text("inside a nested repository\n")
    snap = snapshot_of(repo)
    with WorkspacePool(Store(repo), "proj").acquire() as ws:
        prepare(ws, snap)
        assert (ws.project_dir / "big.bin").read_bytes() == big
        assert (ws.project_dir / "vendor" / "lib").is_dir()
        assert not (ws.project_dir / "vendor" / "lib" / "inner.txt").exists()


def test_remove_stale_drops_orphaned_pipeline_locks(repo: Path) -> None:
    store = Store(repo)
    pipeline_id = store.next_pipeline_id()
    with store.lock(f"pipeline-{pipeline_id}"):
        pass  # a run that died before taking its snapshot
    assert store.lock_path(f"pipeline-{pipeline_id}").exists()
    remove_stale(store)
    assert not store.lock_path(f"pipeline-{pipeline_id}").exists()


def test_files_git_would_convert_or_does_not_look_at_are_read_from_the_tree(
    repo: Path,
) -> None:
    """Only tracked files whose working-tree bytes are their staged blob come from git."""
    git(repo, "config", "filter.shout.clean", "tr a-z A-Z")
    git(repo, "config", "filter.shout.smudge", "cat")
    (repo / ".gitattributes").write_text("*.up filter=shout\n*.id ident\n")
    (repo / "a.up").write_text("quiet\n")  # staged as "QUIET"
    (repo / "b.id").write_text("$Id$\n")  # staged as "$Id$", checked out expanded
    (repo / "hidden.txt").write_text("committed\n")
    (repo / "big.bin").write_bytes(os.urandom(9 << 20))  # streamed, not held in memory
    git(repo, "add", ".gitattributes", "a.up", "b.id", "hidden.txt", "big.bin")
    git(repo, "commit", "-q", "-m", "filters")
    git(repo, "update-index", "--assume-unchanged", "hidden.txt")
    (repo / "hidden.txt").write_text("edited but hidden from git\n")
    touched = repo / "README.md"
    os.utime(touched, ns=(1, 1))  # stat differs from the index, content does not
    snap = snapshot_of(repo)
    for name in ("a.up", "b.id", "hidden.txt", "README.md"):
        assert not snap.by_path[name].data.startswith("git:"), name
    assert snap.by_path[".gitattributes"].data.startswith("git:")
    assert snap.by_path["big.bin"].data.startswith("git:")
    store = Store(repo)
    with WorkspacePool(store, "proj").acquire() as ws:
        prepare(ws, snap)
        names = ("a.up", "b.id", "hidden.txt", "README.md", "src/app.py", "run.sh", "big.bin")
        for name in names:
            assert (ws.project_dir / name).read_bytes() == (repo / name).read_bytes(), name
        assert os.access(ws.project_dir / "run.sh", os.X_OK)


def test_autocrlf_reads_every_file_from_the_tree(repo: Path) -> None:
    git(repo, "config", "core.autocrlf", "true")
    snap = snapshot_of(repo)
    assert not any(e.data.startswith("git:") for e in snap.entries)
