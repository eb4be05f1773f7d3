"""Repository facts for `rules:changes` and `rules:exists`: changed paths, the project's files.

This is the only place planning may reach git: `GitFacts` reads each fact lazily, once, because
which `compare_to` refs are needed (and whether `exists` is used at all) is only known while
rules are evaluated. `StaticFacts` gives them up front, and then planning does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from localci.plan import context as context_module
from localci.plan.context import PipelineContext


class RepoFacts(Protocol):
    """The two repository facts rules read: changed paths and the files of the commit."""

    def changed_paths(self, compare_to: str | None) -> frozenset[str] | None: ...

    def files(self) -> Sequence[str]: ...


class GitFacts:
    """Reads the facts from git through `localci.plan.context`, once each."""

    def __init__(self, ctx: PipelineContext) -> None:
        self._ctx = ctx
        self._changed: dict[str | None, frozenset[str] | None] = {}
        self._files: Sequence[str] | None = None

    def changed_paths(self, compare_to: str | None) -> frozenset[str] | None:
        if compare_to not in self._changed:
            self._changed[compare_to] = context_module.changed_paths(self._ctx, compare_to)
        return self._changed[compare_to]

    def files(self) -> Sequence[str]:
        if self._files is None:
            self._files = context_module.workspace_files(Path(self._ctx.project_dir))
        return self._files


@dataclass(frozen=True, slots=True)
class StaticFacts:
    """Facts given up front (tests, or a caller that already knows them).

    `changed` None means "no push information": every `changes` clause is true.
    `compared` gives the changed paths per `compare_to` ref.
    """

    changed: frozenset[str] | None = None
    file_list: tuple[str, ...] = ()
    compared: Mapping[str, frozenset[str] | None] = field(default_factory=dict)

    def changed_paths(self, compare_to: str | None) -> frozenset[str] | None:
        if compare_to is None:
            return self.changed
        return self.compared.get(compare_to, self.changed)

    def files(self) -> Sequence[str]:
        return self.file_list
