"""Pipeline context from real temporary git repositories: refs, commits, remotes, changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from localci.errors import GitError, UsageError
from localci.plan import git_reads
from localci.plan.context import (
    ZERO_SHA,
    PipelineContext,
    changed_paths,
    describe_changes_base,
    detect_context,
    workspace_files,
)
from localci.plan.git_text import commit_description, commit_title, parse_remote_url
from tests.helpers import run_cli

AUTHOR_DATE = "2024-01-31T16:47:55+01:00"


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private global git config, so the developer's own never leaks into the facts."""
    home = tmp_path_factory.mktemp("home")
    config = home / "gitconfig"
    config.write_text(
        "[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{key}_NAME", raising=False)
        monkeypatch.delenv(f"GIT_{key}_EMAIL", raising=False)
        monkeypatch.setenv(f"GIT_{key}_DATE", AUTHOR_DATE)
    return config


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return proc.stdout.strip()


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(tmp_path: Path, name: str = "proj", branch: str = "main") -> Path:
    repo = tmp_path / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", branch)
    commit(repo, {"README.md": "hello\n", "src/app.py": "print(1)\n"}, "initial commit")
    return repo


# ------------------------------------------------------------------------------ branch pushes


def test_branch_push_without_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    ctx = detect_context(repo)
    head = git(repo, "rev-parse", "HEAD")
    assert (ctx.ref, ctx.ref_is_tag, ctx.commit_branch) == ("main", False, "main")
    assert ctx.sha == head
    assert ctx.short_sha == head[:8]
    assert ctx.before_sha == ZERO_SHA
    assert ctx.changes_base is None
    assert ctx.source == "push"
    assert ctx.default_branch == "main"
    assert ctx.protected
    assert (ctx.project_path, ctx.server_host) == ("local/proj", "localhost")
    assert ctx.project_url == "https://localhost/local/proj"
    assert (ctx.user_name, ctx.user_email) == ("Ada Lovelace", "ada@example.com")
    assert ctx.commit_author == "Ada Lovelace <ada@example.com>"
    assert ctx.commit_timestamp == "2024-01-31T15:47:55Z"
    assert ctx.commit_message == "initial commit\n"
    assert (ctx.commit_title, ctx.commit_description) == ("initial commit", "")
    assert (ctx.is_git_repo, ctx.has_commits, ctx.detached) == (True, True, False)
    assert ctx.project_dir == repo.resolve()


def test_multi_line_message(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit(repo, {}, "Fix the parser\n\nIt was broken.\nTwice.")
    ctx = detect_context(repo)
    assert ctx.commit_title == "Fix the parser"
    assert ctx.commit_description == "\nIt was broken.\nTwice."
    assert ctx.commit_message == "Fix the parser\n\nIt was broken.\nTwice.\n"


@pytest.mark.parametrize(
    ("message", "title", "description"),
    [
        ("one line", "one line", ""),
        ("one line\n", "one line", ""),
        ("title\nbody\n", "title", "body"),
        ("title\r\nbody\r\n", "title\r", "body"),
        ("title\n\nbody", "title", "\nbody"),
        ("", "No commit message", ""),
        ("  \n", "No commit message", ""),
        ("x" * 100 + "\nbody", "x" * 100, "body"),
        ("x" * 101 + "\nbody", "x" * 101, "…" + "x" * 21 + "\nbody"),
        ("y" * 120, "y" * 120, "…" + "y" * 40),
        ("y" * 100, "y" * 100, ""),
    ],
)
def test_title_and_description_rules(message: str, title: str, description: str) -> None:
    assert commit_title(message) == title
    assert commit_description(message) == description


def test_branch_option_overrides_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    ctx = detect_context(repo, branch="feature/login")
    assert (ctx.ref, ctx.commit_branch, ctx.protected) == ("feature/login", "feature/login", False)
    assert ctx.sha == git(repo, "rev-parse", "HEAD")


def test_checked_out_feature_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "-q", "-b", "feature")
    ctx = detect_context(repo)
    assert (ctx.ref, ctx.default_branch, ctx.protected) == ("feature", "main", False)


# ------------------------------------------------------------------------------------- tags


def test_annotated_tag(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "-a", "v1.0", "-m", "Release 1.0\n\nNotes.")
    ctx = detect_context(repo, tag="v1.0")
    assert (ctx.ref, ctx.ref_is_tag, ctx.commit_branch) == ("v1.0", True, None)
    assert ctx.tag_message == "Release 1.0\n\nNotes."
    assert ctx.before_sha == ZERO_SHA
    assert not ctx.protected


def test_lightweight_and_missing_tags(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "tag", "light")
    assert detect_context(repo, tag="light").tag_message is None
    missing = detect_context(repo, tag="v9.9.9")
    assert (missing.ref, missing.ref_is_tag, missing.tag_message) == ("v9.9.9", True, None)
    assert missing.sha == git(repo, "rev-parse", "HEAD")


def test_protected_patterns(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    patterns = ("release/*", "v*")
    assert detect_context(repo, branch="release/1.0", protected_refs=patterns).protected
    assert detect_context(repo, branch="release/a/b", protected_refs=patterns).protected
    assert not detect_context(repo, branch="hotfix", protected_refs=patterns).protected
    assert detect_context(repo, tag="v2", protected_refs=patterns).protected
    assert not detect_context(repo, tag="main", protected_refs=patterns).protected
    assert not detect_context(repo, branch="xrelease/1", protected_refs=patterns).protected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"branch": "a", "tag": "b"}, "mutually exclusive"),
        ({"source": "pushes"}, "unknown pipeline source"),
        ({"source": "merge_request_event", "tag": "v1"}, "not for a tag"),
        ({"branch": ""}, "--branch needs a ref name"),
        ({"changes_since": "--all"}, "--changes-since needs a ref name"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        detect_context(tmp_path, **options)


def test_missing_project_dir(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        detect_context(tmp_path / "nope")


# ---------------------------------------------------------------------- detached, empty, none


def test_detached_head_uses_the_one_containing_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "-q", "--detach")
    ctx = detect_context(repo)
    assert (ctx.ref, ctx.detached) == ("main", True)


def test_detached_head_ambiguous(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "branch", "other")
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(GitError, match=r"2 local branches contain it \(main, other\).*--branch"):
        detect_context(repo)
    assert detect_context(repo, branch="other").ref == "other"


def test_detached_head_on_no_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "-q", "--detach")
    commit(repo, {}, "floating")
    with pytest.raises(GitError, match="no local branch contains it"):
        detect_context(repo)


def test_empty_repository(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    (repo / "draft.txt").write_text("x")
    ctx = detect_context(repo)
    assert (ctx.ref, ctx.sha, ctx.has_commits, ctx.is_git_repo) == ("trunk", ZERO_SHA, False, True)
    assert ctx.default_branch == "main"  # init.defaultBranch of the test config
    assert changed_paths(ctx) is None
    assert workspace_files(repo) == ["draft.txt"]
    ctx.require_git("listing jobs")
    with pytest.raises(GitError, match="has none yet"):
        ctx.require_git("running", commits=True)


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    (plain / "sub" / "f.txt").write_text("x")
    (plain / ".git").mkdir()  # not a real repository: git ignores it; the walk skips it
    ctx = detect_context(plain / "sub")
    assert (ctx.is_git_repo, ctx.ref, ctx.sha, ctx.default_branch) == (
        False,
        "main",
        ZERO_SHA,
        "main",
    )
    assert ctx.project_path == "local/sub"
    assert ctx.user_name == "Ada Lovelace"
    assert detect_context(plain / "sub", branch="dev").ref == "dev"
    assert changed_paths(ctx) is None
    with pytest.raises(GitError, match="needs a git repository"):
        ctx.require_git("rules:exists")


def test_not_a_repository_workspace_walk(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    for name in ("a.txt", "d/b.txt", ".git/config", ".localci/x", ".hidden"):
        (plain / name).parent.mkdir(parents=True, exist_ok=True)
        (plain / name).write_text("x")
    git(tmp_path, "init", "-q", "elsewhere")  # a sibling repo must not matter
    assert workspace_files(plain) == [".hidden", "a.txt", "d/b.txt"]


def test_synthetic_merge_request(tmp_path: Path) -> None:
    ctx = detect_context(tmp_path, branch="feat", source="merge_request_event")
    assert ctx.merge_request is not None
    assert (ctx.merge_request.source_branch, ctx.merge_request.target_branch) == ("feat", "main")
    assert ctx.commit_branch is None


def test_redirecting_git_environment_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path, "proj")
    other = make_repo(tmp_path, "other", branch="elsewhere")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    ctx = detect_context(repo)
    assert ctx.ref == "main"
    assert "README.md" in workspace_files(repo)


def test_default_constructible_context() -> None:
    ctx = PipelineContext(project_dir=Path("/x"), server_port=8080, server_protocol="http")
    assert ctx.server_url == "http://localhost:8080"
    assert (ctx.project_name, ctx.project_namespace) == ("project", "local")


# ------------------------------------------------------------------------------------ remotes


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@gitlab.com:group/sub/proj.git", ("gitlab.com", "group/sub/proj", "https", 443)),
        ("git@gitlab.com:/group/proj.git", ("gitlab.com", "group/proj", "https", 443)),
        ("gitlab.com:group/proj", ("gitlab.com", "group/proj", "https", 443)),
        (
            "ssh://git@gitlab.example.com:22/group/proj.git",
            ("gitlab.example.com", "group/proj", "https", 443),
        ),
        ("ssh://git@host/a/b/c", ("host", "a/b/c", "https", 443)),
        ("https://gitlab.com/group/proj", ("gitlab.com", "group/proj", "https", 443)),
        ("https://gitlab.com/group/proj.git", ("gitlab.com", "group/proj", "https", 443)),
        ("https://gitlab.com/group/proj/", ("gitlab.com", "group/proj", "https", 443)),
        (
            "https://user:s3cret@gitlab.com/group/proj.git",
            ("gitlab.com", "group/proj", "https", 443),
        ),
        (
            "https://oauth2:tok@Git.Example.com:8443/a/b/c.git",
            ("git.example.com", "a/b/c", "https", 8443),
        ),
        ("http://ci.local/team/app", ("ci.local", "team/app", "http", 80)),
        ("git://example.org/x/y.git", ("example.org", "x/y", "https", 443)),
        ("/srv/git/proj.git", None),
        ("../sibling", None),
        ("file:///srv/git/proj.git", None),
        ("https://gitlab.com/", None),
        ("https://gitlab.com:notaport/a/b", None),
    ],
)
def test_parse_remote_url(url: str, expected: tuple[str, str, str, int] | None) -> None:
    assert parse_remote_url(url) == expected


def test_project_from_origin_with_credentials(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "origin", "https://bot:glpat-XYZ@gitlab.example.com/grp/sub/app.git")
    ctx = detect_context(repo)
    assert (ctx.project_path, ctx.project_name, ctx.project_namespace) == (
        "grp/sub/app",
        "app",
        "grp/sub",
    )
    assert ctx.project_url == "https://gitlab.example.com/grp/sub/app"
    assert "glpat" not in repr(ctx)


# ------------------------------------------------------------------------------ default branch


def test_default_branch_from_origin_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "origin", "git@h:g/p.git")
    git(repo, "update-ref", "refs/remotes/origin/develop", "HEAD")
    git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/develop")
    ctx = detect_context(repo)
    assert (ctx.default_branch, ctx.protected) == ("develop", False)
    assert detect_context(repo, default_branch="main").default_branch == "main"


def test_default_branch_fallbacks(tmp_path: Path, git_identity: Path) -> None:
    repo = make_repo(tmp_path, branch="master")
    assert detect_context(repo).default_branch == "master"
    git(repo, "branch", "-m", "master", "trunk")
    assert detect_context(repo).default_branch == "main"  # init.defaultBranch
    git(repo, "config", "init.defaultBranch", "trunk")
    assert detect_context(repo).default_branch == "trunk"
    git(repo, "branch", "main")
    assert detect_context(repo).default_branch == "main"
    git_identity.write_text("[user]\n\tname = A\n\temail = a@b\n")
    git(repo, "config", "--unset", "init.defaultBranch")
    git(repo, "branch", "-D", "main")
    assert detect_context(repo).default_branch == "main"


# ---------------------------------------------------------------------- changes and push base


def test_push_base_is_the_remote_tracking_ref(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "remote", "add", "origin", "git@gitlab.com:g/p.git")
    git(repo, "update-ref", "refs/remotes/origin/main", first)
    commit(repo, {"src/app.py": "print(2)\n", "new.py": "x\n", "README.md": None}, "second")
    ctx = detect_context(repo)
    assert (ctx.changes_base, ctx.before_sha, ctx.changes_base_label) == (
        first,
        first,
        "origin/main",
    )
    assert changed_paths(ctx) == {"src/app.py", "new.py", "README.md"}


def test_working_tree_changes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit(repo, {".gitignore": "*.log\nbuild/\n", "docs/a.md": "a\n", "old.txt": "o\n"}, "more")
    git(repo, "remote", "add", "origin", "git@gitlab.com:g/p.git")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    ctx = detect_context(repo, changes_since="HEAD")
    assert changed_paths(ctx) == frozenset()
    (repo / "docs/a.md").write_text("edited\n")  # tracked, uncommitted edit
    (repo / "untracked.txt").write_text("u\n")
    (repo / "debug.log").write_text("ignored\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("ignored\n")
    (repo / "README.md").unlink()  # deleted in the working tree
    git(repo, "mv", "old.txt", "renamed.txt")
    (repo / "staged.py").write_text("s\n")
    git(repo, "add", "staged.py")
    assert changed_paths(ctx) == {
        "docs/a.md",
        "untracked.txt",
        "README.md",
        "old.txt",
        "renamed.txt",
        "staged.py",
    }


def test_new_branch_has_no_push_info(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "origin", "git@gitlab.com:g/p.git")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "brand-new")
    ctx = detect_context(repo)
    assert (ctx.changes_base, ctx.before_sha) == (None, ZERO_SHA)
    assert changed_paths(ctx) is None
    assert changed_paths(ctx, compare_to="main") == frozenset()


def _pushed_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """A clone whose main was pushed twice: origin/main's reflog holds both pushes."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo = make_repo(tmp_path, "work")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "main")
    shas = [git(repo, "rev-parse", "HEAD")]
    commit(repo, {"docs/b.md": "b\n", "x.txt": "x\n"}, "second")
    git(repo, "push", "-q")
    shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas


def test_nothing_to_push_compares_with_the_tracking_refs_previous_position(
    tmp_path: Path,
) -> None:
    # Issue 14 item 5: a re-run of a pushed commit sees what GitLab's pipeline for that push saw.
    repo, (first, _) = _pushed_repo(tmp_path)
    ctx = detect_context(repo)  # HEAD is origin/main: nothing to push
    assert (ctx.changes_base, ctx.before_sha, ctx.changes_base_label) == (
        first,
        first,
        "origin/main@{1}",
    )
    assert changed_paths(ctx) == {"docs/b.md", "x.txt"}
    assert "compares with origin/main@{1} (" + first[:8] + "): nothing to push" in (
        describe_changes_base(ctx)
    )


def test_nothing_to_push_without_a_reflog_uses_the_first_parent(tmp_path: Path) -> None:
    _, (first, second) = _pushed_repo(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(clone))
    ctx = detect_context(clone)
    assert (ctx.changes_base, ctx.changes_base_label) == (first, "HEAD^1")
    assert changed_paths(ctx) == {"docs/b.md", "x.txt"}
    assert "no earlier position of origin/main in its reflog, so the commit's first parent" in (
        describe_changes_base(ctx)
    )
    root = tmp_path / "root"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{tmp_path / 'remote.git'}", str(root))
    shallow = detect_context(root)  # no parent, no earlier position: HEAD itself
    assert (shallow.changes_base, shallow.changes_base_label) == (second, "origin/main")
    assert changed_paths(shallow) == frozenset()
    assert "no parent: only uncommitted changes" in describe_changes_base(shallow)


def test_upstream_remote_of_the_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", "refs/remotes/upstream/main", first)
    git(repo, "config", "branch.main.remote", "upstream")
    commit(repo, {"a.txt": "a\n"})
    ctx = detect_context(repo)
    assert (ctx.changes_base, ctx.changes_base_label, ctx.remote) == (
        first,
        "upstream/main",
        "upstream",
    )


def test_no_base_for_tags_and_other_sources(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit(repo, {"a.txt": "a\n"})
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    assert detect_context(repo).changes_base is not None
    for source in ("schedule", "web", "api", "trigger", "pipeline"):
        assert detect_context(repo, source=source).changes_base is None
    assert detect_context(repo, tag="v1").changes_base is None


def test_changes_since(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    commit(repo, {"a.txt": "a\n"})
    git(repo, "tag", "-a", "rel", "-m", "r", first)
    for ref in ("HEAD~1", "rel", first[:10]):
        ctx = detect_context(repo, changes_since=ref)
        assert (ctx.changes_base, ctx.before_sha) == (first, first)
        assert changed_paths(ctx) == {"a.txt"}
    assert detect_context(repo, tag="rel", changes_since="HEAD~1").changes_base == first
    with pytest.raises(GitError, match="--changes-since 'nope'"):
        detect_context(repo, changes_since="nope")


def test_compare_to(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"f.txt": "f\n"})
    git(repo, "checkout", "-q", "main")
    commit(repo, {"m.txt": "m\n"})  # main moved on: merge-base keeps m.txt out
    git(repo, "checkout", "-q", "feature")
    ctx = detect_context(repo)
    assert changed_paths(ctx, compare_to="main") == {"f.txt"}
    assert changed_paths(ctx, compare_to="refs/heads/main") == {"f.txt"}
    assert changed_paths(ctx, compare_to=first) == {"f.txt"}
    git(repo, "update-ref", "refs/remotes/origin/main", "feature")  # origin/main wins over main
    assert changed_paths(ctx, compare_to="main") == frozenset()
    with pytest.raises(GitError, match="compare_to 'missing'"):
        changed_paths(ctx, compare_to="missing")


def test_unrelated_history_counts_as_no_push_info(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "-q", "--orphan", "island")
    commit(repo, {"i.txt": "i\n"})
    git(repo, "checkout", "-q", "main")
    ctx = detect_context(repo, changes_since="island")
    assert changed_paths(ctx) is None


# ------------------------------------------------------------------------------- merge requests


def test_merge_request_context(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    fork = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"f.txt": "f\n"}, "Add f\n\nBecause.")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"m.txt": "m\n"})
    git(repo, "checkout", "-q", "feature")
    ctx = detect_context(repo, source="merge_request_event", protected_refs=("feature",))
    mr = ctx.merge_request
    assert mr is not None
    assert (mr.source_branch, mr.target_branch, mr.diff_base_sha) == ("feature", "main", fork)
    assert (mr.title, mr.description, mr.iid) == ("Add f", "\nBecause.", 1)
    assert (mr.source_protected, mr.target_protected) == (True, True)
    assert (ctx.changes_base, ctx.before_sha) == (fork, fork)
    assert (ctx.ref, ctx.commit_branch, ctx.protected) == ("feature", None, False)
    assert changed_paths(ctx) == {"f.txt"}


def test_merge_request_target_prefers_remote_and_must_exist(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"f.txt": "f\n"})
    git(repo, "update-ref", "refs/remotes/origin/release", "HEAD")
    ctx = detect_context(repo, source="merge_request_event", mr_target="release")
    assert ctx.merge_request is not None
    assert ctx.merge_request.diff_base_sha == git(repo, "rev-parse", "HEAD")
    with pytest.raises(GitError, match="target branch 'stable' not found"):
        detect_context(repo, source="merge_request_event", mr_target="stable")


# ---------------------------------------------------------------------------- workspace files


def test_workspace_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    commit(repo, {".gitignore": "*.log\n", "dir/ünïcode name.txt": "u\n", "gone.txt": "g\n"})
    (repo / "gone.txt").unlink()
    (repo / "new.txt").write_text("n\n")
    (repo / "x.log").write_text("ignored\n")
    (repo / "src" / "app.py").write_text("edited\n")
    assert workspace_files(repo) == [
        ".gitignore",
        "README.md",
        "dir/ünïcode name.txt",
        "new.txt",
        "src/app.py",
    ]
    assert workspace_files(repo / "src") == ["app.py"]


# ----------------------------------------------------------------------------- process budget


def count_git_processes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    real = git_reads.run

    def counting(
        cwd: Path, *args: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        calls.append(args)
        return real(cwd, *args, stdin=stdin)

    monkeypatch.setattr(git_reads, "run", counting)
    return calls


def test_git_process_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"f.txt": "f\n"})
    git(repo, "tag", "-a", "v1", "-m", "v1")
    calls = count_git_processes(monkeypatch)
    cases = [
        {},
        {"tag": "v1", "changes_since": "main"},
        {"source": "merge_request_event"},
    ]
    for options in cases:
        calls.clear()
        detect_context(repo, **options)
        assert len(calls) <= 5, calls
    git(repo, "checkout", "-q", "--detach")
    calls.clear()
    detect_context(repo, source="merge_request_event")
    assert len(calls) <= 6, calls
    calls.clear()
    detect_context(tmp_path)
    assert len(calls) == 2


def test_nothing_to_push_reads_the_first_parent_with_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh clone: nothing to push, no reflog position; the parent comes from the cat-file
    # that reads HEAD, so only the reflog look-up is one more process.
    _, (first, _) = _pushed_repo(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(clone))
    calls = count_git_processes(monkeypatch)
    ctx = detect_context(clone)
    assert (ctx.changes_base, ctx.changes_base_label) == (first, "HEAD^1")
    assert [args[0] for args in calls] == [
        "symbolic-ref",
        "config",
        "for-each-ref",
        "cat-file",
        "rev-parse",
    ]


def test_rerun_of_a_pushed_commit_keeps_change_gated_jobs(tmp_path: Path) -> None:
    # Issue 14 item 5, from the CLI: before, `docs` vanished and `publish` (needs: docs) made
    # the pipeline impossible ("cannot be created").
    repo, _ = _pushed_repo(tmp_path)
    (repo / ".gitlab-ci.yml").write_text(
        "docs: {stage: build, script: [echo], rules: [{changes: [docs/**/*]}]}\n"
        "publish: {stage: test, script: [echo], needs: [docs]}\n"
    )
    commit(repo, {"docs/c.md": "c\n"}, "third")
    git(repo, "push", "-q")
    listed = run_cli(repo, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [job["name"] for job in json.loads(listed.stdout)] == ["docs", "publish"]
    explained = run_cli(repo, "explain", "docs")
    assert "rules:changes compares with origin/main@{1} (" in explained.stdout
    assert "changes: changed file 'docs/c.md' matches 'docs/**/*' -> true" in explained.stdout
