"""`include:` processing: local files, globs, nested includes, `include:rules`, inputs.

Files are read through a `FileSource` so the loader stays a pure function of files. Local
includes are read from the working tree (what the user is about to push), not the commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from localci.config.inputs import interpolate, parse_spec, resolve_inputs
from localci.config.merge import deep_merge
from localci.config.yaml_source import LocDict, LocList, load_documents, location_of
from localci.errors import ConfigError, Location, Problem

MAX_INCLUDES = 150
INCLUDE_KEYS = {"local", "remote", "template", "project", "component", "file", "ref",
                "rules", "inputs", "integrity", "cache"}
RULE_KEYS = {"if", "exists", "changes", "when"}
EXTERNAL_HINT = ("includes from outside the repository (remote, template, project, component) "
                 "are not supported yet; vendor the file into the repository and use "
                 "`include: local:` meanwhile")


class FileSource(Protocol):
    """Where the loader reads files: the working tree, or a dict in tests."""

    def read(self, path: str) -> str | None: ...

    def list_files(self) -> Sequence[str]: ...


@dataclass
class DirectorySource:
    """Files of a project directory (the working tree)."""

    root: Path
    _files: list[str] | None = None

    def read(self, path: str) -> str | None:
        target = (self.root / path).resolve()
        root = self.root.resolve()
        if root != target and root not in target.parents:
            raise ConfigError(Problem(f"{path!r} resolves outside the project directory",
                                      hint="includes must stay inside the repository"))
        if not target.is_file():
            return None
        data = target.read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(Problem(f"{path} is not valid UTF-8 (byte {exc.start})",
                                      Location(path, 1))) from None

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
    """What include processing may consult besides files (SEMANTICS §1.3)."""

    source: FileSource
    variables: Mapping[str, str] = field(default_factory=dict)
    changed: Callable[[Sequence[str], str | None], bool] | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    count: int = 0


def load_file(ctx: IncludeContext, path: str, chain: tuple[str, ...] = (),
              given_inputs: Any = None, where: Location | None = None) -> LocDict:
    """Load `path` with its includes merged in GitLab's order (the file itself wins)."""
    text = ctx.source.read(path)
    if text is None:
        raise ConfigError(Problem(f"{path} does not exist", where,
                                  hint="check the file name (paths are relative to the "
                                       "repository root)"))
    ctx.files.append(path)
    docs, warnings = load_documents(text, path)
    ctx.warnings.extend(warnings)
    header, content = _split_header(docs, path, ctx.problems)
    specs = parse_spec(header, path, ctx.problems)
    inputs = resolve_inputs(specs, given_inputs, where or Location(path, 1), ctx.problems)
    if specs is not None:
        content = interpolate(content, inputs, path, ctx.problems)
    if content is None:
        content = LocDict(loc=Location(path, 1))
    if not isinstance(content, LocDict):
        raise ConfigError(Problem("the configuration must be a mapping of keywords and jobs",
                                  location_of(content) or Location(path, 1)))
    includes = content.get("include")
    own = LocDict({k: v for k, v in content.items() if k != "include"}, loc=content.loc)
    own.key_locs.update(content.key_locs)
    if includes is None:
        return own
    merged: Any = LocDict(loc=own.loc)
    for entry, entry_loc in _entries(includes, content.where("include")):
        for included in _process_entry(ctx, entry, entry_loc, (*chain, path)):
            merged = deep_merge(merged, included)
    result = deep_merge(merged, own)
    return result if isinstance(result, LocDict) else own


def _split_header(docs: list[Any], path: str, problems: list[Problem]) -> tuple[Any, Any]:
    if not docs:
        return None, None
    if len(docs) == 1:
        return None, docs[0]
    if len(docs) > 2:
        problems.append(Problem("a CI file may have at most two YAML documents: a `spec:` "
                                "header and the configuration", Location(path, 1)))
    first = docs[0]
    if isinstance(first, dict) and "spec" in first:
        return first, docs[1]
    problems.append(Problem("the first of two YAML documents must be a `spec:` header",
                            location_of(first) or Location(path, 1)))
    return None, docs[1]


def _entries(includes: Any, loc: Location | None) -> list[tuple[Any, Location | None]]:
    if isinstance(includes, list):
        where = includes.where if isinstance(includes, LocList) else (lambda _i: loc)
        return [(item, where(i)) for i, item in enumerate(includes)]
    return [(includes, loc)]


def _process_entry(ctx: IncludeContext, entry: Any, loc: Location | None,
                   chain: tuple[str, ...]) -> list[LocDict]:
    entry = _normalise(entry, loc, ctx.problems)
    if entry is None or not _rules_allow(ctx, entry, loc):
        return []
    if "local" not in entry:
        kind = next((k for k in ("remote", "template", "project", "component") if k in entry),
                    "unknown")
        ctx.problems.append(Problem(f"`include: {kind}: {entry.get(kind)}` cannot be read",
                                    loc, path="include", hint=EXTERNAL_HINT))
        return []
    local = _expand_location(str(entry["local"]), ctx.variables)
    results = []
    for path in _local_paths(ctx, local, loc):
        if path in chain:
            cycle = " -> ".join((*chain[chain.index(path):], path))
            raise ConfigError(Problem(f"include cycle: {cycle}", loc, path="include",
                                      hint="a file must not include itself, directly or not"))
        ctx.count += 1
        if ctx.count > MAX_INCLUDES:
            raise ConfigError(Problem(f"Maximum of {MAX_INCLUDES} nested includes are allowed",
                                      loc, path="include"))
        results.append(load_file(ctx, path, chain, entry.get("inputs"), loc))
    return results


def _normalise(entry: Any, loc: Location | None, problems: list[Problem]) -> dict[str, Any] | None:
    if isinstance(entry, str):
        if re.match(r"^https?://", entry):
            return {"remote": entry}
        return {"local": entry}
    if not isinstance(entry, dict):
        problems.append(Problem(f"an include must be a path or a mapping, not {entry!r}", loc,
                                path="include"))
        return None
    unknown = set(entry) - INCLUDE_KEYS
    if unknown:
        problems.append(Problem(f"include has unknown keys: {', '.join(sorted(unknown))}", loc,
                                path="include"))
        return None
    if "file" in entry and "project" not in entry:
        problems.append(Problem("`file:` is only valid with `project:`", loc, path="include"))
        return None
    return dict(entry)


def _expand_location(text: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def _local_paths(ctx: IncludeContext, local: str, loc: Location | None) -> list[str]:
    path = local.lstrip("/")
    if not path.endswith((".yml", ".yaml")):
        ctx.problems.append(Problem(f"local include {local!r} must end in .yml or .yaml", loc,
                                    path="include"))
        return []
    if ".." in PurePosixPath(path).parts:
        ctx.problems.append(Problem(f"local include {local!r} leaves the repository", loc,
                                    path="include"))
        return []
    if "*" not in path:
        return [path]
    from localci.globs import include_wildcard_match

    matches = [f for f in ctx.source.list_files() if include_wildcard_match(path, f)]
    if not matches:
        ctx.warnings.append(f"{loc}: include {local!r} matches no file")
    return matches


def _rules_allow(ctx: IncludeContext, entry: Mapping[str, Any], loc: Location | None) -> bool:
    rules = entry.get("rules")
    if rules is None:
        return True
    if not isinstance(rules, list):
        ctx.problems.append(Problem("`include:rules` must be a list", loc, path="include:rules"))
        return False
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - RULE_KEYS:
            ctx.problems.append(Problem("an include rule may only use if, exists, changes, when",
                                        location_of(rule) or loc, path="include:rules"))
            return False
        if _rule_matches(ctx, rule, loc):
            return bool(rule.get("when", "always") != "never")
    return False


def _rule_matches(ctx: IncludeContext, rule: Mapping[str, Any], loc: Location | None) -> bool:
    from localci.expr import ExpressionError, parse_expression
    from localci.globs import fnmatch_ruby

    if "if" in rule:
        try:
            if not parse_expression(str(rule["if"])).evaluate(ctx.variables):
                return False
        except ExpressionError as exc:
            ctx.problems.append(Problem(str(exc), location_of(rule) or loc,
                                        path="include:rules:if"))
            return False
    if "exists" in rule:
        patterns = _patterns(rule["exists"])
        files = ctx.source.list_files()
        if not any(fnmatch_ruby(_expand_location(p, ctx.variables), f)
                   for p in patterns for f in files):
            return False
    if "changes" in rule and ctx.changed is not None:
        changes = rule["changes"]
        compare_to = changes.get("compare_to") if isinstance(changes, dict) else None
        if not ctx.changed(_patterns(changes), compare_to):
            return False
    return True


def _patterns(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = value.get("paths", [])
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value or []]
