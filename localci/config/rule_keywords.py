"""`rules` (job and workflow), `changes`, `exists` and `only`/`except` ref policies."""

from __future__ import annotations

from typing import Any

from localci.config.fields import Reader, type_name
from localci.config.graph_keywords import needs
from localci.config.model import Changes, RefPolicy, Rule
from localci.config.variable_keywords import variables
from localci.config.yaml_source import LocList, location_of
from localci.errors import Location, Problem

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
