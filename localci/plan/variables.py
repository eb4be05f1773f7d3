"""CI/CD variables: GitLab's predefined set and both expansion layers.

Precedence (docs/SEMANTICS.md §10.2) is composed by the planner by stacking dicts, lowest
first, so a later layer wins: predefined (`pipeline_variables`, then `job_variables`, then
`runtime_variables`) < global YAML `variables` (the matched `workflow:rules:variables` over
them) < job YAML `variables` (matrix values over them, then the matched `rules:variables`) <
dotenv variables of dependencies < instance < group < project settings files < pipeline
variables (`--var`, variables files named on the command line). Then `expand_gitlab` once over
the stacked mapping, then execute/environment.py's `runner_environment` builds the job's
environment from the result.
"""

from __future__ import annotations

import graphlib
import platform
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from localci import __version__
from localci.plan.context import MergeRequest, PipelineContext
from localci.plan.dotenv_report import parse_dotenv_report
from localci.plan.variable_values import (
    MASKING_HINT,
    CircularVariableError,
    DotenvError,
    VarValue,
    mask_text,
    masking_problem,
)

#: The GitLab version localci claims to be (`CI_SERVER_VERSION`).
GITLAB_VERSION = "18.0.0"
#: Names `pipeline_variables` returns that GitLab only gives to running jobs, not to `rules`.
JOB_ONLY_VARIABLES = frozenset({"CI_PIPELINE_ID", "CI_PIPELINE_URL", "CI_PIPELINE_CREATED_AT"})

_NOT_SLUG = re.compile(r"[^a-z0-9]")
_GITLAB_REF = re.compile(
    r"\$\$|%%|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\$\{(?P<brace>[A-Za-z_][A-Za-z0-9_]*)\}"
    r"|%(?P<percent>[A-Za-z_][A-Za-z0-9_]*)%"
)
_SHELL_SPECIAL = frozenset("*#$@!?-0123456789")
_MAX_COMMIT_MESSAGE_BYTES = 100_000
_TIERS = (
    (r"(dev|review|trunk)", "development"),
    (r"(test|tst|int|ac(ce|)pt|qa|qc|control|quality)", "testing"),
    (r"(st(a|)g|mod(e|)l|pre|demo|non)", "staging"),
    (r"(pr(o|)d|live)", "production"),
)


# ------------------------------------------------------------------------------------- slugs


def slugify(text: str, limit: int = 63) -> str:
    """GitLab's slug: lowercase, every char not in [a-z0-9] becomes `-`, cut, strip `-` ends."""
    return _NOT_SLUG.sub("-", text.lower())[:limit].strip("-")


def environment_slug(name: str) -> str:
    """`CI_ENVIRONMENT_SLUG`: ≤ 24 chars, starts with a letter, hashed suffix when lossy."""
    slug = re.sub(r"[^a-z0-9]", "-", name.lower())
    if not slug or not "a" <= slug[0] <= "z":
        slug = "env-" + slug
    slug = re.sub(r"-{2,}", "-", slug)
    if len(slug) <= 24 and slug == name:
        return slug.removesuffix("-")
    slug = slug[:17]
    return (slug if slug.endswith("-") else slug + "-") + _base36_tail(name)


def environment_tier(name: str) -> str:
    """GitLab's guess of `deployment_tier` from an environment name."""
    for pattern, tier in _TIERS:
        # Compiled on first use (re caches it): most pipelines name no environment.
        if re.search(pattern, name, re.IGNORECASE):
            return tier
    return "other"


def _base36_tail(name: str) -> str:
    import hashlib

    number = int(hashlib.sha256(name.encode()).hexdigest(), 16)
    digits = ""
    while number and len(digits) < 6:
        number, rest = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return digits


# ------------------------------------------------------------------------ predefined variables


def pipeline_variables(
    ctx: PipelineContext,
    *,
    pipeline_id: int = 1,
    pipeline_iid: int = 1,
    pipeline_name: str | None = None,
    created_at: str | None = None,
) -> dict[str, str]:
    """Every predefined pre-pipeline and pipeline variable of §10.4 that applies to `ctx`.

    A variable GitLab leaves unset is absent (e.g. `CI_COMMIT_TAG` in branch pipelines). URLs
    are built from the origin remote's host (or `https://localhost`); nothing is contacted.
    `JOB_ONLY_VARIABLES` lists the names here that `rules` must not see.
    """
    url = f"{ctx.project_url}/-/pipelines/{pipeline_id}"
    variables = {
        **_server_variables(ctx),
        **_project_variables(ctx),
        "CI_PIPELINE_ID": str(pipeline_id),
        "CI_PIPELINE_IID": str(pipeline_iid),
        "CI_PIPELINE_SOURCE": ctx.source,
        "CI_PIPELINE_CREATED_AT": created_at or utc_now(),
        "CI_PIPELINE_URL": url,
        **_commit_variables(ctx),
        **_user_variables(ctx),
    }
    if pipeline_name is not None:
        variables["CI_PIPELINE_NAME"] = pipeline_name
    if ctx.source == "trigger":
        variables["CI_PIPELINE_TRIGGERED"] = "true"
    if ctx.ref_is_tag:
        variables["CI_COMMIT_TAG"] = ctx.ref
        variables["CI_COMMIT_TAG_MESSAGE"] = ctx.tag_message or ""
    if ctx.merge_request is not None:
        variables.update(_merge_request_variables(ctx, ctx.merge_request))
    return variables


def include_rule_variables(ctx: PipelineContext) -> dict[str, str]:
    """The restricted set usable in `include:rules` and include locations (§1.3).

    Server and project predefined variables (`CI_PROJECT_*`, `CI_DEFAULT_BRANCH`,
    `CI_CONFIG_PATH`, `GITLAB_FEATURES`...), `CI_COMMIT_REF_NAME`, `CI_PIPELINE_SOURCE` and, for
    trigger pipelines, `CI_PIPELINE_TRIGGERED`. Callers add pipeline/settings variables.
    """
    variables = {
        **_server_variables(ctx),
        **_project_variables(ctx),
        "CI_COMMIT_REF_NAME": ctx.ref,
        "CI_PIPELINE_SOURCE": ctx.source,
    }
    if ctx.source == "trigger":
        variables["CI_PIPELINE_TRIGGERED"] = "true"
    return variables


def job_variables(
    *,
    job_name: str,
    group_name: str,
    stage: str,
    node_index: int | None,
    node_total: int,
    manual: bool = False,
) -> dict[str, str]:
    """Pipeline-level job variables: usable in the job's own `rules`."""
    variables = {
        "CI_JOB_NAME": job_name,
        "CI_JOB_NAME_SLUG": slugify(job_name),
        "CI_JOB_GROUP_NAME": group_name,
        "CI_JOB_STAGE": stage,
        "CI_NODE_TOTAL": str(node_total),
    }
    if node_index is not None:
        variables["CI_NODE_INDEX"] = str(node_index)
    if manual:
        variables["CI_JOB_MANUAL"] = "true"
    return variables


def runtime_variables(
    *,
    project_dir: Path,
    builds_dir: Path,
    job_id: int,
    started_at: str,
    timeout_s: int,
    environment: tuple[str, str | None, str, str | None] | None = None,
    project_url: str | None = None,
) -> dict[str, str]:
    """Variables only a running job has: workspace paths, ids, runner facts, environment.

    `environment` is `(name, url, action, tier)` with name/url already expanded; a None tier is
    guessed from the name like GitLab does. `project_url` (`ctx.project_url`) adds `CI_JOB_URL`.
    """
    variables = {
        "CI_PROJECT_DIR": str(project_dir),
        "CI_BUILDS_DIR": str(builds_dir),
        "CI_JOB_ID": str(job_id),
        "CI_JOB_STARTED_AT": started_at,
        "CI_JOB_TIMEOUT": str(timeout_s),
        "CI_JOB_STATUS": "running",
        "CI_SERVER": "yes",
        "CI_SHARED_ENVIRONMENT": "true",
        **_runner_variables(),
    }
    if project_url is not None:
        variables["CI_JOB_URL"] = f"{project_url}/-/jobs/{job_id}"
    if environment is not None:
        variables.update(_environment_variables(*environment))
    return variables


def utc_now() -> str:
    """The current time as GitLab writes timestamps: ISO 8601, UTC, `Z`."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _server_variables(ctx: PipelineContext) -> dict[str, str]:
    major, minor, patch = GITLAB_VERSION.split(".")
    fqdn = ctx.server_url.split("://", 1)[1]
    return {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_FQDN": fqdn,
        "CI_SERVER_URL": ctx.server_url,
        "CI_SERVER_HOST": ctx.server_host,
        "CI_SERVER_PORT": str(ctx.server_port),
        "CI_SERVER_PROTOCOL": ctx.server_protocol,
        "CI_SERVER_SHELL_SSH_HOST": ctx.server_host,
        "CI_SERVER_SHELL_SSH_PORT": "22",
        "CI_SERVER_NAME": "GitLab",
        "CI_SERVER_VERSION": GITLAB_VERSION,
        "CI_SERVER_VERSION_MAJOR": major,
        "CI_SERVER_VERSION_MINOR": minor,
        "CI_SERVER_VERSION_PATCH": patch,
        "CI_SERVER_REVISION": "localci",
        "CI_API_V4_URL": f"{ctx.server_url}/api/v4",
        "CI_API_GRAPHQL_URL": f"{ctx.server_url}/api/graphql",
        "CI_TEMPLATE_REGISTRY_HOST": "registry.gitlab.com",
        "GITLAB_FEATURES": "",
    }


def _project_variables(ctx: PipelineContext) -> dict[str, str]:
    namespace = ctx.project_namespace
    return {
        "CI_PROJECT_ID": "0",
        "CI_PROJECT_NAME": ctx.project_name,
        "CI_PROJECT_TITLE": ctx.project_name,
        "CI_PROJECT_DESCRIPTION": "",
        "CI_PROJECT_PATH": ctx.project_path,
        "CI_PROJECT_PATH_SLUG": slugify(ctx.project_path),
        "CI_PROJECT_NAMESPACE": namespace,
        "CI_PROJECT_NAMESPACE_SLUG": slugify(namespace),
        "CI_PROJECT_NAMESPACE_ID": "0",
        "CI_PROJECT_ROOT_NAMESPACE": ctx.project_path.split("/", 1)[0],
        "CI_PROJECT_URL": ctx.project_url,
        "CI_PROJECT_VISIBILITY": "private",
        "CI_PROJECT_REPOSITORY_LANGUAGES": "",
        "CI_DEFAULT_BRANCH": ctx.default_branch,
        "CI_DEFAULT_BRANCH_SLUG": slugify(ctx.default_branch),
        "CI_CONFIG_PATH": ctx.config_file,
    }


def _commit_variables(ctx: PipelineContext) -> dict[str, str]:
    truncated = len(ctx.commit_message.encode()) > _MAX_COMMIT_MESSAGE_BYTES
    variables = {
        "CI_COMMIT_SHA": ctx.sha,
        "CI_COMMIT_SHORT_SHA": ctx.short_sha,
        "CI_COMMIT_BEFORE_SHA": ctx.before_sha,
        "CI_COMMIT_REF_NAME": ctx.ref,
        "CI_COMMIT_REF_SLUG": slugify(ctx.ref),
        "CI_COMMIT_MESSAGE": _truncate(ctx.commit_message, truncated),
        "CI_COMMIT_MESSAGE_IS_TRUNCATED": "true" if truncated else "false",
        "CI_COMMIT_TITLE": _truncate(ctx.commit_title, truncated),
        "CI_COMMIT_DESCRIPTION": _truncate(ctx.commit_description, truncated),
        "CI_COMMIT_REF_PROTECTED": "true" if ctx.protected else "false",
        "CI_COMMIT_TIMESTAMP": ctx.commit_timestamp,
        "CI_COMMIT_AUTHOR": ctx.commit_author,
    }
    if ctx.commit_branch is not None:
        variables["CI_COMMIT_BRANCH"] = ctx.commit_branch
    return variables


def _truncate(text: str, truncated: bool) -> str:
    if not truncated:
        return text
    return text.encode()[:_MAX_COMMIT_MESSAGE_BYTES].decode("utf-8", "ignore")


def _user_variables(ctx: PipelineContext) -> dict[str, str]:
    login = ctx.user_email.partition("@")[0] or slugify(ctx.user_name) or "localci"
    return {
        "GITLAB_USER_ID": "1",
        "GITLAB_USER_EMAIL": ctx.user_email,
        "GITLAB_USER_LOGIN": login,
        "GITLAB_USER_NAME": ctx.user_name,
    }


def _merge_request_variables(ctx: PipelineContext, mr: MergeRequest) -> dict[str, str]:
    iid = str(mr.iid)
    project = {"PATH": ctx.project_path, "URL": ctx.project_url, "ID": "0"}
    variables = {
        "CI_MERGE_REQUEST_EVENT_TYPE": "detached",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": "",
        "CI_MERGE_REQUEST_TARGET_BRANCH_SHA": "",
        "CI_MERGE_REQUEST_DIFF_ID": "1",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": mr.diff_base_sha,
        "CI_MERGE_REQUEST_ID": iid,
        "CI_MERGE_REQUEST_IID": iid,
        "CI_MERGE_REQUEST_REF_PATH": f"refs/merge-requests/{iid}/head",
        "CI_MERGE_REQUEST_TITLE": mr.title,
        "CI_MERGE_REQUEST_DESCRIPTION": mr.description,
        "CI_MERGE_REQUEST_DESCRIPTION_IS_TRUNCATED": "false",
        "CI_MERGE_REQUEST_DRAFT": "false",
        "CI_MERGE_REQUEST_SQUASH_ON_MERGE": "false",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": mr.source_branch,
        "CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED": "true" if mr.source_protected else "false",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": mr.target_branch,
        "CI_MERGE_REQUEST_TARGET_BRANCH_PROTECTED": "true" if mr.target_protected else "false",
        "CI_OPEN_MERGE_REQUESTS": f"{ctx.project_path}!{iid}",
    }
    for key, value in project.items():
        variables[f"CI_MERGE_REQUEST_PROJECT_{key}"] = value
        variables[f"CI_MERGE_REQUEST_SOURCE_PROJECT_{key}"] = value
    return variables


def _runner_variables() -> dict[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386"}.get(machine, machine)
    return {
        "CI_RUNNER_ID": "1",
        "CI_RUNNER_DESCRIPTION": "localci",
        "CI_RUNNER_TAGS": "[]",
        "CI_RUNNER_VERSION": __version__,
        "CI_RUNNER_REVISION": "localci",
        "CI_RUNNER_SHORT_TOKEN": "localci0",
        "CI_RUNNER_EXECUTABLE_ARCH": f"{platform.system().lower()}/{arch}",
        "CI_CONCURRENT_ID": "0",
        "CI_CONCURRENT_PROJECT_ID": "0",
    }


def _environment_variables(
    name: str, url: str | None, action: str, tier: str | None
) -> dict[str, str]:
    variables = {
        "CI_ENVIRONMENT_NAME": name,
        "CI_ENVIRONMENT_SLUG": environment_slug(name),
        "CI_ENVIRONMENT_ACTION": action,
        "CI_ENVIRONMENT_TIER": tier or environment_tier(name),
    }
    if url:
        variables["CI_ENVIRONMENT_URL"] = url
    return variables


# ----------------------------------------------------------------------------------- expansion


def expand_gitlab(variables: Mapping[str, VarValue]) -> dict[str, VarValue]:
    """GitLab's expansion of variable values (§10.3.1), independent of definition order.

    `$X`, `${X}` and `%X%` are replaced by the (already expanded) value of X; `$$` and `%%` stay
    for the runner; references to unknown, raw (`expand: false`) or file variables, and a
    variable's reference to itself, stay literal. Raw values are never touched. A loop between
    variables raises `CircularVariableError` naming them.
    """
    resolvable = {name for name, var in variables.items() if not var.raw and not var.file}
    # Only values that reference another variable change; most (the predefined ones) do not.
    graph: dict[str, set[str]] = {}
    for name, var in variables.items():
        if var.raw:
            continue
        refs = {ref for ref in _gitlab_refs(var.value) if ref in resolvable and ref != name}
        if refs:
            graph[name] = refs
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise CircularVariableError(exc.args[1]) from None
    # What a reference may be replaced with: resolvable and already expanded.
    usable = {name: variables[name].value for name in resolvable if name not in graph}
    done: dict[str, str] = {}
    for name in order:
        if name not in graph:
            continue
        value = _GITLAB_REF.sub(
            lambda m: usable.get(_ref_name(m), m.group(0)), variables[name].value
        )
        done[name] = value
        if name in resolvable:
            usable[name] = value
    return {
        name: replace(var, value=done[name]) if done.get(name, var.value) != var.value else var
        for name, var in variables.items()
    }


def _gitlab_refs(value: str) -> set[str]:
    if "$" not in value and "%" not in value:
        return set()
    return {name for match in _GITLAB_REF.finditer(value) if (name := _ref_name(match))}


def _ref_name(match: re.Match[str]) -> str:
    return match["plain"] or match["brace"] or match["percent"] or ""


def expand_runner(text: str, env: Mapping[str, str]) -> str:
    """gitlab-runner's expansion: Go `os.Expand` with the runner's lookup (§10.3.2).

    `$X` / `${X}`; unknown names -> ""; `$$` -> `$`; `$*`, `$#`, `$@`, `$!`, `$?`, `$-`, `$0`-`$9`
    -> ""; a `$` not followed by a name stays; bad `${` syntax is dropped.
    """
    if "$" not in text:
        return text
    out: list[str] = []
    start = index = 0
    while index < len(text):
        if text[index] == "$" and index + 1 < len(text):
            out.append(text[start:index])
            name, width = _shell_name(text, index + 1)
            if name:
                out.append(_runner_lookup(name, env))
            elif width == 0:
                out.append("$")
            index += width
            start = index + 1
        index += 1
    out.append(text[start:])
    return "".join(out)


def _shell_name(text: str, at: int) -> tuple[str, int]:
    """Go's `getShellName`: the name after a `$` and how many characters it used."""
    first = text[at]
    if first == "{":
        if len(text) > at + 2 and text[at + 1] in _SHELL_SPECIAL and text[at + 2] == "}":
            return text[at + 1], 3
        close = text.find("}", at + 1)
        if close < 0:
            return "", 1
        if close == at + 1:
            return "", 2
        return text[at + 1 : close], close - at + 1
    if first in _SHELL_SPECIAL:
        return first, 1
    end = at
    while end < len(text) and (text[end] == "_" or (text[end].isascii() and text[end].isalnum())):
        end += 1
    return text[at:end], end - at


def _runner_lookup(name: str, env: Mapping[str, str]) -> str:
    if name == "$":
        return "$"
    if len(name) == 1 and name in _SHELL_SPECIAL:
        return ""
    return env.get(name, "")


# ------------------------------------------------------------------------ command-line values


# ------------------------------------------------------------------------------ dotenv reports


# Executor modules import these from here; their homes are variable_values and dotenv_report.
__all__ = [
    "MASKING_HINT",
    "CircularVariableError",
    "DotenvError",
    "VarValue",
    "mask_text",
    "masking_problem",
    "parse_dotenv_report",
]
