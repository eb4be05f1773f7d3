"""The host names a job reaches each service by (GitLab's rules).

Without `alias`, gitlab-runner derives two host names from the image (doc/ci/services,
"Accessing the services"): the tag and digest are dropped, then `/` becomes `__` (primary) and
`-` (secondary): `tutum/wordpress:latest` -> `tutum__wordpress`, `tutum-wordpress`. An `alias`
adds names, separated by commas or blanks (gitlab-runner's `Service.Aliases()`).
"""

from __future__ import annotations

import re

_ALIAS_SEPARATORS = re.compile(r"[,\s]+")
_REGISTRY_PORT = re.compile(r"^([^/]+):\d+/")


def parse_aliases(text: str) -> tuple[str, ...]:
    """`alias: "db, pg"` / `alias: db pg` -> ("db", "pg")."""
    return tuple(part for part in _ALIAS_SEPARATORS.split(text) if part)


def derived_aliases(image: str) -> tuple[str, ...]:
    """The host names gitlab-runner gives every service: `/` as `__` (primary), then as `-`
    (one name when they agree)."""
    path = _image_path(image)
    if not path:
        return ()
    return tuple(dict.fromkeys((path.replace("/", "__"), path.replace("/", "-"))))


def host_names(image: str, alias: str | None = None) -> tuple[str, ...]:
    """Every name a job can use for the service of `image` (its name with the job's variables
    expanded): the derived ones, then those of `alias`, in gitlab-runner's order."""
    return tuple(dict.fromkeys((*derived_aliases(image), *parse_aliases(alias or ""))))


def _image_path(image: str) -> str:
    reference = image.strip().partition("@")[0]
    reference = _REGISTRY_PORT.sub(r"\1/", reference)
    last_slash = reference.rfind("/")
    colon = reference.find(":", last_slash + 1)
    return reference[:colon] if colon >= 0 else reference
