"""CI/CD variables: GitLab's predefined set, both expansion layers, variables files and dotenv.

Precedence (docs/SEMANTICS.md §10.2) is composed by the planner by stacking dicts, lowest
first, so a later layer wins: predefined (`pipeline_variables`, then `job_variables`, then
`runtime_variables`) < global YAML `variables` (the matched `workflow:rules:variables` over
them) < job YAML `variables` (matrix values over them, then the matched `rules:variables`) <
dotenv variables of dependencies < instance < group < project settings files < pipeline
variables (`--var`, variables files named on the command line). Then `expand_gitlab` once over
the stacked mapping, then `runner_environment` builds the job's environment from the result.
"""

from __future__ import annotations

import graphlib
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path

import yaml

from localci import __version__
from localci.errors import ConfigError, Location, Problem, UsageError
from localci.plan.context import MergeRequest, PipelineContext

#: The GitLab version localci claims to be (`CI_SERVER_VERSION`).
GITLAB_VERSION = "18.0.0"
#: Names `pipeline_variables` returns that GitLab only gives to running jobs, not to `rules`.
JOB_ONLY_VARIABLES = frozenset({"CI_PIPELINE_ID", "CI_PIPELINE_URL", "CI_PIPELINE_CREATED_AT"})

_NAME = re.compile(r"[A-Za-z0-9_]+")
_NOT_SLUG = re.compile(r"[^a-z0-9]")
_GITLAB_REF = re.compile(
    r"\$\$|%%|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\$\{(?P<brace>[A-Za-z_][A-Za-z0-9_]*)\}"
    r"|%(?P<percent>[A-Za-z_][A-Za-z0-9_]*)%"
)
_SHELL_SPECIAL = frozenset("*#$@!?-0123456789")
_MAX_COMMIT_MESSAGE_BYTES = 100_000
_RUBY_SPACE = " \t\n\v\f\r\0"
_TIERS = (
    (re.compile(r"(dev|review|trunk)", re.IGNORECASE), "development"),
    (re.compile(r"(test|tst|int|ac(ce|)pt|qa|qc|control|quality)", re.IGNORECASE), "testing"),
    (re.compile(r"(st(a|)g|mod(e|)l|pre|demo|non)", re.IGNORECASE), "staging"),
    (re.compile(r"(pr(o|)d|live)", re.IGNORECASE), "production"),
)
_VARIABLE_KEYS = frozenset({"value", "masked", "file", "expand", "description"})


@dataclass(frozen=True, slots=True)
class VarValue:
    """One variable value with the flags that change how it is expanded and exposed."""

    value: str
    raw: bool = False
    masked: bool = False
    file: bool = False


class CircularVariableError(ConfigError):
    """Variables reference each other in a loop; GitLab refuses to expand them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        super().__init__(
            Problem(
                f"circular variable reference detected: {', '.join(self.names)}",
                hint="break the loop, or mark one of them `expand: false`",
            )
        )


class DotenvError(ConfigError):
    """An `artifacts:reports:dotenv` file GitLab would reject as a whole."""


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
        if pattern.search(name):
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


def runner_environment(
    variables: Mapping[str, VarValue], file_dir: Path, *, visible_dir: Path | None = None
) -> dict[str, str]:
    """The job's final environment (§10.3.2) from GitLab-expanded variables.

    Each non-raw value is runner-expanded once against the unexpanded set (a reference to a
    file variable gives its path). File variables are written to `file_dir/NAME` (mode 0600)
    and the environment holds that path as the job sees it: under `visible_dir` when given
    (a container mounts `file_dir` there), else under `file_dir`.
    """
    shown = file_dir if visible_dir is None else visible_dir
    lookup = {name: str(shown / name) if var.file else var.value for name, var in variables.items()}
    env: dict[str, str] = {}
    for name, var in variables.items():
        value = var.value if var.raw else expand_runner(var.value, lookup)
        if var.file:
            _write_secret(file_dir, name, value)
            value = str(shown / name)
        env[name] = value
    return env


def _write_secret(file_dir: Path, name: str, value: str) -> str:
    file_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = file_dir / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(value.encode())
    return str(path)


# GitLab's Ci::Maskable: an expanded masked value uses only these characters; a raw one
# (`expand: false`) anything but whitespace. Both need 8 characters and one line.
MASK_MIN_LENGTH = 8
_MASKABLE = re.compile(r"[a-zA-Z0-9_+=/@:.~-]*")
MASKING_HINT = (
    "GitLab refuses such a masked variable: use 8 or more characters from letters, digits "
    "and _+=/@:.~- on one line (`expand: false` also allows other non-space characters), "
    "or drop `masked`"
)


def masking_problem(var: VarValue) -> str | None:
    """Why GitLab would refuse `var` as a masked variable, or None when it may be masked."""
    value = var.value
    if "\n" in value or "\r" in value:
        return "it spans several lines"
    if len(value) < MASK_MIN_LENGTH:
        return f"it is shorter than {MASK_MIN_LENGTH} characters"
    if var.raw:
        spaces = re.search(r"\s", value)
        return "it contains whitespace" if spaces else None
    if _MASKABLE.fullmatch(value):
        return None
    bad = "".join(sorted({c for c in value if not _MASKABLE.fullmatch(c)}))
    return f"it contains {bad!r}, which an expanded masked variable cannot hold"


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each non-empty secret by `[MASKED]` (longest first)."""
    unique = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    if not unique:
        return text
    return re.sub("|".join(re.escape(secret) for secret in unique), "[MASKED]", text)


# ------------------------------------------------------------------------ command-line values


def parse_assignment(text: str) -> tuple[str, str]:
    """`NAME=VALUE` (from `--var`) -> (name, value); the value may be empty or contain `=`."""
    name, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"expected NAME=VALUE, got {text!r}")
    if not _NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a variable name: use only letters, digits and '_'")
    return name, value


def load_variables_file(path: Path) -> dict[str, VarValue]:
    """Read a variables file: YAML (`.yml`/`.yaml`) or dotenv (`.env`, or `NAME=` content).

    YAML: `NAME: value` or `NAME: {value, masked, file, expand, description}`. dotenv:
    `NAME=value`, `export NAME=value`, single/double quotes (may span lines), `#` comments.
    Every problem is reported with its file:line.
    """
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            Problem(f"cannot read variables file {path}: {reason}", hint="check the path")
        ) from exc
    if _looks_like_dotenv(path, text):
        return _load_dotenv_file(path, text)
    return _load_yaml_file(path, text)


def _looks_like_dotenv(path: Path, text: str) -> bool:
    if path.suffix in (".yml", ".yaml"):
        return False
    if path.suffix == ".env" or path.name.startswith(".env"):
        return True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return re.match(r"(export\s+)?[A-Za-z0-9_]+\s*=", stripped) is not None
    return False


class _LineError(Exception):
    """A dotenv problem on the current line; `used` following lines belong to it."""

    def __init__(self, message: str, used: int = 0) -> None:
        super().__init__(message)
        self.used = used


def _load_dotenv_file(path: Path, text: str) -> dict[str, VarValue]:
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    found: dict[str, VarValue] = {}
    problems: list[Problem] = []
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        if not line.strip() or line.strip().startswith("#"):
            continue
        try:
            name, value, used = _dotenv_assignment(line, lines[index:])
        except _LineError as exc:
            problems.append(_file_problem(path, number, str(exc), "write NAME=value"))
            index += exc.used
            continue
        index += used
        var = VarValue(value, masked=_marked_masked(lines[index - 1]))
        why = masking_problem(var) if var.masked else None
        if why is not None:
            problems.append(
                _file_problem(path, number, f"{name} cannot be masked: {why}", MASKING_HINT)
            )
        found[name] = var
    if problems:
        raise ConfigError(problems)
    return found


def _marked_masked(last_line: str) -> bool:
    """The dotenv convention for a masked value: the assignment ends with `# masked`."""
    return re.search(r"\s#\s*masked\s*$", last_line) is not None


def _dotenv_assignment(line: str, following: list[str]) -> tuple[str, str, int]:
    match = re.fullmatch(r"\s*(?:export\s+)?(?P<name>[^=\s]*)\s*=\s*(?P<rest>.*)", line)
    if match is None:
        raise _LineError(f"expected NAME=value, got {line.strip()!r}")
    name, rest = match["name"], match["rest"]
    if not _NAME.fullmatch(name):
        raise _LineError(f"{name!r} is not a variable name (letters, digits and '_')")
    if rest[:1] in ("'", '"'):
        value, used = _quoted_value(rest, following)
        return name, value, used
    return name, re.split(r"\s+#", rest, maxsplit=1)[0].strip(), 0


def _quoted_value(rest: str, following: list[str]) -> tuple[str, int]:
    quote, body, used = rest[0], rest[1:], 0
    while (end := _closing_quote(body, quote)) < 0:
        if used >= len(following):
            raise _LineError(f"the {quote} quote is never closed", used)
        body += "\n" + following[used]
        used += 1
    tail = body[end + 1 :].strip()
    if tail and not tail.startswith("#"):
        raise _LineError(f"unexpected text after the closing quote: {tail!r}")
    value = body[:end]
    return (_unescape(value) if quote == '"' else value), used


def _closing_quote(body: str, quote: str) -> int:
    if quote == "'":
        return body.find("'")
    index = 0
    while index < len(body):
        if body[index] == "\\":
            index += 2
            continue
        if body[index] == '"':
            return index
        index += 1
    return -1


def _unescape(value: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[0]), value, flags=re.DOTALL)


def _load_yaml_file(path: Path, text: str) -> dict[str, VarValue]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise ConfigError(
            _file_problem(path, 1, "nested too deeply", "variables are `NAME: value` lines")
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            _file_problem(path, line, f"not valid YAML: {problem}", "fix the YAML syntax")
        ) from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            _file_problem(path, _line(root), "expected a mapping", "write one `NAME: value` a line")
        )
    found: dict[str, VarValue] = {}
    problems: list[Problem] = []
    for key_node, value_node in root.value:
        try:
            name, value = _yaml_entry(key_node, value_node)
        except _NodeError as exc:
            problems.append(_file_problem(path, exc.line, exc.message, exc.hint))
            continue
        why = masking_problem(value) if value.masked else None
        if why is not None:
            message = f"{name} cannot be masked: {why}"
            problems.append(_file_problem(path, _line(key_node), message, MASKING_HINT))
        found[name] = value
    if problems:
        raise ConfigError(problems)
    return found


class _NodeError(Exception):
    def __init__(self, node: yaml.Node, message: str, hint: str) -> None:
        super().__init__(message)
        self.line, self.message, self.hint = _line(node), message, hint


def _yaml_entry(key_node: yaml.Node, value_node: yaml.Node) -> tuple[str, VarValue]:
    name = _scalar(key_node)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _NodeError(key_node, f"{name!r} is not a variable name", "use letters, digits, _")
    if not isinstance(value_node, yaml.MappingNode):
        return name, VarValue(_value_text(value_node))
    fields: dict[str, yaml.Node] = {}
    for field_key, field_value in value_node.value:
        key = _scalar(field_key)
        if key not in _VARIABLE_KEYS:
            allowed = ", ".join(sorted(_VARIABLE_KEYS))
            raise _NodeError(field_key, f"{name}: unknown key {key!r}", f"allowed: {allowed}")
        fields[str(key)] = field_value
    value = _value_text(fields["value"]) if "value" in fields else ""
    return name, VarValue(
        value,
        raw=not _flag(name, fields, "expand", default=True),
        masked=_flag(name, fields, "masked", default=False),
        file=_flag(name, fields, "file", default=False),
    )


def _flag(name: str, fields: Mapping[str, yaml.Node], key: str, *, default: bool) -> bool:
    if key not in fields:
        return default
    flag = _scalar(fields[key])
    if not isinstance(flag, bool):
        raise _NodeError(fields[key], f"{name}: {key} must be true or false", f"{key}: true")
    return flag


def _value_text(node: yaml.Node) -> str:
    value = _scalar(node)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float | date):
        return str(value)
    raise _NodeError(node, "a variable value must be a string, number or boolean", "quote it")


def _scalar(node: yaml.Node) -> object:
    if not isinstance(node, yaml.ScalarNode):
        return _NotScalar(node)
    return yaml.SafeLoader("").construct_object(node)


@dataclass(frozen=True, slots=True)
class _NotScalar:
    """A variables-file value that is a list or a mapping (an error)."""

    node: yaml.Node

    def __repr__(self) -> str:
        return "a list" if isinstance(self.node, yaml.SequenceNode) else "a mapping"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _file_problem(path: Path, line: int, message: str, hint: str) -> Problem:
    return Problem(message, location=Location(str(path), line), hint=hint)


# ------------------------------------------------------------------------------ dotenv reports


def parse_dotenv_report(
    text: str | bytes,
    *,
    max_bytes: int = 5 * 1024,
    max_variables: int = 20,
    filename: str = "dotenv report",
) -> dict[str, str]:
    """Parse an `artifacts:reports:dotenv` file exactly as GitLab does (§10.5).

    Every line must be `KEY=VALUE` (split at the first `=`, both sides stripped, quotes kept,
    no comments, no blank lines, no `export`); keys are `[A-Za-z0-9_]+`; the last duplicate
    wins. Any bad line rejects the whole report. GitLab checks the size of the gzip'ed upload
    (< 5 KB) and the count (≤ 20, the default instance limit); so does this.
    """
    import gzip

    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if len(gzip.compress(data)) >= max_bytes:
        raise DotenvError(
            Problem(f"{filename}: too big; GitLab accepts dotenv reports under {max_bytes} bytes")
        )
    try:
        decoded = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise DotenvError(Problem(f"{filename}: not valid UTF-8")) from None
    variables: dict[str, str] = {}
    for number, line in enumerate(_ruby_lines(decoded), start=1):
        key, value = _dotenv_report_line(line, Location(filename, number))
        variables[key] = value
    if len(variables) > max_variables:
        raise DotenvError(
            Problem(f"{filename}: {len(variables)} variables; the limit is {max_variables}")
        )
    return variables


def _ruby_lines(text: str) -> list[str]:
    """Ruby `each_line`: split after each "\\n" only; no empty last line."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _dotenv_report_line(line: str, where: Location) -> tuple[str, str]:
    match = re.fullmatch(r"(.*?)=(.*)", line.removesuffix("\n"))
    if match is None:
        raise DotenvError(
            Problem("invalid format: every line must be KEY=VALUE", where, hint=_DOTENV_HINT)
        )
    key, value = match[1].strip(_RUBY_SPACE), match[2].strip(_RUBY_SPACE)
    if not _NAME.fullmatch(key) or len(key) > 255:
        raise DotenvError(
            Problem(f"invalid key {key!r}: only letters, digits and '_'", where, hint=_DOTENV_HINT)
        )
    return key, value


_DOTENV_HINT = "GitLab rejects the whole report: no blank lines, comments or `export`"
