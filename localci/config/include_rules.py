"""`include:rules`: whether an include applies (`if`, `exists`, `changes`, `when`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localci.config.include_sources import (
    IncludeContext,
    IncludeScope,
    expand_location,
    scope_variables,
)
from localci.config.yaml_source import location_of
from localci.errors import Location, Problem

RULE_KEYS = {"if", "exists", "changes", "when"}


# ---------------------------------------------------------------------------- include:rules


def rules_allow(
    ctx: IncludeContext, scope: IncludeScope, entry: Mapping[str, Any], loc: Location | None
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
    ctx: IncludeContext, scope: IncludeScope, rule: Mapping[str, Any], loc: Location | None
) -> bool:
    from localci.expr import ExpressionError, parse_expression
    from localci.globs import fnmatch_ruby

    variables = scope_variables(ctx, scope)
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
        if not any(fnmatch_ruby(expand_location(p, variables), f) for p in patterns for f in files):
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
