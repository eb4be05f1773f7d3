"""Parsers for each job keyword: raw YAML value -> model value, problems located."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from localci.config.fields import Reader, scalar_text, type_name
from localci.config.model import (
    AllowFailure,
    Artifacts,
    Cache,
    CacheKeyFiles,
    Changes,
    Environment,
    Image,
    Inherit,
    Job,
    Need,
    Parallel,
    RefPolicy,
    Retry,
    Rule,
    Service,
    Variable,
)
from localci.config.yaml_source import LocDict, LocList, location_of
from localci.errors import Location, Problem

JOB_KEYS = frozenset(
    {
        "after_script",
        "allow_failure",
        "artifacts",
        "before_script",
        "cache",
        "coverage",
        "dast_configuration",
        "dependencies",
        "environment",
        "except",
        "extends",
        "hooks",
        "id_tokens",
        "identity",
        "image",
        "inherit",
        "interruptible",
        "manual_confirmation",
        "needs",
        "only",
        "pages",
        "parallel",
        "release",
        "resource_group",
        "retry",
        "rules",
        "run",
        "script",
        "secrets",
        "services",
        "stage",
        "start_in",
        "tags",
        "timeout",
        "trigger",
        "type",
        "variables",
        "when",
        "publish",
    }
)
# Keywords localci reads but cannot emulate; the planner/executor warn about them per job.
UNSUPPORTED = (
    "release",
    "secrets",
    "id_tokens",
    "identity",
    "dast_configuration",
    "run",
    "hooks",
    "pages",
)
_NOTHING: tuple[Any, ...] = (None, [], {})  # a keyword with one of these values does nothing
MAX_MATRIX_JOBS = 200
JOB_WHEN = ("on_success", "on_failure", "always", "manual", "delayed")
RULE_WHEN = (*JOB_WHEN, "never")
JOB_RULE_KEYS = frozenset(
    {
        "if",
        "changes",
        "exists",
        "when",
        "start_in",
        "allow_failure",
        "variables",
        "needs",
        "interruptible",
    }
)
WORKFLOW_RULE_KEYS = frozenset(
    {
        "if",
        "changes",
        "exists",
        "when",
        "variables",
        "auto_cancel",
        "start_in",
        "allow_failure",
        "needs",
    }
)
VARIABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
CACHE_KEYS = frozenset(
    {"key", "paths", "untracked", "policy", "when", "fallback_keys", "unprotect"}
)
ARTIFACT_KEYS = frozenset(
    {
        "paths",
        "exclude",
        "untracked",
        "when",
        "name",
        "expire_in",
        "expose_as",
        "reports",
        "public",
        "access",
    }
)
RETRY_WHEN = (
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
)


def job(reader: Reader, name: str, stage: str, where: Location | None) -> Job:
    """Every keyword of one job, after defaults were applied."""
    raw = reader.mapping
    _check_rules_exclusive(reader)
    return Job(
        name=name,
        stage=stage,
        script=reader.strings("script") or (),
        before_script=reader.strings("before_script") or (),
        after_script=reader.strings("after_script") or (),
        variables=variables(reader, "variables") or (),
        rules=rules(reader, "rules") if "rules" in raw else None,
        only=reader.typed("only", ref_policy),
        except_=reader.typed("except", ref_policy),
        when=reader.choice("when", JOB_WHEN),
        allow_failure=reader.typed("allow_failure", allow_failure),
        start_in=reader.string("start_in"),
        needs=needs(reader, "needs") if "needs" in raw else None,
        dependencies=reader.strings("dependencies") if "dependencies" in raw else None,
        parallel=reader.typed("parallel", parallel),
        cache=reader.typed("cache", caches) or (),
        artifacts=reader.typed("artifacts", artifacts),
        image=reader.typed("image", image),
        services=reader.typed("services", services) or (),
        timeout=reader.string("timeout"),
        retry=reader.typed("retry", retry),
        environment=reader.typed("environment", environment),
        coverage=reader.string("coverage"),
        tags=reader.strings("tags") or (),
        resource_group=reader.string("resource_group"),
        interruptible=reader.boolean("interruptible"),
        trigger=_trigger(reader),
        inherit=reader.typed("inherit", inherit) or Inherit(),
        location=where,
        unsupported=tuple(k for k in UNSUPPORTED if k in raw and raw[k] not in _NOTHING),
    )


def _check_rules_exclusive(reader: Reader) -> None:
    if "rules" not in reader.mapping:
        return
    for key in ("only", "except", "start_in"):
        if key in reader.mapping:
            hint = (
                "put `start_in` inside the rule"
                if key == "start_in"
                else 'express the condition as a rule, e.g. `- if: $CI_COMMIT_BRANCH == "main"`'
            )
            reader.fail(key, f"`{key}` may not be used with `rules`", hint=hint)


def _trigger(reader: Reader) -> dict[str, Any] | None:
    value = reader.get("trigger")
    if value is None:
        return None
    if "script" in reader.mapping:
        reader.fail("trigger", "`script` and `trigger` may not be used together")
    if isinstance(value, str):
        return {"project": value}
    if isinstance(value, dict):
        for problem in trigger_problems(value):
            reader.fail("trigger", problem)
        return dict(value)
    reader.fail("trigger", f"should be a project path or a mapping, not a {type_name(value)}")
    return None


_TRIGGER_KEYS = frozenset({"include", "project", "branch", "strategy", "forward", "inputs"})
_TRIGGER_INCLUDE_KINDS = ("local", "template", "artifact", "project", "remote", "component")


def trigger_problems(trigger: dict[str, Any]) -> list[str]:
    """GitLab's checks of a `trigger:` mapping (bridge job validation)."""
    problems = []
    unknown = sorted(set(trigger) - _TRIGGER_KEYS)
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    if ("include" in trigger) == ("project" in trigger):
        problems.append("needs exactly one of `include` (a child) or `project` (multi-project)")
    strategy = trigger.get("strategy")
    if strategy is not None and strategy not in ("depend", "mirror"):
        problems.append(f"strategy should be depend or mirror, not {strategy!r}")
    forward = trigger.get("forward")
    if forward is not None and (
        not isinstance(forward, dict)
        or set(forward) - {"yaml_variables", "pipeline_variables"}
        or not all(isinstance(v, bool) for v in forward.values())
    ):
        problems.append("forward should map yaml_variables/pipeline_variables to true or false")
    include = trigger.get("include")
    entries = include if isinstance(include, list) else [include] if include is not None else []
    for entry in entries:
        problems.extend(_trigger_include_problems(entry))
    return problems


def _trigger_include_problems(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return []
    if not isinstance(entry, dict):
        return [f"each include should be a path or a mapping, not a {type_name(entry)}"]
    kinds = [kind for kind in _TRIGGER_INCLUDE_KINDS if kind in entry]
    if len(kinds) != 1:
        return [f"each include needs exactly one of {', '.join(_TRIGGER_INCLUDE_KINDS)}"]
    if kinds == ["artifact"] and "job" not in entry:
        return ["include config must specify the job where to fetch the artifact from"]
    if kinds == ["project"] and "file" not in entry:
        return ["an include of a project needs `file:`"]
    return []


# ---- variables -------------------------------------------------------------------------------


def variables(
    reader: Reader, key: str, *, allow_options: bool = False, allow_expand: bool = True
) -> tuple[Variable, ...] | None:
    raw = reader.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        reader.fail(key, f"should be a mapping of NAME: value, not a {type_name(raw)}")
        return None
    out = []
    for name, value in raw.items():
        var = _variable(reader, key, str(name), value, allow_options, allow_expand)
        if var is not None:
            out.append(var)
    return tuple(out)


def _variable(
    reader: Reader, key: str, name: str, value: Any, allow_options: bool, allow_expand: bool
) -> Variable | None:
    where = raw_where(reader.get(key), name) or reader.where(key)
    path = reader.path(f"{key}:{name}")

    def fail(message: str) -> None:
        reader.problems.append(Problem(message, where, job=reader.job, path=path))

    if not VARIABLE_NAME.match(name):
        fail("a variable name may contain only letters, digits and `_`")
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return Variable(name, scalar_text(value))
    if not isinstance(value, dict):
        fail(f"the value should be a string or a mapping with `value:`, not a {type_name(value)}")
        return None
    allowed = (
        {"value", "description", "expand", "options"}
        if allow_options
        else {"value", "description", "expand"}
    )
    if not allow_expand:
        allowed.discard("expand")
    unknown = set(value) - allowed
    if unknown:
        fail(
            f"unknown keys {', '.join(sorted(map(str, unknown)))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
        return None
    inner = value.get("value")
    if isinstance(inner, (dict, list)):
        fail("`value` should be a string")
        return None
    expand = value.get("expand", True)
    if not isinstance(expand, bool):
        fail("`expand` should be true or false")
        expand = True
    options = tuple(scalar_text(o) for o in value.get("options") or ())
    return Variable(name, scalar_text(inner), expand, _opt_text(value.get("description")), options)


def _opt_text(value: Any) -> str | None:
    return None if value is None else scalar_text(value)


def raw_where(mapping: Any, key: str) -> Location | None:
    if isinstance(mapping, LocDict):
        return mapping.key_locs.get(key)
    return None


# ---- rules, only/except ------------------------------------------------------------------------


def rules(reader: Reader, key: str, *, workflow: bool = False) -> tuple[Rule, ...] | None:
    raw = reader.get(key)
    if raw is None:
        return ()
    items = _rule_items(reader, key, raw)
    out = []
    for index, (item, where) in enumerate(items):
        rule = _rule(reader, f"{key}[{index}]", item, where, workflow)
        if rule is not None:
            out.append(rule)
    return tuple(out)


def _rule_items(reader: Reader, key: str, raw: Any) -> list[tuple[Any, Location | None]]:
    if not isinstance(raw, list):
        reader.fail(key, f"should be a list of rules, not a {type_name(raw)}")
        return []
    out: list[tuple[Any, Location | None]] = []
    for index, item in enumerate(raw):
        where = raw.where(index) if isinstance(raw, LocList) else reader.where(key)
        if isinstance(item, list):
            out.extend(_rule_items(reader, key, item))
        else:
            out.append((item, location_of(item) or where))
    return out


def _rule(
    reader: Reader, path: str, item: Any, where: Location | None, workflow: bool
) -> Rule | None:
    if not isinstance(item, dict):
        reader.problems.append(
            Problem(
                f"a rule should be a mapping, not {item!r}",
                where,
                job=reader.job,
                path=reader.path(path),
            )
        )
        return None
    sub = Reader(item, reader.job, f"{reader.path(path)}:", reader.problems, where, reader.warnings)
    sub.unknown_keys(WORKFLOW_RULE_KEYS if workflow else JOB_RULE_KEYS, "rule")
    when_values = ("always", "never") if workflow else RULE_WHEN
    if_text = sub.string("if")
    if if_text is not None:
        _check_expression(sub, if_text)
    return Rule(
        if_=if_text,
        changes=sub.typed("changes", changes),
        exists=_exists(sub),
        when=sub.choice("when", when_values),
        allow_failure=None if workflow else _rule_allow_failure(sub),
        variables=variables(sub, "variables", allow_expand=False) or (),
        needs=None if workflow or "needs" not in item else needs(sub, "needs"),
        start_in=sub.string("start_in"),
        interruptible=sub.boolean("interruptible"),
        location=where,
    )


def _check_expression(reader: Reader, text: str) -> None:
    from localci.expr import ExpressionError, parse_expression

    try:
        parse_expression(text)
    except ExpressionError as exc:
        reader.fail(
            "if",
            str(exc),
            hint='see GitLab\'s CI/CD expression syntax: $VAR == "value", $VAR =~ /regex/, &&, ||',
        )


def _rule_allow_failure(reader: Reader) -> bool | None:
    value = reader.get("allow_failure")
    if value is None:
        return None
    if not isinstance(value, bool):
        reader.fail("allow_failure", "in a rule, allow_failure should be true or false")
        return None
    return value


def _exists(reader: Reader) -> tuple[str, ...] | None:
    value = reader.get("exists")
    if value is None:
        return None
    if isinstance(value, dict):
        sub = reader.child("exists", value)
        return sub.strings("paths") or ()
    return reader.strings("exists")


def changes(reader: Reader, key: str, value: Any) -> Changes | None:
    if isinstance(value, dict):
        sub = reader.child(key, value)
        sub.unknown_keys(frozenset({"paths", "compare_to"}), "changes")
        return Changes(sub.strings("paths") or (), sub.string("compare_to"))
    paths = reader.string_list(key, value)
    return None if paths is None else Changes(paths)


def ref_policy(reader: Reader, key: str, value: Any) -> RefPolicy | None:
    if isinstance(value, (str, list)):
        refs = reader.string_list(key, value)
        return None if refs is None else RefPolicy(refs=refs)
    if not isinstance(value, dict):
        reader.fail(key, f"should be a list of refs or a mapping, not a {type_name(value)}")
        return None
    sub = reader.child(key, value)
    sub.unknown_keys(frozenset({"refs", "variables", "changes", "kubernetes"}), key)
    change = sub.typed("changes", changes)
    return RefPolicy(
        refs=sub.strings("refs") or (),
        variables=sub.strings("variables") or (),
        changes=change,
        kubernetes=sub.string("kubernetes"),
    )


# ---- needs, parallel ---------------------------------------------------------------------------


def needs(reader: Reader, key: str) -> tuple[Need, ...] | None:
    raw = reader.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raw = [raw]
    out = []
    for item in raw:
        need = _need(reader, key, item)
        if need is not None:
            out.append(need)
    return tuple(out)


def _need(reader: Reader, key: str, item: Any) -> Need | None:
    if isinstance(item, (str, int, float)) and not isinstance(item, bool):
        return Need(str(item))
    if not isinstance(item, dict):
        reader.fail(key, f"each need should be a job name or a mapping, not {item!r}")
        return None
    sub = Reader(
        item,
        reader.job,
        reader.path(key) + ":",
        reader.problems,
        location_of(item) or reader.where(key),
        reader.warnings,
    )
    sub.unknown_keys(
        frozenset({"job", "artifacts", "optional", "parallel", "project", "ref", "pipeline"}),
        "need",
    )
    if "pipeline" in item and "job" not in item:
        return Need(job="", external=f"pipeline {item['pipeline']}")
    name = sub.string("job")
    if name is None:
        sub.fail("job", "a need mapping requires `job:`")
        return None
    external = None
    if "project" in item:
        external = f"project {item['project']}"
    elif "pipeline" in item:
        external = f"pipeline {item['pipeline']}"
    return Need(
        job=name,
        artifacts=bool(sub.boolean("artifacts", True)),
        optional=bool(sub.boolean("optional", False)),
        matrix=_need_matrix(sub),
        external=external,
    )


def _need_matrix(reader: Reader) -> tuple[dict[str, tuple[str, ...]], ...] | None:
    """Values are lists, as in a job's own `parallel:matrix` (a scalar is a one-item list):
    GitLab's Normalizer expands a need's matrix with the same MatrixStrategy.expand."""
    value = reader.get("parallel")
    if value is None:
        return None
    matrix = value.get("matrix") if isinstance(value, dict) else None
    if not isinstance(matrix, list):
        reader.fail("parallel", "needs:parallel should contain `matrix:` with a list")
        return None
    out = []
    for entry in matrix:
        if not isinstance(entry, dict):
            continue
        values = {str(k): _matrix_values(v) for k, v in entry.items()}
        if any(v is None for v in values.values()):
            reader.fail("parallel", "needs:parallel:matrix values should be a string or a list")
            return None
        out.append({k: v for k, v in values.items() if v is not None})
    return tuple(out)


def parallel(reader: Reader, key: str, value: Any) -> Parallel | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 200:
            reader.fail(key, "parallel should be a number from 1 to 200")
            return None
        return Parallel(count=value)
    matrix = value.get("matrix") if isinstance(value, dict) else None
    if not isinstance(matrix, list) or not matrix:
        reader.fail(key, "parallel should be a number or `matrix:` with a list of mappings")
        return None
    out = []
    for entry in matrix:
        if not isinstance(entry, dict):
            reader.fail(key, "parallel:matrix entries should be mappings of NAME: values")
            return None
        values = {str(k): _matrix_values(v) for k, v in entry.items()}
        if any(v is None for v in values.values()):
            reader.fail(key, "parallel:matrix values should be a string or a list of strings")
            return None
        out.append({k: v for k, v in values.items() if v is not None})
    jobs = sum(math.prod(len(v) for v in entry.values()) for entry in out)
    if jobs > MAX_MATRIX_JOBS:
        reader.fail(
            key, f"parallel:matrix generates {jobs} jobs; GitLab allows at most {MAX_MATRIX_JOBS}"
        )
        return None
    return Parallel(matrix=tuple(out))


def _matrix_values(value: Any) -> tuple[str, ...] | None:
    items = value if isinstance(value, list) else [value]
    if any(isinstance(item, (dict, list)) for item in items):
        return None
    return tuple(scalar_text(v) for v in items)


# ---- cache, artifacts --------------------------------------------------------------------------


def caches(reader: Reader, key: str, value: Any) -> tuple[Cache, ...] | None:
    items = value if isinstance(value, list) else [value]
    # Entry::Caches counts the list as written; ComposableArray then composes
    # `[@config].flatten`, so a list from `!reference` contributes its caches one by one.
    if len(items) > 4:
        reader.fail(key, "a job may define at most 4 caches")
    out = []
    for item in _flattened(items):
        if item in (None, {}):
            continue
        if not isinstance(item, dict):
            reader.fail(key, f"each cache should be a mapping, not a {type_name(item)}")
            continue
        out.append(_cache(reader.child(key, item)))
    return tuple(out)


def _flattened(items: list[Any]) -> Iterator[Any]:
    for item in items:
        if isinstance(item, list):
            yield from _flattened(item)
        else:
            yield item


def _cache(reader: Reader) -> Cache:
    reader.unknown_keys(CACHE_KEYS, "cache config")
    raw_key = reader.get("key")
    key: str | CacheKeyFiles = "default"
    if isinstance(raw_key, dict):
        sub = reader.child("key", raw_key)
        sub.unknown_keys(frozenset({"files", "prefix", "files_commits"}), "cache:key")
        key = CacheKeyFiles(
            sub.strings("files") or sub.strings("files_commits") or (), sub.string("prefix")
        )
    elif raw_key is not None:
        key = reader.string("key") or "default"
    return Cache(
        key=key,
        paths=reader.strings("paths") or (),
        untracked=bool(reader.boolean("untracked", False)),
        policy=reader.string("policy") or "pull-push",
        when=reader.choice("when", ("on_success", "on_failure", "always"), "on_success")
        or "on_success",
        fallback_keys=reader.strings("fallback_keys") or (),
        unprotect=bool(reader.boolean("unprotect", False)),
    )


def artifacts(reader: Reader, key: str, value: Any) -> Artifacts | None:
    if not isinstance(value, dict):
        reader.fail(key, f"should be a mapping, not a {type_name(value)}")
        return None
    sub = reader.child(key, value)
    sub.unknown_keys(ARTIFACT_KEYS, "artifacts config")
    reports: dict[str, tuple[str, ...]] = {}
    raw_reports = sub.mapping_of("reports") or {}
    for name, raw in raw_reports.items():
        paths = raw.get("path") if isinstance(raw, dict) else raw  # coverage_report: {path}
        if paths is not None:
            reports[str(name)] = sub.string_list("reports", paths) or ()
    return Artifacts(
        paths=sub.strings("paths") or (),
        exclude=sub.strings("exclude") or (),
        untracked=bool(sub.boolean("untracked", False)),
        when=sub.choice("when", ("on_success", "on_failure", "always"), "on_success")
        or "on_success",
        name=sub.string("name"),
        expire_in=sub.string("expire_in"),
        reports=reports,
        expose_as=sub.string("expose_as"),
    )


# ---- small keywords ----------------------------------------------------------------------------


def allow_failure(reader: Reader, key: str, value: Any) -> AllowFailure | None:
    if isinstance(value, bool):
        return AllowFailure(allowed=value)
    codes = value.get("exit_codes") if isinstance(value, dict) else None
    if codes is None:
        reader.fail(key, "should be true, false or {exit_codes: [...]}")
        return None
    values = codes if isinstance(codes, list) else [codes]
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in values):
        reader.fail(key, "exit_codes should be integers")
        return None
    return AllowFailure(allowed=False, exit_codes=tuple(values))


def retry(reader: Reader, key: str, value: Any) -> Retry | None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 2:
            reader.fail(key, "retry should be 0, 1 or 2")
            return None
        return Retry(max=value)
    if not isinstance(value, dict):
        reader.fail(key, "retry should be 0, 1, 2 or a mapping with max/when/exit_codes")
        return None
    sub = reader.child(key, value)
    sub.unknown_keys(frozenset({"max", "when", "exit_codes"}), "retry config")
    maximum = value.get("max", 0)
    if not isinstance(maximum, int) or isinstance(maximum, bool) or not 0 <= maximum <= 2:
        sub.fail("max", "retry:max should be 0, 1 or 2")
        maximum = 0
    when = sub.strings("when") or ("always",)
    for reason in when:
        if reason not in RETRY_WHEN:
            sub.fail("when", f"unknown retry reason {reason!r}; allowed: {', '.join(RETRY_WHEN)}")
    codes = value.get("exit_codes")
    code_list = codes if isinstance(codes, list) else ([] if codes is None else [codes])
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in code_list):
        sub.fail("exit_codes", "retry:exit_codes should be integers")
        code_list = []
    return Retry(max=maximum, when=when, exit_codes=tuple(code_list))


def image(reader: Reader, key: str, value: Any) -> Image | None:
    if isinstance(value, str):
        return Image(value)
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return _image_mapping(value)
    reader.fail(key, "should be an image name or a mapping with `name:`")
    return None


def _image_mapping(value: dict[str, Any]) -> Image:
    entry = value.get("entrypoint")
    policy = value.get("pull_policy")
    policies = policy if isinstance(policy, list) else ([] if policy is None else [policy])
    docker: dict[str, Any] = value["docker"] if isinstance(value.get("docker"), dict) else {}
    user, platform = docker.get("user"), docker.get("platform")
    return Image(
        name=value["name"],
        entrypoint=tuple(map(str, entry)) if isinstance(entry, list) else None,
        pull_policy=tuple(map(scalar_text, policies)),
        user=None if user is None else scalar_text(user),
        platform=None if platform is None else scalar_text(platform),
    )


def services(reader: Reader, key: str, value: Any) -> tuple[Service, ...] | None:
    if not isinstance(value, list):
        reader.fail(key, "should be a list of images")
        return None
    out = []
    for item in value:
        if isinstance(item, list):
            reader.fail(key, "each service should be an image name or a mapping with `name:`")
            continue
        if not isinstance(item, dict):
            if item is not None:
                out.append(Service(Image(scalar_text(item))))
            continue
        if not item.get("name"):
            reader.child(key, item).fail("name", "a service mapping requires `name:` (the image)")
            continue
        command = item.get("command")
        variables: dict[str, Any] = (
            item["variables"] if isinstance(item.get("variables"), dict) else {}
        )
        out.append(
            Service(
                image=_image_mapping({**item, "name": scalar_text(item.get("name"))}),
                alias=None if item.get("alias") is None else scalar_text(item.get("alias")),
                command=tuple(map(str, command)) if isinstance(command, list) else None,
                variables=tuple(
                    (str(name), _variable_text(val)) for name, val in variables.items()
                ),
            )
        )
    return tuple(out)


def _variable_text(value: Any) -> str:
    if isinstance(value, dict):
        return scalar_text(value.get("value"))
    return scalar_text(value)


def environment(reader: Reader, key: str, value: Any) -> Environment | None:
    if isinstance(value, str):
        return Environment(value)
    if not isinstance(value, dict) or "name" not in value:
        reader.fail(key, "should be an environment name or a mapping with `name:`")
        return None
    sub = reader.child(key, value)
    return Environment(
        name=sub.string("name") or "",
        url=sub.string("url"),
        action=sub.string("action") or "start",
        deployment_tier=sub.string("deployment_tier"),
    )


def inherit(reader: Reader, key: str, value: Any) -> Inherit | None:
    if not isinstance(value, dict):
        reader.fail(key, "should be a mapping with `default:` and/or `variables:`")
        return None
    return Inherit(
        default=_inherit_value(reader, key, value.get("default", True)),
        variables=_inherit_value(reader, key, value.get("variables", True)),
    )


def _inherit_value(reader: Reader, key: str, value: Any) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return tuple(map(str, value))
    reader.fail(key, "inherit values should be true, false or a list of names")
    return True
