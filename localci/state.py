"""localci's state under <project>/.localci/: its layout, pipeline ids and named locks.

Every file another run may trust is written to a temporary name and moved into place
(localci/files.py)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localci.files import atomic_write_text, hold_lock, state_error, user_cache_dir

__all__ = ["Store"]

_SUBDIRS = ("locks", "pipelines", "snapshots", "objects", "slots")
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This directory holds localci's workspaces, snapshots and run results.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_LOCK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def project_builds_root(project_dir: Path) -> Path:
    """Where the build slots of `project_dir` live: <user cache>/builds/<name>-<path digest>.

    Outside the project on purpose: no relative path, symlink or upward git search from a job's
    workspace can reach the user's working tree (GitLab's runner builds outside the checkout
    too). The digest of the resolved path keeps two projects of the same name apart.
    """
    resolved = project_dir.resolve()
    digest = hashlib.sha256(os.fsencode(str(resolved))).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name).strip("._")[:40] or "project"
    return user_cache_dir() / "builds" / f"{name}-{digest}"


class Store:
    """Owns <project>/.localci/ and hands out its paths and locks."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir.resolve()
        self.root = self.project_dir / ".localci"

    def path(self, *parts: str) -> Path:
        """A path below the store root."""
        return self.root.joinpath(*parts)

    def ensure(self) -> None:
        """Create the layout, its `.gitignore` and CACHEDIR.TAG; StateError if impossible."""
        try:
            for name in _SUBDIRS:
                self.path(name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise state_error(self.root, exc, "create") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise state_error(self.root, PermissionError(errno.EACCES, "not writable"))
        for name, text in ((".gitignore", "*\n"), ("CACHEDIR.TAG", _CACHEDIR_TAG)):
            if not self.path(name).is_file():
                atomic_write_text(self.path(name), text)

    def pipeline_dir(self, pipeline_id: int) -> Path:
        """.localci/pipelines/<id>/ (created by next_pipeline_id)."""
        return self.path("pipelines", str(pipeline_id))

    def _pipeline_ids(self) -> list[int]:
        try:
            names = [p.name for p in self.path("pipelines").iterdir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise state_error(self.path("pipelines"), exc, "read") from exc
        return [int(name) for name in names if name.isdigit()]

    def latest_pipeline_id(self) -> int | None:
        """The id of the newest pipeline started in this project, if any."""
        return max(self._pipeline_ids(), default=None)

    def latest_top_level_pipeline_id(self) -> int | None:
        """The newest pipeline that is not a child pipeline (a child is shown in its parent)."""
        latest = self.latest_pipeline_id()
        if latest is None:
            return None
        for candidate in range(latest, max(0, latest - 50), -1):
            try:
                data = json.loads(
                    self.pipeline_dir(candidate).joinpath("pipeline.json").read_text()
                )
            except (OSError, ValueError):
                return candidate
            if not isinstance(data, dict) or "parent" not in data:
                return candidate
        return latest

    def next_pipeline_id(self) -> int:
        """Reserve a fresh id (never repeated, also across processes) and create its directory."""
        self.ensure()
        counter = self.path("pipelines", "counter")
        with self.lock("counter"):
            try:
                last = int(counter.read_text().strip() or 0)
            except FileNotFoundError:
                last = 0
            except (OSError, ValueError):
                last = 0  # a damaged counter is recovered from the directories below
            new = max([last, *self._pipeline_ids()]) + 1
            atomic_write_text(counter, f"{new}\n")
            try:
                self.pipeline_dir(new).mkdir()
            except OSError as exc:
                raise state_error(self.pipeline_dir(new), exc, "create") from exc
        return new

    def lock_path(self, name: str) -> Path:
        """The file behind lock `name`."""
        if not _LOCK_NAME.fullmatch(name):
            raise ValueError(f"invalid lock name {name!r}")
        return self.path("locks", f"{name}.lock")

    @contextmanager
    def lock(self, name: str, *, blocking: bool = True, shared: bool = False) -> Iterator[None]:
        """Hold flock `name` (exclusive unless `shared`); LockBusy if not blocking and taken."""
        with hold_lock(self.lock_path(name), blocking=blocking, shared=shared):
            yield

    def remove_lock_file(self, name: str) -> None:
        """Delete the file of lock `name`; call only while holding that lock exclusively."""
        with contextlib.suppress(FileNotFoundError):
            self.lock_path(name).unlink()
