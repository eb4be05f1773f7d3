"""Parsers for each job keyword: raw YAML value -> model value, problems located.

`variables` is parsed in variable_keywords, `rules` and `only`/`except` in rule_keywords,
`needs` and `parallel` in graph_keywords.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from localci.config.fields import Reader, scalar_text, type_name
from localci.config.graph_keywords import needs, parallel
from localci.config.model import (
    AllowFailure,
    Artifacts,
    Cache,
    CacheKeyFiles,
    Environment,
    Image,
    Inherit,
    Job,
    Retry,
    Service,
)
from localci.config.rule_keywords import JOB_WHEN, ref_policy, rules
from localci.config.variable_keywords import variables
from localci.errors import Location

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
