"""`include:` processing: local files, globs, nested includes and inputs; `include:rules` are in
include_rules, the external kinds (remote, template, project, component) in include_external.

Files are read through a `FileSource` so the loader stays a pure function of files. Local
includes are read from the working tree (what the user is about to push), not the commit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from localci.config.include_sources import (
    EXTERNAL_KINDS,
    ExternalSource,
    IncludeContext,
    IncludeOptions,
    IncludeScope,
    IncludeUnit,
    checked_path,
    expand_location,
    scope_variables,
)
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


def load_file(
    ctx: IncludeContext,
    path: str,
    chain: tuple[str, ...] = (),
    given_inputs: Any = None,
    where: Location | None = None,
) -> LocDict:
    """Load `path` of the project with its includes merged in GitLab's order (the file wins)."""
    unit = _read_local(IncludeScope(ctx.source), path, where)
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


def _read_local(scope: IncludeScope, path: str, where: Location | None) -> IncludeUnit:
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
    return IncludeUnit(name, text, scope)


def _load_unit(
    ctx: IncludeContext,
    unit: IncludeUnit,
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
    unit: IncludeUnit,
    header: Any,
    content: Any,
    given_inputs: Any,
    where: Location | None,
) -> Any:
    """`spec:inputs` and `spec:component` of a file with a header (or given inputs)."""
    from localci.config.include_external import component_fields, interpolate_component
    from localci.config.inputs import interpolate, parse_spec, resolve_inputs

    specs = parse_spec(header, unit.name, ctx.problems)
    inputs = resolve_inputs(specs, given_inputs, where or Location(unit.name, 1), ctx.problems)
    if unit.component is not None and header is not None:
        fields = component_fields(header, unit.name, ctx.problems)
        content = interpolate_component(content, unit.component, fields, unit.name, ctx.problems)
    if specs is not None:
        content = interpolate(content, inputs, unit.name, ctx.problems)
        ctx.interpolated.setdefault(unit.name, content)
    return content


def _merge_includes(
    ctx: IncludeContext, unit: IncludeUnit, content: LocDict, chain: tuple[str, ...]
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
    ctx: IncludeContext,
    scope: IncludeScope,
    entry: Any,
    loc: Location | None,
    chain: tuple[str, ...],
) -> list[LocDict]:
    # Imported here: a pipeline without `include:` (most) needs neither.
    from localci.config.include_external import external_units
    from localci.config.include_rules import rules_allow

    entry = _normalise(entry, loc, ctx.problems)
    if entry is None or not rules_allow(ctx, scope, entry, loc):
        return []
    if "local" in entry:
        local = expand_location(str(entry["local"]), scope_variables(ctx, scope))
        units = [_read_local(scope, p, loc) for p in _local_paths(ctx, scope, local, loc)]
    else:
        units = external_units(ctx, scope, entry, loc)
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


def _local_paths(
    ctx: IncludeContext, scope: IncludeScope, local: str, loc: Location | None
) -> list[str]:
    path = checked_path(ctx, local, "local include", loc)
    if path is None:
        return []
    if "*" not in path:
        return [path]
    from localci.globs import include_wildcard_match

    matches = [f for f in scope.source.list_files() if include_wildcard_match(path, f)]
    if not matches:
        ctx.warnings.append(f"{loc}: include {local!r} matches no file")
    return matches


# The CLI and executor modules import these two from here; their home is include_sources.
__all__ = [
    "ExternalSource",
    "IncludeOptions",
    "collapse_repeats",
    "key_origins",
    "load_file",
]
