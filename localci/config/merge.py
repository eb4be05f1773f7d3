"""GitLab's merge rules on raw mappings: deep merge, `extends`, `!reference` (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localci.config.yaml_source import (
    MAX_DEPTH,
    MAX_EXPANDED,
    LocDict,
    LocList,
    Reference,
    location_of,
)
from localci.errors import ConfigError, Location, Problem

MAX_EXTENDS_DEPTH = 11
MAX_REFERENCE_DEPTH = 10
MAX_FLATTEN_DEPTH = 10
# Values the whole configuration may hold once every `!reference` is expanded: references of
# references multiply like YAML aliases do, across files too.
MAX_RESOLVED = MAX_EXPANDED


def deep_merge(older: Any, newer: Any) -> Any:
    """Hashes merge key by key at any depth; anything else: the newer value replaces."""
    if not (isinstance(older, dict) and isinstance(newer, dict)):
        return newer
    merged = LocDict(older, loc=location_of(newer) or location_of(older))
    merged.key_locs.update(getattr(older, "key_locs", {}))
    for key, value in newer.items():
        merged[key] = deep_merge(older[key], value) if key in older else value
        loc = getattr(newer, "key_locs", {}).get(key)
        if loc is not None:
            merged.key_locs[key] = loc
    return merged


def resolve_extends(config: LocDict, problems: list[Problem]) -> LocDict:
    """Resolve `extends` of every top-level mapping in place order; returns a new mapping."""
    resolved: dict[str, Any] = {}
    heights: dict[str, int] = {}
    result = LocDict(loc=config.loc)
    result.key_locs.update(config.key_locs)
    for name, value in config.items():
        extended = isinstance(value, dict) and "extends" in value
        if extended:
            result[name] = _extend(config, name, _Memo(resolved, heights), (), problems)
        else:
            result[name] = value
    return result


@dataclass(frozen=True, slots=True)
class _Memo:
    """Resolved entries, and each one's height: the longest run of entries with `extends`
    from it down (1 for an entry whose parents have no `extends` of their own)."""

    resolved: dict[str, Any]
    heights: dict[str, int]


def _extend(
    config: LocDict,
    name: str,
    memo: _Memo,
    chain: tuple[str, ...],
    problems: list[Problem],
) -> Any:
    if name in memo.resolved:
        # GitLab's Extendable::Entry re-walks every chain from each entry, so an entry already
        # resolved from a shallower start can still be too deep from this one.
        if len(chain) + memo.heights[name] > MAX_EXTENDS_DEPTH:
            _add_once(problems, _too_deep(config, (*chain, name)[0]))
        return memo.resolved[name]
    job = config[name]
    if not isinstance(job, dict) or "extends" not in job:
        return job
    if name in chain:
        cycle = " -> ".join((*chain[chain.index(name) :], name))
        problems.append(
            Problem(
                f"circular dependency detected in `extends`: {cycle}",
                _where(job, "extends"),
                job=name,
                path="extends",
            )
        )
        return job
    # Extendable::Entry#nesting_too_deep?: an entry with `extends` may have at most 10
    # ancestors (MAX_NESTING_LEVELS), so a job may extend through at most 11 levels.
    if len(chain) >= MAX_EXTENDS_DEPTH:
        _add_once(problems, _too_deep(config, chain[0]))
        return job
    merged: Any = LocDict(loc=location_of(job))
    for parent in _parent_names(job, name, problems):
        if parent not in config:
            problems.append(
                Problem(
                    f"`extends` names {parent!r}, which is not defined",
                    _where(job, "extends"),
                    job=name,
                    path="extends",
                    hint="define the template (e.g. a hidden job `.name:`) or fix the name",
                )
            )
            continue
        if not isinstance(config[parent], dict):
            problems.append(
                Problem(
                    f"`extends` names {parent!r}, which is not a mapping",
                    _where(job, "extends"),
                    job=name,
                    path="extends",
                )
            )
            continue
        merged = deep_merge(merged, _extend(config, parent, memo, (*chain, name), problems))
    result = deep_merge(merged, job)
    memo.resolved[name] = result
    parents = _parent_names(job, name, [])
    memo.heights[name] = 1 + max((memo.heights.get(p, 0) for p in parents), default=0)
    return result


def _add_once(problems: list[Problem], problem: Problem) -> None:
    if problem not in problems:
        problems.append(problem)


def _too_deep(config: LocDict, start: str) -> Problem:
    return Problem(
        f"nesting too deep in `extends` (more than {MAX_EXTENDS_DEPTH} levels)",
        _where(config[start], "extends"),
        job=start,
        path="extends",
        hint="GitLab counts every chain of `extends` from each job; shorten this one",
    )


def _parent_names(job: dict[str, Any], name: str, problems: list[Problem]) -> list[str]:
    extends = job["extends"]
    if isinstance(extends, str):
        return [extends]
    if isinstance(extends, list) and all(isinstance(p, str) for p in extends):
        return list(extends)
    problems.append(
        Problem(
            "`extends` must be a job name or a list of job names",
            _where(job, "extends"),
            job=name,
            path="extends",
        )
    )
    return []


def _where(mapping: Any, key: str) -> Location | None:
    if isinstance(mapping, LocDict):
        return mapping.where(key)
    return location_of(mapping)


def resolve_references(config: LocDict, problems: list[Problem]) -> LocDict:
    """Replace every `!reference` by the value it points at in the post-extends config.

    Raises ConfigError when the expansion grows past MAX_RESOLVED values.
    """
    resolver = _ReferenceResolver(config, problems)
    try:
        result = resolver.resolve(config, (), "", 0)
    except _TooBig as exc:
        raise ConfigError([*problems, exc.problem]) from None
    return result if isinstance(result, LocDict) else config


_SCALARS = frozenset({str, int, float, bool, type(None)})


class _TooBig(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _ReferenceResolver:
    def __init__(self, config: LocDict, problems: list[Problem]) -> None:
        self.config = config
        self.problems = problems
        self.produced = 0
        self.current: Reference | None = None

    def resolve(
        self, value: Any, active: tuple[tuple[str, ...], ...], owner: str, depth: int
    ) -> Any:
        self.produced += 1
        if self.produced > MAX_RESOLVED:
            loc = self.current.loc if self.current else location_of(value)
            raise _TooBig(
                Problem(
                    f"the configuration holds more than {MAX_RESOLVED:,} values once every "
                    "!reference is expanded",
                    loc,
                    job=owner or None,
                    hint="references of references multiply; reference a smaller part",
                )
            )
        if isinstance(value, Reference):
            return self._follow(value, active, owner, depth)
        if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
            where = self.current.loc if self.current else location_of(value)
            self.problems.append(
                Problem(
                    f"the configuration is nested more than {MAX_DEPTH} levels deep once "
                    "!reference is expanded",
                    where,
                    job=owner or None,
                )
            )
            return None
        if isinstance(value, dict):
            return self._mapping(value, active, owner, depth)
        if isinstance(value, list):
            return self._sequence(value, active, owner, depth)
        return value

    def _mapping(
        self, value: dict[str, Any], active: tuple[tuple[str, ...], ...], owner: str, depth: int
    ) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        same = type(value) is LocDict  # then unchanged contents need no copy
        for key, item in value.items():
            if item.__class__ in _SCALARS and self.produced < MAX_RESOLVED:
                self.produced += 1  # most values: only counted
                resolved[key] = item
                continue
            new = self.resolve(item, active, owner or key, depth + 1)
            resolved[key] = new
            same = same and new is item
        if same:
            return value  # nothing changes a resolved config: sharing is safe
        out = LocDict(resolved, loc=location_of(value))
        out.key_locs.update(getattr(value, "key_locs", {}))
        return out

    def _sequence(
        self, value: list[Any], active: tuple[tuple[str, ...], ...], owner: str, depth: int
    ) -> list[Any]:
        items: list[Any] = []
        same = type(value) is LocList
        for item in value:
            if item.__class__ in _SCALARS and self.produced < MAX_RESOLVED:
                self.produced += 1
                items.append(item)
                continue
            new = self.resolve(item, active, owner, depth + 1)
            items.append(new)
            same = same and new is item
        if same:
            return value
        out = LocList(items, loc=location_of(value))
        for index in range(len(value)):
            out.item_locs.append(value.where(index) if isinstance(value, LocList) else None)
        return out

    def _follow(
        self, ref: Reference, active: tuple[tuple[str, ...], ...], owner: str, depth: int
    ) -> Any:
        if ref.path in active:
            chain = " -> ".join(str(Reference(p)) for p in (*active, ref.path))
            self._fail(ref, owner, f"circular !reference: {chain}")
            return None
        if len(active) >= MAX_REFERENCE_DEPTH:
            self._fail(ref, owner, f"!reference nested more than {MAX_REFERENCE_DEPTH} levels")
            return None
        target: Any = self.config
        for step in ref.path:
            if not isinstance(target, dict) or step not in target:
                self._fail(
                    ref,
                    owner,
                    f"{ref} could not be found",
                    hint="check the job name and key path; the target must exist after "
                    "includes and extends are applied",
                )
                return None
            target = target[step]
        outer, self.current = self.current, self.current or ref
        try:
            return self.resolve(target, (*active, ref.path), owner, depth)
        finally:
            self.current = outer

    def _fail(self, ref: Reference, owner: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(message, ref.loc, job=owner or None, hint=hint))


def flatten_commands(value: Any, depth: int = 0) -> list[Any]:
    """Flatten nested lists (from anchors or !reference) as GitLab does, up to 10 levels."""
    if not isinstance(value, list):
        return [value]
    if depth > MAX_FLATTEN_DEPTH:
        raise ValueError(f"nested more than {MAX_FLATTEN_DEPTH} levels")
    out: list[Any] = []
    for item in value:
        out.extend(flatten_commands(item, depth + 1) if isinstance(item, list) else [item])
    return out
