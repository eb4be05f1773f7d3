"""The pipeline context: the ref, commit, project and changed paths a local pipeline is made for.

Every git fact localci needs before planning is read here (through `git_reads`, the plumbing),
in at most six git processes.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localci.errors import GitError, UsageError
from localci.plan import git_reads
from localci.plan.git_text import DEFAULT_PORTS, commit_description, commit_title, project_location

ZERO_SHA = "0" * 40
MR_SOURCE = "merge_request_event"

#: Every value GitLab stores in `CI_PIPELINE_SOURCE`.
PIPELINE_SOURCES = (
    "push",
    "web",
    "trigger",
    "schedule",
    "api",
    "external",
    "pipeline",
    "chat",
    "webide",
    "merge_request_event",
    "external_pull_request_event",
    "parent_pipeline",
    "ondemand_dast_scan",
    "ondemand_dast_validation",
    "security_orchestration_policy",
    "container_registry_push",
    "pipeline_execution_policy_schedule",
)

_SIGNATURE_START = re.compile(rb"^-----BEGIN (?:PGP|SSH) SIGNATURE-----$", re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeRequest:
    """The merge request a `merge_request_event` pipeline pretends to run for."""

    source_branch: str
    target_branch: str
    iid: int = 1
    title: str = ""
    description: str = ""
    diff_base_sha: str = ZERO_SHA
    source_protected: bool = False
    target_protected: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineContext:
    """Everything about the pipeline being simulated that does not come from the YAML.

    `sha` is HEAD: localci always tests the working tree, whatever ref it pretends to be.
    `changes_base` is the commit `rules:changes` diffs against; None means "no push info", where
    GitLab treats every `changes` clause as true. `before_sha` is that same base, or 40 zeros.
    `is_git_repo` / `has_commits` are False for synthetic contexts; `require_git` turns that
    into a clear error where a git fact is really needed.
    """

    project_dir: Path
    config_file: str = ".gitlab-ci.yml"
    ref: str = "main"
    ref_is_tag: bool = False
    sha: str = ZERO_SHA
    before_sha: str = ZERO_SHA
    commit_message: str = ""
    commit_title: str = ""
    commit_description: str = ""
    commit_author: str = ""
    commit_timestamp: str = "1970-01-01T00:00:00Z"
    tag_message: str | None = None
    source: str = "push"
    default_branch: str = "main"
    protected: bool = False
    project_path: str = "local/project"
    server_host: str = "localhost"
    server_port: int = 443
    server_protocol: str = "https"
    user_name: str = "localci"
    user_email: str = "localci@localhost"
    merge_request: MergeRequest | None = None
    changes_base: str | None = None
    changes_base_label: str | None = None
    changes_base_reason: str = "no push information, so every `changes` is true"
    remote: str = "origin"
    is_git_repo: bool = False
    has_commits: bool = False
    detached: bool = False

    @property
    def short_sha(self) -> str:
        return self.sha[:8]

    @property
    def commit_branch(self) -> str | None:
        """`CI_COMMIT_BRANCH`: the ref, only in branch pipelines (not tags, not MRs)."""
        if self.ref_is_tag or self.merge_request is not None:
            return None
        return self.ref

    @property
    def project_name(self) -> str:
        return self.project_path.rpartition("/")[2]

    @property
    def project_namespace(self) -> str:
        return self.project_path.rpartition("/")[0]

    @property
    def server_url(self) -> str:
        port = self.server_port
        default = DEFAULT_PORTS.get(self.server_protocol)
        suffix = "" if port == default else f":{port}"
        return f"{self.server_protocol}://{self.server_host}{suffix}"

    @property
    def project_url(self) -> str:
        return f"{self.server_url}/{self.project_path}"

    def require_git(self, purpose: str, *, commits: bool = False) -> None:
        """Raise GitError explaining that `purpose` needs a repository (with commits)."""
        if not self.is_git_repo:
            raise GitError(f"{purpose} needs a git repository, and {self.project_dir} is not one")
        if commits and not self.has_commits:
            raise GitError(f"{purpose} needs a commit, and the repository has none yet")


@dataclass(frozen=True, slots=True)
class _Request:
    """What the user asked to simulate, as `detect_context` got it."""

    config_file: str
    branch: str | None
    tag: str | None
    source: str
    default_branch: str | None
    mr_target: str | None
    changes_since: str | None
    protected_refs: tuple[str, ...]


# --------------------------------------------------------------------------------- entry points


def detect_context(
    project_dir: Path,
    *,
    config_file: str = ".gitlab-ci.yml",
    branch: str | None = None,
    tag: str | None = None,
    source: str = "push",
    default_branch: str | None = None,
    mr_target: str | None = None,
    changes_since: str | None = None,
    protected_refs: Sequence[str] = (),
) -> PipelineContext:
    """Read the git facts of `project_dir` and combine them with the simulation options.

    The ref is `--tag`, else `--branch`, else the checked-out branch (for a detached HEAD: the
    one local branch containing it). The changes base is `changes_since`; else, for a branch
    push, `refs/remotes/<upstream remote or origin>/<ref>` if it exists (what `git push`
    compares against); else None, as for a new branch. Tags, schedules, web, api and trigger
    pipelines have no base. MR pipelines (`mr_target` defaults to the default branch) use the
    merge-base with the target. Outside a git repository the context is synthetic.
    """
    request = _Request(
        config_file=config_file,
        branch=branch,
        tag=tag,
        source=source,
        default_branch=default_branch,
        mr_target=mr_target,
        changes_since=changes_since,
        protected_refs=tuple(protected_refs),
    )
    _check_request(request)
    root = _existing_dir(project_dir)
    is_repo, head_branch = git_reads.read_head(root)
    config = git_reads.read_config(root)
    if not is_repo:
        return _synthetic_context(root, config, request)
    refs, symrefs = git_reads.list_refs(root)
    objects = git_reads.read_objects(root, _wanted_objects(request))
    repo = git_reads.Repo(root, config, refs, symrefs, head_branch, objects)
    return _repo_context(repo, request)


def workspace_files(project_dir: Path) -> list[str]:
    """Files a job sees and `rules:exists` checks, as sorted POSIX paths relative to project_dir.

    Tracked files (with their uncommitted edits, minus the ones deleted in the working tree)
    plus untracked files git does not ignore. Outside a git repository: every file below
    project_dir except `.git/` and `.localci/`.
    """
    root = _existing_dir(project_dir)
    proc = git_reads.run(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if proc.returncode != 0:
        if git_reads.not_a_repo(proc):
            return git_reads.walk_files(root)
        raise GitError(f"could not list the files of {root}: {git_reads.error_text(proc)}")
    deleted = git_reads.git_paths(root, "ls-files", "-z", "--deleted")
    return sorted(set(git_reads.split_paths(proc.stdout)) - set(deleted))


def changed_paths(ctx: PipelineContext, compare_to: str | None = None) -> frozenset[str] | None:
    """Paths `rules:changes` considers changed, or None for "no push info" (always true).

    Changed = files that differ between the merge-base of the base commit and HEAD, and the
    working tree (`git diff --merge-base BASE`, renames as delete + add), plus untracked files
    git does not ignore. The base is `compare_to` (a ref or sha; `origin/<name>` is preferred
    for branch names, like GitLab comparing with the server's branch), else `ctx.changes_base`.
    Not cached: callers evaluating many rules should call it once per distinct `compare_to`.
    """
    if not ctx.is_git_repo or not ctx.has_commits:
        return None
    base = _resolve_compare_to(ctx, compare_to) if compare_to else ctx.changes_base
    if base is None:
        return None
    proc = git_reads.run(
        ctx.project_dir,
        *("diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--relative"),
        *("--merge-base", base),
    )
    if proc.returncode != 0:
        if "no merge base" in git_reads.error_text(proc):
            return None  # unrelated histories: nothing meaningful to compare, like a new branch
        raise GitError(
            f"could not compute changed files against {base[:12]}: {git_reads.error_text(proc)}"
        )
    untracked = git_reads.git_paths(
        ctx.project_dir, "ls-files", "-z", "--others", "--exclude-standard"
    )
    return frozenset(git_reads.split_paths(proc.stdout)) | frozenset(untracked)


# ------------------------------------------------------------------------------------ assembly


def _check_request(request: _Request) -> None:
    if request.branch is not None and request.tag is not None:
        raise UsageError("--branch and --tag are mutually exclusive: a pipeline runs for one ref")
    if request.source not in PIPELINE_SOURCES:
        raise UsageError(
            f"unknown pipeline source {request.source!r}; use one of: {', '.join(PIPELINE_SOURCES)}"
        )
    if request.source == MR_SOURCE and request.tag is not None:
        raise UsageError("merge request pipelines run for a branch, not for a tag (--tag)")
    for option, value in (
        ("--branch", request.branch),
        ("--tag", request.tag),
        ("--default-branch", request.default_branch),
        ("--mr-target", request.mr_target),
        ("--changes-since", request.changes_since),
    ):
        if value is not None and (not value.strip() or "\n" in value or value.startswith("-")):
            raise UsageError(f"{option} needs a ref name, got {value!r}")


def _existing_dir(project_dir: Path) -> Path:
    root = project_dir.resolve()
    if not root.is_dir():
        raise UsageError(f"project directory {project_dir} does not exist")
    return root


# HEAD's first parent: the changes base of a push with nothing to push and no earlier position
# of the tracking ref (`_pushed_base`); read with HEAD in the same process, as that is the
# common case for a clone. (The reflog position cannot join them: `cat-file` dies on a reflog
# with too few entries where `rev-parse --verify --quiet` just fails.)
_FIRST_PARENT = "HEAD^1"


def _wanted_objects(request: _Request) -> list[str]:
    names = ["HEAD"]
    if request.tag is not None:
        names.append(f"refs/tags/{request.tag}")
    if request.changes_since is not None:
        names.append(f"{request.changes_since}^{{commit}}")
    elif request.source == "push" and request.tag is None:
        names.append(f"{_FIRST_PARENT}^{{commit}}")
    return names


def _repo_context(repo: git_reads.Repo, request: _Request) -> PipelineContext:
    has_commits = repo.head is not None
    ref = (
        request.tag
        or request.branch
        or repo.head_branch
        or git_reads.branch_containing_head(repo.root)
    )
    default = _default_branch(request.default_branch, repo.refs, repo.symrefs, repo.config)
    commit = git_reads.parse_commit(repo.head.body) if repo.head is not None else None
    mr = _merge_request(repo, request, ref, default, commit)
    base, label, reason = _changes_base(repo, request, ref, mr)
    host, path, protocol, port = project_location(repo.config, repo.root)
    name, email = _user(repo.config)
    message = commit.message if commit else ""
    return PipelineContext(
        project_dir=repo.root,
        config_file=request.config_file,
        ref=ref,
        ref_is_tag=request.tag is not None,
        sha=repo.head.sha if repo.head is not None else ZERO_SHA,
        before_sha=base or ZERO_SHA,
        commit_message=message,
        commit_title=commit_title(message) if commit else "",
        commit_description=commit_description(message),
        commit_author=commit.author if commit else f"{name} <{email}>",
        commit_timestamp=commit.timestamp if commit else "1970-01-01T00:00:00Z",
        tag_message=_tag_message(repo, request.tag),
        source=request.source,
        default_branch=default,
        protected=_ref_protected(request, ref, default),
        project_path=path,
        server_host=host,
        server_port=port,
        server_protocol=protocol,
        user_name=name,
        user_email=email,
        merge_request=mr,
        changes_base=base,
        changes_base_label=label,
        changes_base_reason=reason,
        remote=repo.upstream_remote(ref),
        is_git_repo=True,
        has_commits=has_commits,
        detached=repo.head_branch is None,
    )


def _synthetic_context(root: Path, config: Mapping[str, str], request: _Request) -> PipelineContext:
    default = _default_branch(request.default_branch, {}, {}, config)
    ref = request.tag or request.branch or default
    host, path, protocol, port = project_location({}, root)
    name, email = _user(config)
    mr = None
    if request.source == MR_SOURCE:
        target = request.mr_target or default
        mr = MergeRequest(
            source_branch=ref,
            target_branch=target,
            source_protected=_is_protected(ref, False, default, request.protected_refs),
            target_protected=_is_protected(target, False, default, request.protected_refs),
        )
    return PipelineContext(
        project_dir=root,
        config_file=request.config_file,
        ref=ref,
        ref_is_tag=request.tag is not None,
        commit_author=f"{name} <{email}>",
        source=request.source,
        default_branch=default,
        protected=_ref_protected(request, ref, default),
        project_path=path,
        server_host=host,
        server_port=port,
        server_protocol=protocol,
        user_name=name,
        user_email=email,
        merge_request=mr,
    )


def _merge_request(
    repo: git_reads.Repo, request: _Request, ref: str, default: str, commit: git_reads.Commit | None
) -> MergeRequest | None:
    if request.source != MR_SOURCE:
        return None
    target = request.mr_target or default
    message = commit.message if commit else ""
    return MergeRequest(
        source_branch=ref,
        target_branch=target,
        title=commit_title(message),
        description=commit_description(message),
        diff_base_sha=_merge_base(repo, ref, target) if repo.head is not None else ZERO_SHA,
        source_protected=_is_protected(ref, False, default, request.protected_refs),
        target_protected=_is_protected(target, False, default, request.protected_refs),
    )


def _merge_base(repo: git_reads.Repo, source: str, target: str) -> str:
    remote = repo.upstream_remote(source)
    candidates = (f"refs/remotes/{remote}/{target}", f"refs/heads/{target}")
    target_sha = next((repo.refs[c] for c in candidates if c in repo.refs), None)
    if target_sha is None:
        raise GitError(
            f"merge request target branch {target!r} not found"
            f" (looked for {' and '.join(candidates)});"
            " fetch it, or pass --mr-target with a branch that exists locally"
        )
    proc = git_reads.run(repo.root, "merge-base", "HEAD", target_sha)
    if proc.returncode == 1:
        raise GitError(f"HEAD and the merge request target {target!r} have no common history")
    if proc.returncode != 0:
        raise GitError(
            f"could not find the merge-base with {target!r}: {git_reads.error_text(proc)}"
        )
    return proc.stdout.decode().strip()


def _changes_base(
    repo: git_reads.Repo, request: _Request, ref: str, mr: MergeRequest | None
) -> tuple[str | None, str | None, str]:
    """(base commit, its name, why it is the base) for `rules:changes`."""
    if request.changes_since is not None:
        found = repo.objects.get(f"{request.changes_since}^{{commit}}")
        if found is None:
            raise GitError(
                f"--changes-since {request.changes_since!r} is not a commit, branch or tag here"
            )
        return found.sha, request.changes_since, "--changes-since"
    head = repo.head
    if head is None:
        return None, None, _NO_PUSH_INFO
    if mr is not None:
        return mr.diff_base_sha, f"merge-base with {mr.target_branch}", "the merge request's diff"
    if request.source != "push" or request.tag is not None:
        return None, None, _NO_PUSH_INFO
    remote = repo.upstream_remote(ref)
    tracking = f"{remote}/{ref}"
    tip = repo.refs.get(f"refs/remotes/{tracking}")
    if tip is None:
        return None, None, _NO_PUSH_INFO
    if tip != head.sha:
        return tip, tracking, "the remote-tracking branch: what `git push` would compare against"
    return _pushed_base(repo, tracking, tip)


_NO_PUSH_INFO = "no push information (new branch, tag, schedule...), so every `changes` is true"


def _pushed_base(repo: git_reads.Repo, tracking: str, tip: str) -> tuple[str, str, str]:
    """Nothing to push: HEAD is what the remote already has. GitLab ran that push's pipeline
    against the branch's previous tip, which is where the remote-tracking ref pointed before
    it last moved (its reflog), else HEAD's first parent. With neither (a root or shallow
    commit) the tracking ref itself stays the base: only uncommitted changes count."""
    nothing = f"nothing to push ({tracking} is HEAD)"
    reflog = f"{tracking}@{{1}}"
    proc = git_reads.run(repo.root, "rev-parse", "--verify", "--quiet", f"{reflog}^{{commit}}")
    sha = proc.stdout.decode().strip()
    if proc.returncode == 0 and sha and sha != tip:
        return (
            sha,
            reflog,
            f"{nothing}, so where {tracking} pointed before it last moved (its reflog):"
            " the range GitLab's pipeline for that push compared",
        )
    parent = repo.objects.get(f"{_FIRST_PARENT}^{{commit}}")
    if parent is not None and parent.sha != tip:
        return (
            parent.sha,
            _FIRST_PARENT,
            f"{nothing} and no earlier position of {tracking} in its reflog, so the"
            " commit's first parent",
        )
    return tip, tracking, f"{nothing}, no earlier position and no parent: only uncommitted changes"


def describe_changes_base(ctx: PipelineContext) -> str:
    """Which commit `rules:changes` compares with, and why (a line of `explain`)."""
    if ctx.changes_base is None:
        return f"rules:changes: {ctx.changes_base_reason}"
    return (
        f"rules:changes compares with {ctx.changes_base_label} ({ctx.changes_base[:8]}): "
        f"{ctx.changes_base_reason}"
    )


def _resolve_compare_to(ctx: PipelineContext, compare_to: str) -> str:
    if "\n" in compare_to:
        raise GitError(f"rules:changes:compare_to {compare_to!r} is not a ref name")
    short = compare_to.removeprefix("refs/heads/")
    names = [f"refs/remotes/{ctx.remote}/{short}^{{commit}}", f"{compare_to}^{{commit}}"]
    found = git_reads.read_objects(ctx.project_dir, names)
    for name in names:
        obj = found.get(name)
        if obj is not None:
            return obj.sha
    raise GitError(f"rules:changes:compare_to {compare_to!r} is not a branch, tag or commit here")


def _tag_message(repo: git_reads.Repo, tag: str | None) -> str | None:
    if tag is None:
        return None
    obj = repo.objects.get(f"refs/tags/{tag}")
    if obj is None or obj.kind != "tag":
        return None
    body = obj.body.partition(b"\n\n")[2]
    signature = _SIGNATURE_START.search(body)
    if signature is not None:
        body = body[: signature.start()]
    # Chomped: GitLab's API and variables show tag messages without git's trailing newline.
    return git_reads.chomp(
        git_reads.decode_text(body, git_reads.object_headers(obj.body).get("encoding", "utf-8"))
    )


def _default_branch(
    explicit: str | None,
    refs: Mapping[str, str],
    symrefs: Mapping[str, str],
    config: Mapping[str, str],
) -> str:
    if explicit:
        return explicit
    target = symrefs.get("refs/remotes/origin/HEAD", "")
    if target.startswith("refs/remotes/origin/"):
        return target.removeprefix("refs/remotes/origin/")
    for name in ("main", "master"):
        if f"refs/heads/{name}" in refs:
            return name
    return config.get("init.defaultbranch") or "main"


def _ref_protected(request: _Request, ref: str, default: str) -> bool:
    # An MR pipeline runs on refs/merge-requests/<iid>/head, which is never protected.
    if request.source == MR_SOURCE:
        return False
    return _is_protected(ref, request.tag is not None, default, request.protected_refs)


def _is_protected(ref: str, is_tag: bool, default: str, patterns: Sequence[str]) -> bool:
    if not is_tag and ref == default:
        return True
    # GitLab's protected-ref wildcard: `*` matches anything, including `/`.
    return any(
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), ref)
        for pattern in patterns
    )


def _user(config: Mapping[str, str]) -> tuple[str, str]:
    try:
        login = getpass.getuser()
    except (OSError, KeyError):
        login = "localci"
    return config.get("user.name") or login, config.get("user.email") or f"{login}@localhost"
