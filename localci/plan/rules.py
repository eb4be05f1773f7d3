"""Inclusion decisions: `workflow:rules`, job `rules`, and `only`/`except`
(docs/SEMANTICS.md §6, §8, §9), each with a one-line reason and, on request, a step-by-step
trace for `explain`."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from localci.config.model import (
    AllowFailure,
    Changes,
    Job,
    Need,
    RefPolicy,
    Rule,
    Variable,
    Workflow,
)
from localci.errors import ConfigError, GitError, Problem
from localci.plan.context import PipelineContext
from localci.plan.repo_facts import RepoFacts
from localci.plan.variables import VarValue, expand_gitlab

DEFAULT_ONLY = RefPolicy(refs=("branches", "tags"))
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_GLOB_CHARS = frozenset("*?[{")
Trace = list[str] | None


class RuleError(Exception):
    """A rule could not be evaluated (GitLab: "Failed to parse rule for <job>: ...")."""

    def __init__(
        self,
        message: str,
        rule: Rule | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.path = path
        self.hint = hint


class Matcher:
    """Glob matching of `changes`/`exists` against the facts, cached per pattern list."""

    def __init__(self, facts: RepoFacts) -> None:
        self.facts = facts
        self._changes: dict[tuple[tuple[str, ...], str | None], tuple[bool, str]] = {}
        self._exists: dict[tuple[str, ...], tuple[bool, str]] = {}
        self._file_set: frozenset[str] | None = None
        self._dir_set: frozenset[str] | None = None

    def changes(self, patterns: tuple[str, ...], compare_to: str | None) -> tuple[bool, str]:
        key = (patterns, compare_to)
        if key not in self._changes:
            self._changes[key] = self._match_changes(patterns, compare_to)
        return self._changes[key]

    def _match_changes(self, patterns: tuple[str, ...], compare_to: str | None) -> tuple[bool, str]:
        # Imported here, as in the two methods below: only `changes` and `exists` match globs.
        from localci.globs import fnmatch_ruby

        changed = self.facts.changed_paths(compare_to)
        if changed is None:
            return True, "no push information (new branch, tag, schedule...): changes is true"
        for path in sorted(changed):
            for pattern in patterns:
                if fnmatch_ruby(pattern, path):
                    return True, f"changed file {path!r} matches {pattern!r}"
        base = f" compared to {compare_to!r}" if compare_to else ""
        return False, f"none of {len(changed)} changed file(s){base} matches"

    def exists(self, patterns: tuple[str, ...]) -> tuple[bool, str]:
        if patterns not in self._exists:
            self._exists[patterns] = self._match_exists(patterns)
        return self._exists[patterns]

    def _match_exists(self, patterns: tuple[str, ...]) -> tuple[bool, str]:
        files = self.facts.files()
        if self._file_set is None:
            self._file_set = frozenset(files)
        for pattern in patterns:
            hit = self._exists_one(pattern, files, self._file_set)
            if hit is not None:
                return True, f"file {hit!r} matches {pattern!r}"
        return False, f"no file of the commit ({len(files)} files) matches"

    def _exists_one(
        self, pattern: str, files: Sequence[str], file_set: frozenset[str]
    ) -> str | None:
        if pattern.endswith("/"):
            return self._exists_dir(pattern.rstrip("/"))
        if not _GLOB_CHARS.intersection(pattern):
            return pattern if pattern in file_set else None
        from localci.globs import fnmatch_ruby

        return next((path for path in files if fnmatch_ruby(pattern, path)), None)

    def _exists_dir(self, pattern: str) -> str | None:
        if self._dir_set is None:
            dirs: set[str] = set()
            for path in self.facts.files():
                parts = path.split("/")[:-1]
                dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            self._dir_set = frozenset(dirs)
        if not _GLOB_CHARS.intersection(pattern):
            return pattern + "/" if pattern in self._dir_set else None
        from localci.globs import fnmatch_ruby

        hit = next((d for d in sorted(self._dir_set) if fnmatch_ruby(pattern, d)), None)
        return None if hit is None else hit + "/"


# ---- variables seen by rules -------------------------------------------------------------------


class Scope:
    """The variables one decision may read, as stacked layers (lowest first): raw values for
    `if` and `only:variables`, the GitLab-expanded set for `changes`/`exists` paths. Merged
    only when asked for; `raw_layers`, when given, are the same layers as plain strings."""

    def __init__(
        self,
        layers: Sequence[Mapping[str, VarValue]],
        raw_layers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        self._layers = layers
        self._raw_layers = raw_layers
        self._values: dict[str, VarValue] | None = None
        self._raw: dict[str, str] | None = None
        self._expanded: dict[str, str] | None = None

    @property
    def values(self) -> Mapping[str, VarValue]:
        if self._values is None:
            self._values = {}
            for layer in self._layers:
                self._values.update(layer)
        return self._values

    @property
    def raw(self) -> Mapping[str, str]:
        if self._raw is None:
            if self._raw_layers is None:
                self._raw = {name: var.value for name, var in self.values.items()}
            else:
                self._raw = {}
                for layer in self._raw_layers:
                    self._raw.update(layer)
        return self._raw

    @property
    def expanded(self) -> Mapping[str, str]:
        if self._expanded is None:
            try:
                expanded = expand_gitlab(self.values)
            except ConfigError:  # a circular reference: the executor reports it for the job
                expanded = dict(self.values)
            self._expanded = {name: var.value for name, var in expanded.items()}
        return self._expanded

    def expand_text(self, text: str) -> str:
        """`$VAR`/`${VAR}` in a path; unknown references stay literal (docs/SEMANTICS.md §9.3)."""
        if "$" not in text:
            return text
        values = self.expanded

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return values.get(name, match.group(0))

        return _REFERENCE.sub(replace, text)


# ---- rules -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """The first rule whose clauses all hold."""

    index: int
    rule: Rule
    summary: str


def describe_rule(rule: Rule) -> str:
    """The rule's clauses as one line, e.g. `if $A == "x" and changes [src/**]`."""
    parts = []
    if rule.if_ is not None:
        parts.append(f"if {rule.if_}")
    if rule.changes is not None:
        base = f" compare_to {rule.changes.compare_to}" if rule.changes.compare_to else ""
        parts.append(f"changes [{', '.join(rule.changes.paths)}]{base}")
    if rule.exists is not None:
        parts.append(f"exists [{', '.join(rule.exists)}]")
    text = " and ".join(parts) if parts else "(no condition)"
    if rule.when is not None:
        text += f", when: {rule.when}"
    return text


class RuleEvaluator:
    """Evaluates rules and only/except for one pipeline; owns the caches shared by all jobs."""

    def __init__(self, ctx: PipelineContext, facts: RepoFacts) -> None:
        self.ctx = ctx
        self.matcher = Matcher(facts)

    def first_match(
        self, rules: Sequence[Rule], key: str, scope: Scope, trace: Trace = None
    ) -> RuleMatch | None:
        """GitLab's `rules` walk: the first rule whose clauses all hold. Raises RuleError."""
        for index, rule in enumerate(rules):
            label = f"{key}[{index}]"
            if trace is not None:
                trace.append(f"{label}: {describe_rule(rule)}")
            try:
                ok, detail = self.rule_holds(rule, scope, trace)
            except RuleError as exc:
                raise RuleError(str(exc), rule, label, exc.hint) from None
            if ok:
                summary = f"{label}: {describe_rule(rule)} matched"
                if detail:
                    summary += f" ({detail})"
                if trace is not None:
                    trace.append(f"  -> {label} matched")
                return RuleMatch(index, rule, summary)
            if trace is not None:
                trace.append(f"  -> {label} did not match ({detail})")
        return None

    def rule_holds(self, rule: Rule, scope: Scope, trace: Trace = None) -> tuple[bool, str]:
        """All clauses in GitLab's order (if, changes, exists), stopping at the first false."""
        details: list[str] = []
        if rule.if_ is not None:
            ok = self.condition(rule.if_, scope, trace)
            if not ok:
                return False, "if is false"
        if rule.changes is not None:
            ok, detail = self.changes(rule.changes, scope)
            _note(trace, f"changes: {detail} -> {str(ok).lower()}")
            if not ok:
                return False, detail
            details.append(detail)
        if rule.exists is not None:
            patterns = tuple(scope.expand_text(p) for p in rule.exists)
            ok, detail = self.matcher.exists(patterns)
            _note(trace, f"exists: {detail} -> {str(ok).lower()}")
            if not ok:
                return False, detail
            details.append(detail)
        return True, "; ".join(details)

    def condition(self, text: str, scope: Scope, trace: Trace = None) -> bool:
        """One `if` expression on raw variable values; errors become RuleError."""
        # Imported here: a pipeline without `if:` never pays for the expression language.
        from localci.expr import ExpressionError, parse_expression

        try:
            expression = parse_expression(text)  # cached: big pipelines repeat conditions
            if trace is None:
                return expression.evaluate(scope.raw)
            result, steps = expression.explain(scope.raw)
        except ExpressionError as exc:
            raise RuleError(f"`{text}`: {exc}") from None
        trace.extend(f"  {step}" for step in steps)
        trace.append(f"  if: {str(result).lower()}")
        return result

    def changes(self, changes: Changes, scope: Scope) -> tuple[bool, str]:
        patterns = tuple(scope.expand_text(p) for p in changes.paths)
        compare_to = None if changes.compare_to is None else scope.expand_text(changes.compare_to)
        try:
            return self.matcher.changes(patterns, compare_to)
        except GitError as exc:  # GitLab: "rules:changes:compare_to is not a valid ref"
            hint = "localci diffs against local git refs: fetch the ref, or pass --changes-since"
            raise RuleError(f"changes: {exc}", hint=hint) from None

    # ---- only / except ------------------------------------------------------------------------

    def policy(
        self, policy: RefPolicy, scope: Scope, trace: Trace = None
    ) -> Iterator[tuple[str, bool, str]]:
        """Each key of an only/except policy, lazily: (key, satisfied, why)."""
        if policy.refs:
            yield ("refs", *self.refs(policy.refs))
        if policy.variables:
            yield ("variables", *self.policy_variables(policy.variables, scope, trace))
        if policy.changes is not None:
            yield ("changes", *self.changes(policy.changes, scope))
        if policy.kubernetes is not None:
            yield ("kubernetes", False, "no Kubernetes integration is active locally")

    def refs(self, patterns: Sequence[str]) -> tuple[bool, str]:
        for pattern in patterns:
            if ref_matches(pattern, self.ctx):
                return True, f"{pattern!r} matched {describe_ref(self.ctx)}"
        listed = ", ".join(patterns)
        return False, f"[{listed}] did not match {describe_ref(self.ctx)}"

    def policy_variables(
        self, expressions: Sequence[str], scope: Scope, trace: Trace = None
    ) -> tuple[bool, str]:
        from localci.expr import ExpressionError, parse_expression

        for text in expressions:
            try:
                parse_expression(text)
            except ExpressionError as exc:  # invalid syntax: GitLab rejects the configuration
                raise RuleError(str(exc)) from None
            try:
                if self.condition(text, scope, trace):
                    return True, f"{text} is true"
            except RuleError:
                continue  # GitLab's Statement#truthful? turns evaluation errors into false
        return False, f"none of [{', '.join(expressions)}] is true"


def _note(trace: Trace, line: str) -> None:
    if trace is not None:
        trace.append(f"  {line}")


# ---- refs --------------------------------------------------------------------------------------


def is_branch_pipeline(ctx: PipelineContext) -> bool:
    return not ctx.ref_is_tag and ctx.merge_request is None


def source_names(source: str) -> frozenset[str]:
    """The words an only/except refs entry may use for a pipeline source."""
    names = {source, _pluralize(source)}
    trimmed = source.removesuffix("_event")
    if trimmed != source:  # merge_request_event -> merge_requests (documented keyword)
        names.update({trimmed, _pluralize(trimmed)})
    return frozenset(names)


def _pluralize(word: str) -> str:
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    return word + "s"


def ref_matches(entry: str, ctx: PipelineContext) -> bool:
    """One `only`/`except` refs entry (docs/SEMANTICS.md §8), `pattern@project/path` included."""
    pattern, at, path = entry.partition("@")
    if at and path != ctx.project_path:
        return False
    if pattern == "tags" and ctx.ref_is_tag:
        return True
    if pattern == "branches" and is_branch_pipeline(ctx):
        return True
    if pattern in source_names(ctx.source):
        return True
    if pattern.startswith("/"):
        from localci.expr import ExpressionError, parse_regex_literal

        try:
            regex = parse_regex_literal(pattern)
        except ExpressionError:
            regex = None  # an invalid regex can only equal the ref literally
        if regex is not None:
            return regex.search(ctx.ref)
    return pattern == ctx.ref


def describe_ref(ctx: PipelineContext) -> str:
    kind = "tag" if ctx.ref_is_tag else "branch" if is_branch_pipeline(ctx) else "ref"
    return f"{kind} {ctx.ref!r} (source {ctx.source})"


# ---- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """What rules/only/except decided for one job instance."""

    included: bool
    when: str
    allow_failure: AllowFailure
    needs: tuple[Need, ...] | None
    needs_path: str
    rule_variables: tuple[Variable, ...]
    start_in: str | None
    reason: str
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkflowDecision:
    """Whether the pipeline is created, why, and the matched rule's variables."""

    created: bool
    reason: str
    variables: tuple[Variable, ...] = ()
    problems: tuple[Problem, ...] = ()


def decide_workflow(
    workflow: Workflow, evaluator: RuleEvaluator, scope: Scope, trace: Trace = None
) -> WorkflowDecision:
    """`workflow:rules`: first match creates the pipeline unless it says `when: never`."""
    if workflow.rules is None:
        if trace is not None:
            trace.append("no workflow:rules: the pipeline is created")
        return WorkflowDecision(True, "no workflow:rules")
    try:
        match = evaluator.first_match(workflow.rules, "workflow:rules", scope, trace)
    except RuleError as exc:
        location = exc.rule.location if exc.rule is not None else None
        problem = Problem(
            f"Failed to parse workflow rule: {exc}",
            location,
            path=exc.path or "workflow:rules",
            hint=exc.hint,
        )
        return WorkflowDecision(
            False, f"workflow:rules could not be evaluated: {exc}", problems=(problem,)
        )
    if match is None:
        count = len(workflow.rules)
        return WorkflowDecision(False, f"workflow:rules: none of the {count} rule(s) matched")
    if match.rule.when == "never":
        return WorkflowDecision(False, f"{match.summary}: when: never")
    return WorkflowDecision(True, match.summary, match.rule.variables)


def job_allow_failure(job: Job) -> AllowFailure:
    """Job-level `allow_failure`; a job-level `when: manual` defaults it to true."""
    if job.allow_failure is not None:
        return job.allow_failure
    return AllowFailure(allowed=job.when == "manual")


def decide_job(
    job: Job, evaluator: RuleEvaluator, scope: Scope, *, workflow_rules: bool, trace: Trace = None
) -> Decision:
    """Rules when the job has them, else only/except (with GitLab's default `only`)."""
    if job.rules is not None:
        return _decide_rules(job, evaluator, scope, trace)
    return _decide_policies(job, evaluator, scope, workflow_rules, trace)


def _excluded(job: Job, reason: str, problems: tuple[Problem, ...] = ()) -> Decision:
    return Decision(
        False, "never", job_allow_failure(job), job.needs, "needs", (), None, reason, problems
    )


def _decide_rules(job: Job, evaluator: RuleEvaluator, scope: Scope, trace: Trace) -> Decision:
    assert job.rules is not None
    if not job.rules:
        return _excluded(job, "rules: [] (an empty list never matches)")
    try:
        match = evaluator.first_match(job.rules, "rules", scope, trace)
    except RuleError as exc:
        location = exc.rule.location if exc.rule is not None else None
        problem = Problem(
            f"Failed to parse rule for {job.name}: {exc}",
            location or job.location,
            job=job.name,
            path=exc.path or "rules",
            hint=exc.hint,
        )
        return _excluded(job, f"rules could not be evaluated: {exc}", (problem,))
    if match is None:
        return _excluded(job, f"rules: none of the {len(job.rules)} rule(s) matched")
    rule = match.rule
    when = rule.when or job.when or "on_success"
    if when == "never":
        return _excluded(job, f"{match.summary}: when: never")
    allow = job_allow_failure(job)
    if rule.allow_failure is not None:
        allow = AllowFailure(allowed=rule.allow_failure)
    needs, needs_path = job.needs, "needs"
    if rule.needs is not None:
        # A rule's `needs: []` empties the list but keeps the job's scheduling type
        # (GitLab sets :dag only for a non-empty rule list), so a stage job stays in stage mode.
        needs = None if not rule.needs and job.needs is None else rule.needs
        needs_path = f"rules[{match.index}]:needs"
    problems = _delay_problems(job, when, rule.start_in, f"rules[{match.index}]")
    return Decision(
        True,
        when,
        allow,
        needs,
        needs_path,
        rule.variables,
        rule.start_in if when == "delayed" else None,
        match.summary,
        problems,
    )


def _delay_problems(job: Job, when: str, start_in: str | None, path: str) -> tuple[Problem, ...]:
    if when != "delayed" or start_in:
        return ()
    return (
        Problem(
            "start_in should be specified for a delayed job",
            job.location,
            job=job.name,
            path=path,
            hint="add `start_in: 10 minutes` next to `when: delayed`",
        ),
    )


def _decide_policies(
    job: Job, evaluator: RuleEvaluator, scope: Scope, workflow_rules: bool, trace: Trace
) -> Decision:
    only, label = job.only, "only"
    if only is None and not workflow_rules:
        only, label = DEFAULT_ONLY, "default only"
    notes: list[str] = []
    for policy, name, wanted in ((only, label, True), (job.except_, "except", False)):
        if policy is None:
            continue
        try:
            for key, ok, why in evaluator.policy(policy, scope, trace):
                _note(trace, f"{name}:{key}: {why} -> {str(ok).lower()}")
                if ok is not wanted:
                    return _excluded(job, f"{name}: {key} {why}")
                notes.append(f"{name}: {key} {why}")
        except RuleError as exc:
            problem = Problem(str(exc), job.location, job=job.name, path=f"{name}:variables")
            return _excluded(job, f"{name}: {exc}", (problem,))
    when = job.when or "on_success"
    reason = "; ".join(notes) or "no rules/only/except, and workflow:rules exist: no default only"
    problems = _delay_problems(job, when, job.start_in, "when")
    return Decision(
        True,
        when,
        job_allow_failure(job),
        job.needs,
        "needs",
        (),
        job.start_in if when == "delayed" else None,
        reason,
        problems,
    )
