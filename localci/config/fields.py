"""Typed readers for keyword values: each returns a value or records a located Problem."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from localci.config.merge import flatten_commands
from localci.config.yaml_source import LocDict, LocList, location_of
from localci.errors import Location, Problem

T = TypeVar("T")


@dataclass
class Reader:
    """Reads keys of one mapping (a job, `default`, a rule...), collecting problems."""

    mapping: dict[str, Any]
    job: str | None
    prefix: str
    problems: list[Problem]
    fallback: Location | None = None
    warnings: list[str] = field(default_factory=list)

    def where(self, key: str | None = None) -> Location | None:
        if key is not None and isinstance(self.mapping, LocDict):
            return self.mapping.where(key) or self.fallback
        return location_of(self.mapping) or self.fallback

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}" if self.prefix else key

    def fail(self, key: str, message: str, hint: str | None = None) -> None:
        self.problems.append(
            Problem(message, self.where(key), job=self.job, path=self.path(key), hint=hint)
        )

    def child(self, key: str, mapping: dict[str, Any], suffix: str = "") -> Reader:
        return Reader(
            mapping,
            self.job,
            f"{self.path(key)}{suffix}:",
            self.problems,
            self.where(key),
            self.warnings,
        )

    def get(self, key: str) -> Any:
        return self.mapping.get(key)

    def string(self, key: str, default: T | None = None) -> str | T | None:
        value = self.mapping.get(key)
        if value is None:
            return default
        if isinstance(value, (dict, list)):
            self.fail(key, f"should be a string, not a {type_name(value)}")
            return default
        return scalar_text(value)

    def boolean(self, key: str, default: T | None = None) -> bool | T | None:
        value = self.mapping.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, f"should be a boolean (true or false), not {value!r}")
            return default
        return value

    def choice(
        self, key: str, allowed: tuple[str, ...], default: T | None = None
    ) -> str | T | None:
        value = self.string(key)
        if value is None:
            return default
        if value not in allowed:
            self.fail(key, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
            return default
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A string or a (nested) list of strings; None when absent."""
        value = self.mapping.get(key)
        if value is None:
            return None
        return self.string_list(key, value)

    def string_list(self, key: str, value: Any) -> tuple[str, ...] | None:
        if isinstance(value, (str, int, float, bool)):
            return (scalar_text(value),)
        if not isinstance(value, list):
            self.fail(key, f"should be a string or a list of strings, not a {type_name(value)}")
            return None
        try:
            items = flatten_commands(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return None
        out = []
        for index, item in enumerate(items):
            if isinstance(item, (dict, list)) or item is None:
                where = value.where(index) if isinstance(value, LocList) else self.where(key)
                self.problems.append(
                    Problem(
                        f"item {index + 1} should be a string, not {describe(item)}",
                        where,
                        job=self.job,
                        path=self.path(key),
                        hint="quote lines that contain `: ` or start with special characters",
                    )
                )
                continue
            out.append(scalar_text(item))
        return tuple(out)

    def mapping_of(self, key: str) -> dict[str, Any] | None:
        value = self.mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, f"should be a mapping, not a {type_name(value)}")
            return None
        return value

    def typed(self, key: str, parse: Callable[[Reader, str, Any], T | None]) -> T | None:
        value = self.mapping.get(key)
        if value is None:
            return None
        return parse(self, key, value)

    def unknown_keys(self, allowed: set[str] | frozenset[str], what: str) -> None:
        unknown = [k for k in self.mapping if k not in allowed]
        if unknown:
            self.problems.append(
                Problem(
                    f"{what} contains unknown keys: {', '.join(unknown)}",
                    self.where(unknown[0]),
                    job=self.job,
                    path=self.prefix.rstrip(":") or None,
                    hint=f"allowed keys: {', '.join(sorted(allowed))}",
                )
            )


def scalar_text(value: Any) -> str:
    """GitLab's `to_s` of a YAML scalar (booleans lowercase, null empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:3]))
        return f"a mapping ({keys})"
    return f"a {type_name(value)}"
