"""The one error hierarchy of localci; the CLI maps each class to an exit code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value came from: a file and a 1-based line and column."""

    file: str
    line: int
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about the configuration, located and with advice."""

    message: str
    location: Location | None = None
    job: str | None = None
    path: str | None = None
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.location}: " if self.location else ""
        subject = ""
        if self.job and self.path:
            subject = f"job {self.job!r}, {self.path}: "
        elif self.job:
            subject = f"job {self.job!r}: "
        elif self.path:
            subject = f"{self.path}: "
        text = f"{where}{subject}{self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class LocalCIError(Exception):
    """Base of every error localci reports to a user."""

    exit_code = 4

    def render(self) -> str:
        return str(self)


class UsageError(LocalCIError):
    """The command line asked for something that cannot be done."""

    exit_code = 2


class ConfigError(LocalCIError):
    """The pipeline configuration is invalid; carries every problem found."""

    exit_code = 3

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    def render(self) -> str:
        count = len(self.problems)
        head = "invalid configuration" + (f" ({count} errors)" if count > 1 else "")
        return head + ":\n" + "\n".join("  " + p.render() for p in self.problems)


class PlanError(ConfigError):
    """The pipeline cannot be created for this context (bad needs, rule errors...)."""


class GitError(LocalCIError):
    """A git fact was needed and could not be obtained (exit 3: the user's setup to fix)."""

    exit_code = 3


class StateError(LocalCIError):
    """localci's own state (.localci/, caches) could not be read or written.

    Exit 3, not 4: a read-only or full disk is the user's environment to fix, not a crash."""

    exit_code = 3


class Interrupted(LocalCIError):
    """The run was interrupted by Ctrl-C or SIGTERM."""

    exit_code = 130
