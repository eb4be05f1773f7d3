"""What the context makes of git's text: commit titles and descriptions, and the project's host
and path from a remote URL (no git process here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from localci.plan import git_reads

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")
DEFAULT_PORTS = {"http": 80, "https": 443}


def commit_title(message: str) -> str:
    """`CI_COMMIT_TITLE`: the full first line of the message (GitLab's `full_title`)."""
    if not message.strip():
        return "No commit message"
    return message.split("\n", 1)[0]


def commit_description(message: str) -> str:
    """`CI_COMMIT_DESCRIPTION`: the message after the first line, chomped.

    GitLab rule: when the first line is longer than 100 characters the description is
    `"…" + message[80:]` instead (the title would be cut there in its UI).
    """
    title_end = message.find("\n")
    if (title_end < 0 and len(message) > 100) or title_end > 100:
        return "…" + message[80:]
    if title_end < 0:
        return ""
    return git_reads.chomp(message[title_end + 1 :])


def parse_remote_url(url: str) -> tuple[str, str, str, int] | None:
    """`(host, project_path, protocol, web_port)` of a GitLab remote URL, or None for a local one.

    Handles `git@host:group/sub/proj.git`, `ssh://git@host:22/group/proj.git` and http(s)
    with or without `.git` and credentials. ssh remotes say nothing of the web server: https/443.
    """
    text = url.strip()
    if "://" in text:
        return _parse_url_form(text)
    match = _SCP_LIKE.match(text)
    if match is None:
        return None
    path = _clean_project_path(match["path"])
    return (match["host"].lower(), path, "https", 443) if path else None


def project_location(config: Mapping[str, str], root: Path) -> tuple[str, str, str, int]:
    url = config.get("remote.origin.url")
    parsed = parse_remote_url(url) if url else None
    if parsed is not None:
        return parsed
    return "localhost", f"local/{root.name or 'project'}", "https", 443


def _parse_url_form(text: str) -> tuple[str, str, str, int] | None:
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme == "file" or not parts.hostname:
        return None
    path = _clean_project_path(parts.path)
    if not path:
        return None
    if parts.scheme in DEFAULT_PORTS:
        return parts.hostname, path, parts.scheme, port or DEFAULT_PORTS[parts.scheme]
    return parts.hostname, path, "https", 443


def _clean_project_path(path: str) -> str:
    cleaned = path.strip().strip("/").removesuffix(".git").strip("/")
    return cleaned.lstrip("~")
