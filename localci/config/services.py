"""`services:` entries and the host names a job reaches each service by (GitLab's rules).

Without `alias`, gitlab-runner derives two host names from the image (doc/ci/services,
"Accessing the services"): the tag and digest are dropped, then `/` becomes `__` (primary) and
`-` (secondary): `tutum/wordpress:latest` -> `tutum__wordpress`, `tutum-wordpress`. An `alias`
adds names, separated by commas or blanks (gitlab-runner's `Service.Aliases()`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_ALIAS_SEPARATORS = re.compile(r"[,\s]+")
_REGISTRY_PORT = re.compile(r"^([^/]+):\d+/")


@dataclass(frozen=True, slots=True)
class Service:
    """One `services:` entry: the image, its explicit aliases and how to start it."""

    name: str
    aliases: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


def parse_aliases(text: str) -> tuple[str, ...]:
    """`alias: "db, pg"` / `alias: db pg` -> ("db", "pg")."""
    return tuple(part for part in _ALIAS_SEPARATORS.split(text) if part)


def derived_aliases(image: str) -> tuple[str, ...]:
    """The host names gitlab-runner gives a service without `alias` (one when they agree)."""
    path = _image_path(image)
    if not path:
        return ()
    return tuple(dict.fromkeys((path.replace("/", "-"), path.replace("/", "__"))))


def host_names(service: Service, image: str | None = None) -> tuple[str, ...]:
    """Every name the job can use for `service`: its aliases, then the derived ones.

    `image` is the service's image name with the job's variables expanded (default: as written).
    """
    return tuple(dict.fromkeys((*service.aliases, *derived_aliases(image or service.name))))


def _image_path(image: str) -> str:
    reference = image.strip().partition("@")[0]
    reference = _REGISTRY_PORT.sub(r"\1/", reference)
    last_slash = reference.rfind("/")
    colon = reference.find(":", last_slash + 1)
    return reference[:colon] if colon >= 0 else reference
