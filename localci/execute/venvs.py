"""Fresh per-job virtualenvs, created in-process by virtualenv from a shared read-only app-data
(or kept from the slot's previous job when provably untouched), the interpreter a `python:X.Y`
image stands for, and the environment that activates a venv.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localci.errors import LocalCIError
from localci.execute.store import atomic_write_json, remove_tree, tree_fingerprint

__all__ = [
    "PythonNotFound",
    "Venv",
    "VenvFactory",
    "activated_env",
    "find_python",
    "python_for_image",
]

# virtualenv keeps process-wide caches (interpreter info, app-data handles) and is not documented
# as thread-safe; its own file locks only guard against other processes.
_LOCK = threading.Lock()
_FAST_FLAGS = ("--no-download", "--no-periodic-update", "--activators", "bash")
_SEED_FLAGS = ("--no-setuptools", "--symlink-app-data")
_UNSET = ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__")
_PYTHON_IMAGE = re.compile(r"(?:.+/)?python")
_PYTHON_TAG = re.compile(r"(?P<version>\d+(?:\.\d+)?)(?:\.\d+)?(?:(?:a|b|rc)\d*)?(?:-[\w.-]*)?")
_RECORD_FORMAT = 1


class PythonNotFound(LocalCIError):
    """No local interpreter matches the requested Python (e.g. `python:3.9` without a 3.9)."""


@dataclass(frozen=True, slots=True)
class Venv:
    """A created virtualenv: its root, interpreter, scripts directory and Python version."""

    path: Path
    python: Path
    bin_dir: Path
    version: str


class VenvFactory:
    """Creates venvs with pip symlinked from a read-only wheel image under `app_data_dir`.

    With a warm app-data a venv takes milliseconds, so every job gets a fresh one.
    """

    def __init__(self, app_data_dir: Path, *, seed_pip: bool = True) -> None:
        self._app_data = app_data_dir
        self._seed_pip = seed_pip

    def create(self, dest: Path, python: str | None = None) -> Venv:
        """Create a venv at `dest` for `python`: None (this interpreter), "3.11", "3", or a path.

        Raises PythonNotFound when no local interpreter matches.
        """
        session_via_cli = _virtualenv_api().session_via_cli
        args = [str(dest), *self._flags(), "-p", python or sys.executable]
        with _LOCK:
            try:
                session = session_via_cli(args, setup_logging=False, env=_virtualenv_env())
            except RuntimeError as exc:
                if "failed to find interpreter" not in str(exc):
                    raise
                raise PythonNotFound(f"no local Python interpreter matches {python!r}") from exc
            with session:
                session.run()
        return _venv_of(session)

    def fresh(self, dest: Path, python: str | None, record: Path) -> tuple[Venv, bool]:
        """A pristine venv at `dest` for `python`, and whether it was kept rather than created.

        The venv a previous job left at `dest` is kept when `record` (written when it was created)
        proves it byte-for-byte untouched: same interpreter request and same settings, and every
        entry of the tree with the same inode, size, mode, mtime and ctime. A job cannot reset a
        ctime, so a kept venv is indistinguishable from a new one; anything else is recreated.
        """
        request = self._request(python)
        kept = _kept_venv(dest, record, request)
        if kept is not None:
            return kept, True
        record.unlink(missing_ok=True)
        remove_tree(dest)
        venv = self.create(dest, python)
        _save_record(record, request, venv, tree_fingerprint(dest))
        return venv, False

    def _request(self, python: str | None) -> dict[str, str]:
        return {
            "python": python or sys.executable,
            "flags": " ".join(self._flags()),
            "virtualenv": _virtualenv_identity(),
        }

    def _flags(self) -> list[str]:
        seed = _SEED_FLAGS if self._seed_pip else ("--no-seed",)
        return [*_FAST_FLAGS, *seed, "--app-data", str(self._app_data)]


def _venv_of(session: Any) -> Venv:
    creator = session.creator
    return Venv(
        path=Path(creator.dest),
        python=Path(creator.exe),
        bin_dir=Path(creator.bin_dir),
        version=str(session.interpreter.version_str),
    )


def _kept_venv(dest: Path, record: Path, request: dict[str, str]) -> Venv | None:
    try:
        saved = json.loads(record.read_text(encoding="utf-8"))
        if saved.get("format") != _RECORD_FORMAT or saved.get("request") != request:
            return None
        fingerprint = saved.get("fingerprint")
        if not fingerprint or fingerprint != tree_fingerprint(dest):
            return None
        return Venv(
            path=Path(saved["path"]),
            python=Path(saved["python"]),
            bin_dir=Path(saved["bin_dir"]),
            version=str(saved["version"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no usable record: the venv is recreated, which is always correct


def _save_record(record: Path, request: dict[str, str], venv: Venv, fingerprint: str) -> None:
    doc = {
        "format": _RECORD_FORMAT,
        "request": request,
        "path": str(venv.path),
        "python": str(venv.python),
        "bin_dir": str(venv.bin_dir),
        "version": venv.version,
        "fingerprint": fingerprint,
    }
    # Not durable: a record lost in a crash only costs one venv creation.
    atomic_write_json(record, doc, durable=False)


@functools.cache
def _virtualenv_identity() -> str:
    """Which virtualenv (hence which seeded pip) would create a venv, without importing it:
    importing virtualenv costs ~60 ms, more than a whole kept-venv job."""
    spec = importlib.util.find_spec("virtualenv")
    if spec is None or spec.origin is None:
        return ""
    version_file = Path(spec.origin).with_name("version.py")
    try:
        return f"{version_file}:{version_file.stat().st_mtime_ns}"
    except OSError:
        return spec.origin


def find_python(spec: str) -> str | None:
    """The executable virtualenv's discovery picks for `spec` ("3.11", "3", a path), or None."""
    from virtualenv.discovery.builtin import get_interpreter

    with _LOCK:
        info = get_interpreter(spec, (), env=_virtualenv_env())
    return None if info is None else str(info.executable)


def python_for_image(image: str | None) -> str | None:
    """The Python version an official `python:<tag>` image provides ("3.11", "3"), else None.

    A patch version is dropped (`python:3.11.7` -> "3.11"): a local runner approximates.
    """
    if not image:
        return None
    reference = image.strip().partition("@")[0]
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return None
    if not _PYTHON_IMAGE.fullmatch(name):
        return None
    match = _PYTHON_TAG.fullmatch(tag)
    return match["version"] if match else None


def activated_env(base: Mapping[str, str], venv: Venv) -> dict[str, str]:
    """`base` as `source <venv>/bin/activate` would leave it, minus Python variables that would
    point the venv's interpreter elsewhere."""
    env = {key: value for key, value in base.items() if key not in _UNSET}
    env["PATH"] = f"{venv.bin_dir}{os.pathsep}{base.get('PATH') or os.defpath}"
    env["VIRTUAL_ENV"] = str(venv.path)
    env["VIRTUAL_ENV_PROMPT"] = venv.path.name
    return env


def _virtualenv_env() -> dict[str, str]:
    """os.environ without VIRTUALENV_* and the user's virtualenv.ini: jobs get the same venv on
    every machine."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIRTUALENV_")}
    env["VIRTUALENV_CONFIG_FILE"] = os.devnull
    return env


def _virtualenv_api() -> Any:
    import virtualenv

    return virtualenv
