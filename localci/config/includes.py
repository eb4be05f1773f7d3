"""`include:` processing: local files, globs, nested includes, `include:rules`, inputs, and the
external kinds (remote, template, project, component) read through an `ExternalSource`.

Files are read through a `FileSource` so the loader stays a pure function of files. Local
includes are read from the working tree (what the user is about to push), not the commit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from localci.config.merge import deep_merge
from localci.config.yaml_source import LocDict, LocList, load_documents, location_of
from localci.errors import ConfigError, Location, Problem

MAX_INCLUDES = 150
INCLUDE_KEYS = {
    "local",
    "remote",
    "template",
    "project",
    "component",
    "file",
    "ref",
    "rules",
    "inputs",
    "integrity",
    "cache",
}
EXTERNAL_KINDS = ("remote", "template", "project", "component")
# localci's settings for external includes (read by external.py).
EXTERNAL_CONFIG_FILES = (".localci/includes.yml", ".localci/includes.yaml")
RULE_KEYS = {"if", "exists", "changes", "when"}
COMPONENT_FIELDS = ("name", "sha", "version", "reference")
TEMPLATE_SUFFIX = ".gitlab-ci.yml"
EXTERNAL_HINT = (
    "includes from outside the repository (remote, template, project, component) "
    "are not supported yet by this loader; `localci` itself fetches and caches them, "
    "or vendor the file into the repository and use `include: local:`"
)
_PROJECT_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?")
_COMPONENT_NAME = re.compile(r"[\w-]+")
_BLOCK = re.compile(r"\$\[\[\s*(.*?)\s*\]\]")


class FileSource(Protocol):
    """Where the loader reads files: the working tree, or a dict in tests."""

    def read(self, path: str) -> str | None: ...

    def list_files(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ProjectTree:
    """The files of another project at one commit, as an `ExternalSource` hands them over.

    `label` names it in file names and messages (`group/project@ref`); `version` is the
    resolved semantic version of a component (None for a branch or SHA).
    """

    source: FileSource
    label: str
    sha: str = ""
    version: str | None = None


@dataclass(frozen=True, slots=True)
class IncludeOptions:
    """What the command line says about external includes."""

    offline: bool = False
    refresh: bool = False
    mapping: tuple[str, ...] = ()  # KEY=DIR, from --include-map


class ExternalIncludeError(ConfigError):
    """An external include could not be obtained (network, cache, mapping)."""


class ExternalSource(Protocol):
    """Access to files outside the repository; raises ExternalIncludeError when it cannot."""

    def remote(self, url: str, integrity: str | None) -> str: ...

    def template(self, name: str) -> str: ...

    def project(self, project: str, ref: str | None) -> ProjectTree: ...

    def component(self, host: str, project: str, version: str) -> ProjectTree: ...


@dataclass
class DirectorySource:
    """Files of a project directory (the working tree)."""

    root: Path
    _files: list[str] | None = None

    def read(self, path: str) -> str | None:
        target = (self.root / path).resolve()
        root = self.root.resolve()
        if root != target and root not in target.parents:
            raise ConfigError(
                Problem(
                    f"{path!r} resolves outside the project directory",
                    hint="includes must stay inside the repository",
                )
            )
        if not target.is_file():
            return None
        data = target.read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                Problem(f"{path} is not valid UTF-8 (byte {exc.start})", Location(path, 1))
            ) from None

    def list_files(self) -> Sequence[str]:
        if self._files is None:
            self._files = sorted(_walk(self.root))
        return self._files


def _walk(root: Path) -> Iterable[str]:
    skip = {".git", ".localci"}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or not path.is_file():
            continue
        yield rel.as_posix()


@dataclass
class MemorySource:
    """Files given as a mapping of path -> text (tests, `load_pipeline_from_text`)."""

    files: Mapping[str, str]

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def list_files(self) -> Sequence[str]:
        return sorted(self.files)


@dataclass
class IncludeContext:
    """What include processing may consult besides files (docs/SEMANTICS.md §1.3).

    `external` is None when nothing outside the repository may be read (then every
    remote/template/project/component include is an error). `included_at` records, for each
    loaded file, where the include that first brought it in was written (for origins);
    `interpolated` the content of each file with `spec:inputs` once its inputs are in.
    """

    source: FileSource
    variables: Mapping[str, str] = field(default_factory=dict)
    changed: Callable[[Sequence[str], str | None], bool] | None = None
    external: ExternalSource | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    included_at: dict[str, Location] = field(default_factory=dict)
    interpolated: dict[str, Any] = field(default_factory=dict)
    count: int = 0


@dataclass(frozen=True, slots=True)
class _Scope:
    """The project a file belongs to: where its `local:` includes and `exists:` rules look.

    Inside remote and template files GitLab evaluates nested includes without variables.
    """

    source: FileSource
    prefix: str = ""
    variables: bool = True


@dataclass(frozen=True, slots=True)
class _Unit:
    """One file to load: its display name (used in locations), text and scope."""

    name: str
    text: str
    scope: _Scope
    component: Mapping[str, str | None] | None = None


def load_file(
    ctx: IncludeContext,
    path: str,
    chain: tuple[str, ...] = (),
    given_inputs: Any = None,
    where: Location | None = None,
) -> LocDict:
    """Load `path` of the project with its includes merged in GitLab's order (the file wins)."""
    unit = _read_local(_Scope(ctx.source), path, where)
    return _load_unit(ctx, unit, chain, given_inputs, where)


def key_origins(ctx: IncludeContext, merged: LocDict) -> dict[str, tuple[Location, ...]]:
    """For each top-level key: where it was (last) defined, then the includes that led there."""
    out: dict[str, tuple[Location, ...]] = {}
    for key in merged:
        loc = merged.key_locs.get(key)
        if loc is None:
            continue
        trail = [loc]
        while (step := ctx.included_at.get(trail[-1].file)) is not None and len(trail) <= 20:
            trail.append(step)
        out[key] = tuple(trail)
    return out


def collapse_repeats(problems: Sequence[Problem]) -> list[Problem]:
    """One problem per finding: the same message in one file (say, nine includes of one
    unreachable project) is reported at its first line, naming the other lines."""
    first: dict[tuple[object, ...], int] = {}
    others: dict[int, list[int]] = {}
    out: list[Problem] = []
    for problem in problems:
        loc = problem.location
        key = (loc.file if loc else None, problem.message, problem.job, problem.path, problem.hint)
        if key in first and loc is not None:
            others.setdefault(first[key], []).append(loc.line)
            continue
        first.setdefault(key, len(out))
        out.append(problem)
    for index, lines in others.items():
        unique = [str(line) for line in dict.fromkeys(lines)]
        suffix = f" (also at line{'s' if len(unique) > 1 else ''} {', '.join(unique)})"
        out[index] = dataclasses.replace(out[index], message=out[index].message + suffix)
    return out


def integrity_of(data: bytes) -> str:
    """The `integrity:` value GitLab expects for `data`: sha256-<base64 of the digest>."""
    import base64
    import hashlib

    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _read_local(scope: _Scope, path: str, where: Location | None) -> _Unit:
    try:
        text = scope.source.read(path)
    except ConfigError as exc:  # give the reader's finding the include's file:line
        raise ConfigError(
            [
                replace(p, location=p.location or where, path=p.path or "include")
                for p in exc.problems
            ]
        ) from None
    name = scope.prefix + path
    if text is None:
        raise ConfigError(
            Problem(
                f"{name} does not exist",
                where,
                hint="check the file name (paths are relative to the repository root)"
                if not scope.prefix
                else "check the file name (paths are relative to that project's root)",
            )
        )
    return _Unit(name, text, scope)


def _load_unit(
    ctx: IncludeContext,
    unit: _Unit,
    chain: tuple[str, ...],
    given_inputs: Any,
    where: Location | None,
) -> LocDict:
    ctx.files.append(unit.name)
    if where is not None:
        ctx.included_at.setdefault(unit.name, where)
    docs, warnings = load_documents(unit.text, unit.name)
    ctx.warnings.extend(warnings)
    header, content = _split_header(docs, unit.name, ctx.problems)
    if header is not None or given_inputs:
        content = _apply_header(ctx, unit, header, content, given_inputs, where)
    if content is None:
        content = LocDict(loc=Location(unit.name, 1))
    if not isinstance(content, LocDict):
        raise ConfigError(
            Problem(
                "the configuration must be a mapping of keywords and jobs",
                location_of(content) or Location(unit.name, 1),
            )
        )
    return _merge_includes(ctx, unit, content, (*chain, unit.name))


def _apply_header(
    ctx: IncludeContext,
    unit: _Unit,
    header: Any,
    content: Any,
    given_inputs: Any,
    where: Location | None,
) -> Any:
    """`spec:inputs` and `spec:component` of a file with a header (or given inputs)."""
    from localci.config.inputs import interpolate, parse_spec, resolve_inputs

    specs = parse_spec(header, unit.name, ctx.problems)
    inputs = resolve_inputs(specs, given_inputs, where or Location(unit.name, 1), ctx.problems)
    if unit.component is not None and header is not None:
        fields = _component_fields(header, unit.name, ctx.problems)
        content = _interpolate_component(content, unit.component, fields, unit.name, ctx.problems)
    if specs is not None:
        content = interpolate(content, inputs, unit.name, ctx.problems)
        ctx.interpolated.setdefault(unit.name, content)
    return content


def _merge_includes(
    ctx: IncludeContext, unit: _Unit, content: LocDict, chain: tuple[str, ...]
) -> LocDict:
    includes = content.get("include")
    own = LocDict({k: v for k, v in content.items() if k != "include"}, loc=content.loc)
    own.key_locs.update(content.key_locs)
    if includes is None:
        return own
    merged: Any = LocDict(loc=own.loc)
    for entry, entry_loc in _entries(includes, content.where("include")):
        for included in _process_entry(ctx, unit.scope, entry, entry_loc, chain):
            merged = deep_merge(merged, included)
    result = deep_merge(merged, own)
    return result if isinstance(result, LocDict) else own


def _split_header(docs: list[Any], path: str, problems: list[Problem]) -> tuple[Any, Any]:
    if not docs:
        return None, None
    if len(docs) == 1:
        return None, docs[0]
    if len(docs) > 2:
        problems.append(
            Problem(
                "a CI file may have at most two YAML documents: a `spec:` "
                "header and the configuration",
                Location(path, 1),
            )
        )
    first = docs[0]
    if isinstance(first, dict) and "spec" in first:
        return first, docs[1]
    problems.append(
        Problem(
            "the first of two YAML documents must be a `spec:` header",
            location_of(first) or Location(path, 1),
        )
    )
    return None, docs[1]


def _entries(includes: Any, loc: Location | None) -> list[tuple[Any, Location | None]]:
    if isinstance(includes, list):
        where = includes.where if isinstance(includes, LocList) else (lambda _i: loc)
        return [(item, where(i)) for i, item in enumerate(includes)]
    return [(includes, loc)]


def _process_entry(
    ctx: IncludeContext, scope: _Scope, entry: Any, loc: Location | None, chain: tuple[str, ...]
) -> list[LocDict]:
    entry = _normalise(entry, loc, ctx.problems)
    if entry is None or not _rules_allow(ctx, scope, entry, loc):
        return []
    if "local" in entry:
        local = _expand_location(str(entry["local"]), _variables(ctx, scope))
        units = [_read_local(scope, p, loc) for p in _local_paths(ctx, scope, local, loc)]
    else:
        units = _external_units(ctx, scope, entry, loc)
    results = []
    for unit in units:
        _count(ctx, unit.name, loc, chain)
        results.append(_load_unit(ctx, unit, chain, entry.get("inputs"), loc))
    return results


def _count(ctx: IncludeContext, name: str, loc: Location | None, chain: tuple[str, ...]) -> None:
    if name in chain:
        cycle = " -> ".join((*chain[chain.index(name) :], name))
        raise ConfigError(
            Problem(
                f"include cycle: {cycle}",
                loc,
                path="include",
                hint="a file must not include itself, directly or not",
            )
        )
    ctx.count += 1
    if ctx.count > MAX_INCLUDES:
        raise ConfigError(
            Problem(f"Maximum of {MAX_INCLUDES} nested includes are allowed", loc, path="include")
        )


def _normalise(entry: Any, loc: Location | None, problems: list[Problem]) -> dict[str, Any] | None:
    if isinstance(entry, str):
        if re.match(r"^https?://", entry):
            return {"remote": entry}
        return {"local": entry}
    if not isinstance(entry, dict):
        problems.append(
            Problem(f"an include must be a path or a mapping, not {entry!r}", loc, path="include")
        )
        return None
    unknown = set(entry) - INCLUDE_KEYS
    if unknown:
        problems.append(
            Problem(f"include has unknown keys: {', '.join(sorted(unknown))}", loc, path="include")
        )
        return None
    error = _shape_error(entry)
    if error:
        problems.append(Problem(error, loc, path="include"))
        return None
    return dict(entry)


def _shape_error(entry: Mapping[str, Any]) -> str | None:
    kinds = [k for k in ("local", *EXTERNAL_KINDS) if k in entry]
    if len(kinds) != 1:
        return "an include needs exactly one of local, remote, template, project, component" + (
            f" (found {', '.join(kinds)})" if kinds else ""
        )
    if ("file" in entry or "ref" in entry) and "project" not in entry:
        return "`file:` and `ref:` are only valid with `project:`"
    if "project" in entry and "file" not in entry:
        return "`include: project:` needs `file:` (a path or a list of paths)"
    if "integrity" in entry and "remote" not in entry:
        return "`integrity:` is only valid with `remote:`"
    return None


def _variables(ctx: IncludeContext, scope: _Scope) -> Mapping[str, str]:
    return ctx.variables if scope.variables else {}


def _expand_location(text: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def _local_paths(ctx: IncludeContext, scope: _Scope, local: str, loc: Location | None) -> list[str]:
    path = _checked_path(ctx, local, "local include", loc)
    if path is None:
        return []
    if "*" not in path:
        return [path]
    from localci.globs import include_wildcard_match

    matches = [f for f in scope.source.list_files() if include_wildcard_match(path, f)]
    if not matches:
        ctx.warnings.append(f"{loc}: include {local!r} matches no file")
    return matches


def _checked_path(ctx: IncludeContext, raw: str, what: str, loc: Location | None) -> str | None:
    path = raw.lstrip("/")
    if not path.endswith((".yml", ".yaml")):
        ctx.problems.append(
            Problem(f"{what} {raw!r} must end in .yml or .yaml", loc, path="include")
        )
        return None
    if ".." in PurePosixPath(path).parts:
        ctx.problems.append(Problem(f"{what} {raw!r} leaves the repository", loc, path="include"))
        return None
    return path


# ---------------------------------------------------------------------------- external kinds


def _external_units(
    ctx: IncludeContext, scope: _Scope, entry: Mapping[str, Any], loc: Location | None
) -> list[_Unit]:
    kind = next(k for k in EXTERNAL_KINDS if k in entry)
    if ctx.external is None:
        ctx.problems.append(
            Problem(
                f"`include: {kind}: {entry.get(kind)}` cannot be read",
                loc,
                path="include",
                hint=EXTERNAL_HINT,
            )
        )
        return []
    readers: dict[str, Callable[..., list[_Unit]]] = {
        "remote": _remote_units,
        "template": _template_units,
        "project": _project_units,
        "component": _component_units,
    }
    try:
        return readers[kind](ctx, ctx.external, scope, entry, loc)
    except ExternalIncludeError as exc:
        ctx.problems.extend(
            dataclasses.replace(p, location=p.location or loc, path=p.path or "include")
            for p in exc.problems
        )
        return []


def _fail(message: str, hint: str | None = None) -> ExternalIncludeError:
    return ExternalIncludeError(Problem(message, hint=hint))


def _text_of(ctx: IncludeContext, scope: _Scope, entry: Mapping[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"`include: {key}:` must be a non-empty string, not {value!r}")
    return _expand_location(value.strip(), _variables(ctx, scope))


def _remote_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: _Scope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[_Unit]:
    url = _text_of(ctx, scope, entry, "remote")
    if not re.match(r"^https?://[^/\s]+", url):
        raise _fail(f"remote include {url!r} is not an http(s) URL")
    if not url.split("?", 1)[0].endswith((".yml", ".yaml")):
        raise _fail(f"remote include {url!r} must end in .yml or .yaml")
    integrity = entry.get("integrity")
    if integrity is not None and not re.fullmatch(r"sha256-[A-Za-z0-9+/]+=*", str(integrity)):
        raise _fail(
            f"`integrity: {integrity}` is not of the form sha256-<base64>",
            hint="compute it with: openssl dgst -sha256 -binary FILE | openssl base64 -A",
        )
    text = external.remote(url, None if integrity is None else str(integrity))
    actual = integrity_of(text.encode("utf-8"))
    if integrity is not None and actual != integrity:
        raise _fail(
            f"remote include {url}: integrity check failed: expected {integrity}, "
            f"the file has {actual}",
            hint="the file changed since `integrity:` was written; review it and update the hash",
        )
    return [_Unit(url, text, dataclasses.replace(scope, variables=False))]


def _template_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: _Scope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[_Unit]:
    name = _text_of(ctx, scope, entry, "template").lstrip("/")
    if not name.endswith(TEMPLATE_SUFFIX) or ".." in PurePosixPath(name).parts:
        raise _fail(
            f"template {name!r} is not a valid template name",
            hint=f"GitLab's templates end in {TEMPLATE_SUFFIX}, e.g. Python.gitlab-ci.yml "
            "or Jobs/Build.gitlab-ci.yml",
        )
    text = external.template(name)
    return [_Unit(f"template:{name}", text, dataclasses.replace(scope, variables=False))]


def _project_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: _Scope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[_Unit]:
    project = _text_of(ctx, scope, entry, "project").strip("/")
    if not _PROJECT_PATH.fullmatch(project) or ".." in project.split("/"):
        raise _fail(f"{project!r} is not a project path like group/project")
    ref = _text_of(ctx, scope, entry, "ref") if entry.get("ref") is not None else None
    files = _project_files(ctx, scope, entry["file"], loc)
    if not files:
        return []
    tree = external.project(project, ref)
    inner = _Scope(tree.source, f"{tree.label}:", scope.variables)
    units = []
    for path in files:
        text = tree.source.read(path)
        if text is None:
            raise _fail(
                f"project {project} file {path} does not exist"
                + (f" at ref {ref}" if ref else " on its default branch"),
                hint="check `file:` (paths are relative to that project's root) and `ref:`",
            )
        units.append(_Unit(inner.prefix + path, text, inner))
    return units


def _project_files(
    ctx: IncludeContext, scope: _Scope, value: Any, loc: Location | None
) -> list[str]:
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, list) or not raw or not all(isinstance(f, str) for f in raw):
        raise _fail("`file:` must be a path or a list of paths")
    paths = [
        _checked_path(ctx, _expand_location(f, _variables(ctx, scope)), "file", loc) for f in raw
    ]
    return [p for p in paths if p is not None]


def _component_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: _Scope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[_Unit]:
    address = _text_of(ctx, scope, entry, "component")
    host, project, name, version = parse_component(address)
    tree = external.component(host, project, version)
    for path in (f"templates/{name}.yml", f"templates/{name}/template.yml"):
        text = tree.source.read(path)
        if text is not None:
            context = {"name": name, "sha": tree.sha, "version": tree.version, "reference": version}
            inner = _Scope(tree.source, f"{tree.label}:", scope.variables)
            return [_Unit(inner.prefix + path, text, inner, context)]
    raise _fail(
        f"component {address}: no templates/{name}.yml or templates/{name}/template.yml "
        f"in {host}/{project} at {tree.label.rpartition('@')[2]}",
        hint="check the component name (the last part of the address before @)",
    )


def parse_component(address: str) -> tuple[str, str, str, str]:
    """`host/group/project/name@version` -> (host, project path, component name, version)."""
    path, at, version = address.partition("@")
    parts = path.strip("/").split("/")
    if not at or not version or len(parts) < 4:
        raise _fail(
            f"component address {address!r} is not of the form HOST/GROUP/PROJECT/NAME@VERSION",
            hint="e.g. gitlab.com/components/opentofu/full-pipeline@~latest",
        )
    host, project, name = parts[0], "/".join(parts[1:-1]), parts[-1]
    if not _HOST.fullmatch(host) or not _PROJECT_PATH.fullmatch(project):
        raise _fail(f"component address {address!r} has an invalid host or project path")
    if not _COMPONENT_NAME.fullmatch(name):
        raise _fail(f"component name {name!r} may only contain letters, digits, _ and -")
    return host.lower(), project, name, version


def _component_fields(header: Any, file: str, problems: list[Problem]) -> tuple[str, ...]:
    spec = header.get("spec") if isinstance(header, dict) else None
    declared = spec.get("component") if isinstance(spec, dict) else None
    if declared is None:
        return ()
    loc = location_of(spec) or Location(file, 1)
    if not isinstance(declared, list) or not all(f in COMPONENT_FIELDS for f in declared):
        problems.append(
            Problem(
                f"`spec:component` must be a list of: {', '.join(COMPONENT_FIELDS)}",
                loc,
                path="spec:component",
            )
        )
        return ()
    return tuple(declared)


def _interpolate_component(
    value: Any,
    context: Mapping[str, str | None],
    fields: Sequence[str],
    file: str,
    problems: list[Problem],
) -> Any:
    """Replace `$[[ component.FIELD ]]` blocks; `$[[ inputs.* ]]` blocks are left for inputs."""

    def text(item: str) -> Any:
        if "component." not in item:
            return item
        whole = _BLOCK.fullmatch(item)
        if whole and whole.group(1).startswith("component."):
            return _component_value(whole.group(1), context, fields, file, problems)
        return _BLOCK.sub(lambda m: _component_block(m, context, fields, file, problems), item)

    return _map_strings(value, text)


def _component_block(
    match: re.Match[str],
    context: Mapping[str, str | None],
    fields: Sequence[str],
    file: str,
    problems: list[Problem],
) -> str:
    if not match.group(1).startswith("component."):
        return match.group(0)
    value = _component_value(match.group(1), context, fields, file, problems)
    return "" if value is None else str(value)


def _component_value(
    body: str,
    context: Mapping[str, str | None],
    fields: Sequence[str],
    file: str,
    problems: list[Problem],
) -> str | None:
    name = body.removeprefix("component.").strip()
    if name not in COMPONENT_FIELDS:
        problems.append(
            Problem(
                f"unknown component field in `$[[ {body} ]]`",
                Location(file, 1),
                hint=f"use one of: {', '.join(COMPONENT_FIELDS)}",
            )
        )
        return ""
    if name not in fields:
        problems.append(
            Problem(
                f"`$[[ {body} ]]` needs `{name}` declared in the header's `spec:component`",
                Location(file, 1),
                hint=f"add `component: [{name}]` under `spec:`",
            )
        )
        return ""
    return context.get(name)


def _map_strings(value: Any, text: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        out = LocDict(loc=location_of(value))
        for key, item in value.items():
            new_key = str(text(key))
            out[new_key] = _map_strings(item, text)
            if isinstance(value, LocDict) and key in value.key_locs:
                out.key_locs[new_key] = value.key_locs[key]
        return out
    if isinstance(value, list):
        items = LocList(loc=location_of(value))
        for index, item in enumerate(value):
            items.append(_map_strings(item, text))
            items.item_locs.append(value.where(index) if isinstance(value, LocList) else None)
        return items
    return value


# ---------------------------------------------------------------------------- include:rules


def _rules_allow(
    ctx: IncludeContext, scope: _Scope, entry: Mapping[str, Any], loc: Location | None
) -> bool:
    rules = entry.get("rules")
    if rules is None:
        return True
    if not isinstance(rules, list):
        ctx.problems.append(Problem("`include:rules` must be a list", loc, path="include:rules"))
        return False
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - RULE_KEYS:
            ctx.problems.append(
                Problem(
                    "an include rule may only use if, exists, changes, when",
                    location_of(rule) or loc,
                    path="include:rules",
                )
            )
            return False
        if _rule_matches(ctx, scope, rule, loc):
            return bool(rule.get("when", "always") != "never")
    return False


def _rule_matches(
    ctx: IncludeContext, scope: _Scope, rule: Mapping[str, Any], loc: Location | None
) -> bool:
    from localci.expr import ExpressionError, parse_expression
    from localci.globs import fnmatch_ruby

    variables = _variables(ctx, scope)
    if "if" in rule:
        try:
            if not parse_expression(str(rule["if"])).evaluate(variables):
                return False
        except ExpressionError as exc:
            ctx.problems.append(
                Problem(str(exc), location_of(rule) or loc, path="include:rules:if")
            )
            return False
    for key in ("exists", "changes"):
        if key in rule and not _valid_patterns(rule[key]):
            ctx.problems.append(
                Problem(
                    f"include rule `{key}` should be a list of paths or globs, not {rule[key]!r}",
                    location_of(rule) or loc,
                    path=f"include:rules:{key}",
                )
            )
            return False
    if "exists" in rule:
        patterns = _patterns(rule["exists"])
        files = scope.source.list_files()
        if not any(
            fnmatch_ruby(_expand_location(p, variables), f) for p in patterns for f in files
        ):
            return False
    if "changes" in rule and ctx.changed is not None:
        changes = rule["changes"]
        compare_to = changes.get("compare_to") if isinstance(changes, dict) else None
        if not ctx.changed(_patterns(changes), compare_to):
            return False
    return True


def _valid_patterns(value: Any) -> bool:
    if isinstance(value, dict):
        value = value.get("paths", [])
    items = [value] if isinstance(value, str) else value
    return isinstance(items, list) and all(isinstance(v, str) for v in items)


def _patterns(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = value.get("paths", [])
    if isinstance(value, (str, int, float)):
        return [str(value)]
    if not isinstance(value, list):
        return []
    return [str(v) for v in value]
