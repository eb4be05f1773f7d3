"""The external include kinds: remote, template, project and component (with its inputs).

All of them are read through an `ExternalSource`; config/external.py is the real one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from localci.config.include_sources import (
    EXTERNAL_KINDS,
    ExternalIncludeError,
    ExternalSource,
    IncludeContext,
    IncludeScope,
    IncludeUnit,
    checked_path,
    expand_location,
    integrity_of,
    scope_variables,
)
from localci.config.yaml_source import LocDict, LocList, location_of
from localci.errors import Location, Problem

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


# ---------------------------------------------------------------------------- external kinds


def external_units(
    ctx: IncludeContext, scope: IncludeScope, entry: Mapping[str, Any], loc: Location | None
) -> list[IncludeUnit]:
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
    readers: dict[str, Callable[..., list[IncludeUnit]]] = {
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


def _text_of(ctx: IncludeContext, scope: IncludeScope, entry: Mapping[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"`include: {key}:` must be a non-empty string, not {value!r}")
    return expand_location(value.strip(), scope_variables(ctx, scope))


def _remote_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: IncludeScope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[IncludeUnit]:
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
    return [IncludeUnit(url, text, dataclasses.replace(scope, variables=False))]


def _template_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: IncludeScope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[IncludeUnit]:
    name = _text_of(ctx, scope, entry, "template").lstrip("/")
    if not name.endswith(TEMPLATE_SUFFIX) or ".." in PurePosixPath(name).parts:
        raise _fail(
            f"template {name!r} is not a valid template name",
            hint=f"GitLab's templates end in {TEMPLATE_SUFFIX}, e.g. Python.gitlab-ci.yml "
            "or Jobs/Build.gitlab-ci.yml",
        )
    text = external.template(name)
    return [IncludeUnit(f"template:{name}", text, dataclasses.replace(scope, variables=False))]


def _project_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: IncludeScope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[IncludeUnit]:
    project = _text_of(ctx, scope, entry, "project").strip("/")
    if not _PROJECT_PATH.fullmatch(project) or ".." in project.split("/"):
        raise _fail(f"{project!r} is not a project path like group/project")
    ref = _text_of(ctx, scope, entry, "ref") if entry.get("ref") is not None else None
    files = _project_files(ctx, scope, entry["file"], loc)
    if not files:
        return []
    tree = external.project(project, ref)
    inner = IncludeScope(tree.source, f"{tree.label}:", scope.variables)
    units = []
    for path in files:
        text = tree.source.read(path)
        if text is None:
            raise _fail(
                f"project {project} file {path} does not exist"
                + (f" at ref {ref}" if ref else " on its default branch"),
                hint="check `file:` (paths are relative to that project's root) and `ref:`",
            )
        units.append(IncludeUnit(inner.prefix + path, text, inner))
    return units


def _project_files(
    ctx: IncludeContext, scope: IncludeScope, value: Any, loc: Location | None
) -> list[str]:
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, list) or not raw or not all(isinstance(f, str) for f in raw):
        raise _fail("`file:` must be a path or a list of paths")
    paths = [
        checked_path(ctx, expand_location(f, scope_variables(ctx, scope)), "file", loc) for f in raw
    ]
    return [p for p in paths if p is not None]


def _component_units(
    ctx: IncludeContext,
    external: ExternalSource,
    scope: IncludeScope,
    entry: Mapping[str, Any],
    loc: Location | None,
) -> list[IncludeUnit]:
    address = _text_of(ctx, scope, entry, "component")
    host, project, name, version = parse_component(address)
    tree = external.component(host, project, version)
    for path in (f"templates/{name}.yml", f"templates/{name}/template.yml"):
        text = tree.source.read(path)
        if text is not None:
            context = {"name": name, "sha": tree.sha, "version": tree.version, "reference": version}
            inner = IncludeScope(tree.source, f"{tree.label}:", scope.variables)
            return [IncludeUnit(inner.prefix + path, text, inner, context)]
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


def component_fields(header: Any, file: str, problems: list[Problem]) -> tuple[str, ...]:
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


def interpolate_component(
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
