"""The job graph: parallel/matrix expansion, needs and dependencies resolved to concrete job
names and validated (stages, missing jobs, the 50-needs limit, cycles), artifact sources."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from localci.config.model import Job, Need
from localci.errors import Location, Problem
from localci.plan.model import PlannedNeed

MAX_NEEDS = 50
_MATRIX_REF = re.compile(r"\$\[\[\s*matrix\.([A-Za-z0-9_]+)\s*\]\]")


@dataclass(frozen=True, slots=True)
class Instance:
    """One concrete job after `parallel` expansion (the job itself when not parallel)."""

    name: str
    group_name: str
    job: Job
    node_index: int | None = None
    node_total: int = 1
    matrix: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class GraphJob:
    """What the graph needs to know about one instance once rules have decided."""

    instance: Instance
    stage_index: int
    included: bool
    needs: tuple[Need, ...] | None
    needs_path: str = "needs"  # "needs" or "rules[i]:needs": where the effective needs came from

    @property
    def name(self) -> str:
        return self.instance.name


@dataclass(frozen=True, slots=True)
class Graph:
    """Resolved needs and artifact sources of the included jobs, plus what went wrong."""

    needs: Mapping[str, tuple[PlannedNeed, ...] | None]
    artifact_sources: Mapping[str, tuple[str, ...]]
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]


# ---- parallel expansion ------------------------------------------------------------------------


def expand_parallel(job: Job) -> tuple[Instance, ...]:
    """`parallel: N` -> `name i/N`; `parallel:matrix` -> `name: [v1, v2]`
    (docs/SEMANTICS.md §12)."""
    parallel = job.parallel
    if parallel is None:
        return (Instance(job.name, job.name, job),)
    if parallel.count is not None:
        total = parallel.count
        return tuple(
            Instance(f"{job.name} {i}/{total}", job.name, job, i, total)
            for i in range(1, total + 1)
        )
    combos = matrix_combinations(parallel.matrix)
    total = len(combos)
    return tuple(
        Instance(matrix_name(job.name, combo), job.name, job, i, total, combo)
        for i, combo in enumerate(combos, start=1)
    )


def matrix_combinations(
    matrix: Sequence[Mapping[str, Sequence[str]]],
) -> tuple[tuple[tuple[str, str], ...], ...]:
    """Each entry's cartesian product, first key varying slowest, entries concatenated."""
    out: list[tuple[tuple[str, str], ...]] = []
    for entry in matrix:
        keys = list(entry)
        for values in itertools.product(*(entry[key] for key in keys)):
            out.append(tuple(zip(keys, values, strict=True)))
    return tuple(out)


def matrix_name(group: str, combo: Iterable[tuple[str, str]]) -> str:
    # GitLab drops nil values from the name; the loader turns YAML null into "".
    values = ", ".join(value for _, value in combo if value != "")
    return f"{group}: [{values}]"


def expand_jobs(jobs: Iterable[Job]) -> tuple[Instance, ...]:
    """All instances in definition order; a later instance with a taken name replaces the
    earlier one in its position, as GitLab's name-keyed hash does."""
    by_name: dict[str, Instance] = {}
    for job in jobs:
        for instance in expand_parallel(job):
            by_name[instance.name] = instance
    return tuple(by_name.values())


# ---- needs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Index:
    """Every job by name, and the instances of each parallel group."""

    jobs: Mapping[str, GraphJob]
    groups: Mapping[str, tuple[str, ...]]  # parallel group name -> instance names

    def expand_name(self, name: str) -> tuple[str, ...]:
        return self.groups.get(name, (name,))


def _make_index(jobs: Sequence[GraphJob]) -> _Index:
    by_name = {job.name: job for job in jobs}
    groups: dict[str, list[str]] = {}
    for job in jobs:
        if job.instance.job.parallel is not None:
            groups.setdefault(job.instance.group_name, []).append(job.name)
    return _Index(by_name, {group: tuple(names) for group, names in groups.items()})


def _interpolate(text: str, matrix: Mapping[str, str], problems: list[str]) -> str:
    if "$[[" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in matrix:
            problems.append(f"`$[[ matrix.{key} ]]`: {key} is not a matrix variable of this job")
            return match.group(0)
        return matrix[key]

    return _MATRIX_REF.sub(replace, text)


def expand_need(need: Need, index: _Index, owner: Instance, errors: list[str]) -> list[PlannedNeed]:
    """One configured need -> the concrete instances it means (all, or a matrix selection)."""
    matrix = dict(owner.matrix)
    target = _interpolate(need.job, matrix, errors)
    if need.matrix is None or target not in index.groups:
        names = index.expand_name(target) if need.matrix is None else (target,)
        return [PlannedNeed(name, need.artifacts, need.optional) for name in names]
    entries = [
        {key: [_interpolate(v, matrix, errors) for v in values] for key, values in entry.items()}
        for entry in need.matrix
    ]
    return [
        PlannedNeed(matrix_name(target, combo), need.artifacts, need.optional)
        for combo in matrix_combinations(entries)
    ]


def _dedupe(needs: Iterable[PlannedNeed]) -> tuple[PlannedNeed, ...]:
    seen: dict[str, PlannedNeed] = {}
    for need in needs:
        seen.setdefault(need.job, need)
    return tuple(seen.values())


class _Resolver:
    """Collects problems while resolving every job's needs; one pass over jobs and edges.

    Config-level problems name the configured job (`test`), not each of its parallel
    instances, so a bad need of a `parallel: 50` job is reported once.
    """

    def __init__(self, jobs: Sequence[GraphJob]) -> None:
        self.jobs = jobs
        self.index = _make_index(jobs)
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        self.static_edges: dict[str, list[str]] = {}
        self._seen_messages: set[str] = set()

    def fail(self, owner: GraphJob, message: str, path: str, hint: str | None = None) -> None:
        if message in self._seen_messages:
            return
        self._seen_messages.add(message)
        location: Location | None = owner.instance.job.location
        self.problems.append(Problem(message, location, job=owner.name, path=path, hint=hint))

    def expand(self, owner: GraphJob, needs: Sequence[Need], path: str) -> list[PlannedNeed]:
        out: list[PlannedNeed] = []
        for need in needs:
            if need.external is not None:
                self.warnings.append(
                    f"job {owner.instance.group_name!r}: need on {need.external} points outside"
                    " this pipeline; localci ignores it"
                )
                continue
            errors: list[str] = []
            out.extend(expand_need(need, self.index, owner.instance, errors))
            for error in errors:
                self.fail(owner, f"{owner.instance.group_name} job: {error}", path)
        return out

    def check_defined(self, owner: GraphJob, needs: Sequence[PlannedNeed], path: str) -> None:
        """GitLab's config-time checks: need defined, and in the current or a prior stage."""
        for need in needs:
            target = self.index.jobs.get(need.job)
            if target is None:
                if not need.optional:
                    self.fail(
                        owner,
                        f"{owner.instance.group_name} job: undefined need: {need.job}",
                        path,
                        hint=_close_hint(need.job, self.index.jobs),
                    )
            elif target.stage_index > owner.stage_index:
                self.fail(
                    owner,
                    f"{owner.instance.group_name} job: need {need.job} is not defined in current or"
                    " prior stages",
                    path,
                    hint="a job can only need jobs of its own or an earlier stage",
                )

    def check_dependencies(self, owner: GraphJob) -> tuple[str, ...] | None:
        job = owner.instance.job
        if job.dependencies is None:
            return None
        names = [n for dep in job.dependencies for n in self.index.expand_name(dep)]
        for name in names:
            target = self.index.jobs.get(name)
            if target is None:
                self.fail(
                    owner,
                    f"{owner.instance.group_name} job: undefined dependency: {name}",
                    "dependencies",
                    hint=_close_hint(name, self.index.jobs),
                )
            elif target.stage_index > owner.stage_index:
                self.fail(
                    owner,
                    f"{owner.instance.group_name} job: dependency {name} is not defined in current"
                    " or prior stages",
                    "dependencies",
                    hint="a job can only depend on jobs of its own or an earlier stage",
                )
        if job.needs:
            needed = {need.job for need in job.needs}
            missing = [dep for dep in job.dependencies if dep not in needed]
            if missing:
                self.fail(
                    owner,
                    f"{owner.instance.group_name} job: dependencies the {', '.join(missing)} should"
                    " be part of needs",
                    "dependencies",
                )
        return tuple(dict.fromkeys(names))

    def present(
        self,
        owner: GraphJob,
        needs: Sequence[PlannedNeed],
        path: str,
    ) -> tuple[PlannedNeed, ...]:
        """Pipeline-creation check: drop optional needs on absent jobs, fail on the others."""
        kept: list[PlannedNeed] = []
        for need in needs:
            target = self.index.jobs.get(need.job)
            if target is not None and target.included:
                if target.stage_index <= owner.stage_index:
                    kept.append(need)
                continue
            if need.optional or target is None:
                continue  # an undefined non-optional need was already reported by check_defined
            self.fail(
                owner,
                f"'{owner.name}' job needs '{need.job}' job, but '{need.job}' does not exist in"
                " the pipeline. This might be because of the only, except, or rules keywords."
                " To need a job that sometimes does not exist in the pipeline, use"
                " needs:optional.",
                path,
                hint=f"{need.job!r} was left out: see `localci explain {need.job!r}`",
            )
        return _dedupe(kept)

    def resolve(self, owner: GraphJob) -> tuple[PlannedNeed, ...] | None:
        job = owner.instance.job
        static = self.expand(owner, job.needs or (), "needs")
        self.check_defined(owner, static, "needs")
        self.static_edges[owner.name] = [n.job for n in static if n.job in self.index.jobs]
        if owner.needs is None:
            return None
        if not owner.included:  # shown for information only: nothing checks or runs them
            return _dedupe(
                static
                if owner.needs_path == "needs"
                else self.expand(owner, owner.needs, owner.needs_path)
            )
        if owner.needs_path == "needs":
            effective = static
        else:
            effective = self.expand(owner, owner.needs, owner.needs_path)
            self.check_defined(owner, effective, owner.needs_path)
        if len(effective) > MAX_NEEDS:
            self.fail(
                owner,
                f"{owner.name}: one job can only need {MAX_NEEDS} others, but you"
                f" have listed {len(effective)}. See needs keyword documentation for more"
                " details",
                owner.needs_path,
            )
        return self.present(owner, effective, owner.needs_path)


def resolve_graph(jobs: Sequence[GraphJob]) -> Graph:
    """Resolve every job's needs and dependencies; artifact sources for the included jobs."""
    resolver = _Resolver(jobs)
    resolved: dict[str, tuple[PlannedNeed, ...] | None] = {}
    dependencies: dict[str, tuple[str, ...] | None] = {}
    for job in jobs:
        resolved[job.name] = resolver.resolve(job)
        dependencies[job.name] = resolver.check_dependencies(job)
    dynamic_edges = {
        job.name: [need.job for need in needs]
        for job in jobs
        if job.included and (needs := resolved[job.name])
    }
    for edges in (resolver.static_edges, dynamic_edges):
        for cycle in find_cycles(edges):
            owner = resolver.index.jobs[cycle[0]]
            resolver.fail(
                owner,
                "circular dependency detected in `needs`: " + " -> ".join([*cycle, cycle[0]]),
                "needs",
                hint="remove one of the needs to break the cycle",
            )
    sources = artifact_sources(jobs, resolved, dependencies)
    warnings = tuple(dict.fromkeys(resolver.warnings))
    return Graph(resolved, sources, tuple(resolver.problems), warnings)


# ---- cycles ------------------------------------------------------------------------------------


def find_cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every cycle met by an iterative depth-first search (each reported once, rotated so its
    smallest name comes first). Linear in nodes + edges."""
    white, grey, black = 0, 1, 2
    color: dict[str, int] = {}
    found: dict[tuple[str, ...], list[str]] = {}
    for root in edges:
        if color.get(root, white) != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(edges.get(root, ())))]
        path: list[str] = [root]
        on_path: dict[str, int] = {root: 0}
        color[root] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                del on_path[node]
                color[node] = black
                continue
            state = color.get(child, white)
            if state == grey:
                cycle = path[on_path[child] :]
                start = cycle.index(min(cycle))
                rotated = cycle[start:] + cycle[:start]
                found.setdefault(tuple(rotated), rotated)
            elif state == white:
                color[child] = grey
                on_path[child] = len(path)
                path.append(child)
                stack.append((child, iter(edges.get(child, ()))))
    return list(found.values())


# ---- artifacts ---------------------------------------------------------------------------------


def artifact_sources(
    jobs: Sequence[GraphJob],
    needs: Mapping[str, tuple[PlannedNeed, ...] | None],
    dependencies: Mapping[str, tuple[str, ...] | None],
) -> dict[str, tuple[str, ...]]:
    """Needs with artifacts, else dependencies, else every earlier-stage job
    (docs/SEMANTICS.md §14)."""
    included = [job for job in jobs if job.included]
    stage_of = {job.name: job.stage_index for job in included}
    earlier = _earlier_stage_jobs(included)
    out: dict[str, tuple[str, ...]] = {}
    for job in included:
        own_needs = needs.get(job.name)
        deps = dependencies.get(job.name)
        if own_needs is not None:
            wanted = [need.job for need in own_needs if need.artifacts]
            if deps is not None:
                allowed = set(wanted)
                wanted = [dep for dep in deps if dep in allowed]
            out[job.name] = tuple(wanted)
        elif deps is not None:
            out[job.name] = tuple(
                dep for dep in deps if stage_of.get(dep, job.stage_index) < job.stage_index
            )
        else:
            out[job.name] = earlier[job.stage_index]
    return out


def _earlier_stage_jobs(included: Sequence[GraphJob]) -> dict[int, tuple[str, ...]]:
    # One shared tuple per stage keeps stage-mode sources linear in memory, not jobs x jobs.
    ordered = sorted(included, key=lambda job: job.stage_index)
    out: dict[int, tuple[str, ...]] = {}
    names: list[str] = []
    position = 0
    for stage_index in sorted({job.stage_index for job in included}):
        while position < len(ordered) and ordered[position].stage_index < stage_index:
            names.append(ordered[position].name)
            position += 1
        out[stage_index] = tuple(names)
    return out


def _close_hint(name: str, known: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3)
    return f"did you mean {', '.join(repr(c) for c in close)}?" if close else None
