"""Commands of a job's script that only its image can provide: the operating system's package
managers (`apk add`, `apt-get install`...). A Python image is emulated by a virtualenv, which
has none of them; run on this machine they would fail for a reason GitLab never sees, or, as
root, install packages on this machine. A job that calls one needs its image."""

from __future__ import annotations

import re
from collections.abc import Iterable

from localci.plan.model import PlannedJob

__all__ = ["PACKAGE_MANAGERS", "job_package_manager", "package_manager_in"]

PACKAGE_MANAGERS = ("apk", "apt-get", "apt", "aptitude", "yum", "dnf", "microdnf", "zypper")

# A command position: the start of a line or after a shell separator, then optional
# `VAR=value` assignments and `sudo`/`exec`/`command` prefixes, then the program's name.
_COMMAND = re.compile(
    r"(?:^|[;&|(`]|\$\(|\b(?:then|do|else|exec|command|sudo|xargs|time)\s)"
    r"\s*(?:[A-Za-z_]\w*=\S*\s+)*"
    r"(?:sudo\s+(?:-\S+\s+)*)?"
    r"(?:/usr/bin/|/usr/sbin/|/sbin/|/bin/)?"
    r"(" + "|".join(re.escape(name) for name in PACKAGE_MANAGERS) + r")(?=\s|$|;|&|\|)",
    re.MULTILINE,
)


def package_manager_in(lines: Iterable[str]) -> str | None:
    """The first OS package manager the script lines run, or None."""
    for line in lines:
        match = _COMMAND.search(line)
        if match:
            return match.group(1)
    return None


def job_package_manager(job: PlannedJob) -> str | None:
    """The OS package manager `job` runs in before_script, script or after_script, or None."""
    spec = job.spec
    return package_manager_in((*spec.before_script, *spec.script, *spec.after_script))
