"""What include processing reads from and records: file sources, options, the include context.

Also the scope and unit of one included file, and the path and variable checks every kind shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from localci.errors import ConfigError, Location, Problem

EXTERNAL_KINDS = ("remote", "template", "project", "component")
# localci's settings for external includes (read by external_settings.py).
EXTERNAL_CONFIG_FILES = (".localci/includes.yml", ".localci/includes.yaml")


class FileSource(Protocol):
    """Where the loader reads files: the working tree, or a dict in tests."""

    def read(self, path: str) -> str | None: ...

    def list_files(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ProjectTree:
    """The files of another project at one commit, as an `ExternalSource` hands them over.

    `label` names it in file names and messages (`group/project@ref`); `version` is the
    resolved semantic version of a component (None for a branch or SHA).
    """

    source: FileSource
    label: str
    sha: str = ""
    version: str | None = None


@dataclass(frozen=True, slots=True)
class IncludeOptions:
    """What the command line says about external includes."""

    offline: bool = False
    refresh: bool = False
    mapping: tuple[str, ...] = ()  # KEY=DIR, from --include-map


class ExternalIncludeError(ConfigError):
    """An external include could not be obtained (network, cache, mapping)."""


def external_error(message: str, hint: str | None = None) -> ExternalIncludeError:
    return ExternalIncludeError(Problem(message, hint=hint))


class ExternalSource(Protocol):
    """Access to files outside the repository; raises ExternalIncludeError when it cannot."""

    def remote(self, url: str, integrity: str | None) -> str: ...

    def template(self, name: str) -> str: ...

    def project(self, project: str, ref: str | None) -> ProjectTree: ...

    def component(self, host: str, project: str, version: str) -> ProjectTree: ...


@dataclass
class DirectorySource:
    """Files of a project directory (the working tree)."""

    root: Path
    _files: list[str] | None = None

    def read(self, path: str) -> str | None:
        target = (self.root / path).resolve()
        root = self.root.resolve()
        if root != target and root not in target.parents:
            raise ConfigError(
                Problem(
                    f"{path!r} resolves outside the project directory",
                    hint="includes must stay inside the repository",
                )
            )
        if not target.is_file():
            return None
        data = target.read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                Problem(f"{path} is not valid UTF-8 (byte {exc.start})", Location(path, 1))
            ) from None

    def list_files(self) -> Sequence[str]:
        if self._files is None:
            self._files = sorted(_walk(self.root))
        return self._files


def _walk(root: Path) -> Iterable[str]:
    skip = {".git", ".localci"}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or not path.is_file():
            continue
        yield rel.as_posix()


@dataclass
class MemorySource:
    """Files given as a mapping of path -> text (tests, `load_pipeline_from_text`)."""

    files: Mapping[str, str]

    def read(self, path: str) -> str | None:
        return self.files.get(path)

    def list_files(self) -> Sequence[str]:
        return sorted(self.files)


@dataclass
class IncludeContext:
    """What include processing may consult besides files (docs/SEMANTICS.md §1.3).

    `external` is None when nothing outside the repository may be read (then every
    remote/template/project/component include is an error). `included_at` records, for each
    loaded file, where the include that first brought it in was written (for origins);
    `interpolated` the content of each file with `spec:inputs` once its inputs are in.
    """

    source: FileSource
    variables: Mapping[str, str] = field(default_factory=dict)
    changed: Callable[[Sequence[str], str | None], bool] | None = None
    external: ExternalSource | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    included_at: dict[str, Location] = field(default_factory=dict)
    interpolated: dict[str, Any] = field(default_factory=dict)
    count: int = 0


@dataclass(frozen=True, slots=True)
class IncludeScope:
    """The project a file belongs to: where its `local:` includes and `exists:` rules look.

    Inside remote and template files GitLab evaluates nested includes without variables.
    """

    source: FileSource
    prefix: str = ""
    variables: bool = True


@dataclass(frozen=True, slots=True)
class IncludeUnit:
    """One file to load: its display name (used in locations), text and scope."""

    name: str
    text: str
    scope: IncludeScope
    component: Mapping[str, str | None] | None = None


def integrity_of(data: bytes) -> str:
    """The `integrity:` value GitLab expects for `data`: sha256-<base64 of the digest>."""
    import base64
    import hashlib

    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def scope_variables(ctx: IncludeContext, scope: IncludeScope) -> Mapping[str, str]:
    return ctx.variables if scope.variables else {}


def expand_location(text: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def checked_path(ctx: IncludeContext, raw: str, what: str, loc: Location | None) -> str | None:
    path = raw.lstrip("/")
    if not path.endswith((".yml", ".yaml")):
        ctx.problems.append(
            Problem(f"{what} {raw!r} must end in .yml or .yaml", loc, path="include")
        )
        return None
    if ".." in PurePosixPath(path).parts:
        ctx.problems.append(Problem(f"{what} {raw!r} leaves the repository", loc, path="include"))
        return None
    return path
