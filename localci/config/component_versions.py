"""Which commit a component version names: GitLab's order over a project's tags and branches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")
_SHORTHAND = re.compile(r"\d+(\.\d+)?")
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class Refs:
    """Tags and branches of a repository, each to its commit SHA."""

    tags: Mapping[str, str] = field(default_factory=dict)
    heads: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A component version chosen from `Refs`: what to fetch, its commit and semver."""

    ref: str
    sha: str
    version: str | None
    label: str


def resolve_version(spec: str, refs: Refs) -> Resolved | None:
    """GitLab's order: `~latest`, partial semver (`1`, `1.2`), a tag, a branch, a commit SHA.

    `~latest` and partial versions pick the highest release tag (no pre-release) that matches.
    """
    if spec == "~latest" or _SHORTHAND.fullmatch(spec):
        wanted = () if spec == "~latest" else tuple(int(p) for p in spec.split("."))
        best = _highest(refs.tags, wanted)
        if best is not None or spec == "~latest":
            return best
    if spec in refs.tags:
        version = spec if _SEMVER.fullmatch(spec) else None
        return Resolved(f"refs/tags/{spec}", refs.tags[spec], version, spec)
    if spec in refs.heads:
        return Resolved(f"refs/heads/{spec}", refs.heads[spec], None, spec)
    if _SHA.fullmatch(spec):
        return Resolved(spec, spec, None, spec)
    return None


def _highest(tags: Mapping[str, str], wanted: tuple[int, ...]) -> Resolved | None:
    releases = []
    for tag, sha in tags.items():
        match = _SEMVER.fullmatch(tag)
        if match is None or match.group(4):
            continue
        numbers = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
        if numbers[: len(wanted)] == wanted:
            releases.append((numbers, tag, sha))
    if not releases:
        return None
    _, tag, sha = max(releases)
    return Resolved(f"refs/tags/{tag}", sha, tag, tag)


def parse_ls_remote(output: str) -> Refs:
    """`git ls-remote` lines -> Refs; peeled `^{}` lines give annotated tags their commit."""
    tags: dict[str, str] = {}
    heads: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        if name.startswith("refs/tags/"):
            tag = name.removeprefix("refs/tags/")
            if tag.endswith("^{}"):
                tags[tag.removesuffix("^{}")] = sha
            else:
                tags.setdefault(tag, sha)
        elif name.startswith("refs/heads/"):
            heads[name.removeprefix("refs/heads/")] = sha
    return Refs(tags, heads)
