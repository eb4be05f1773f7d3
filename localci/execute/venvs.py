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
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localci.errors import LocalCIError
from localci.execute.interpreters import (
    Interpreter,
    choose,
    current_interpreter,
    discover_here,
    request_for_option,
)
from localci.execute.seeding import SeedPlan, plan_seeds, seed_venv
from localci.files import atomic_write_json, remove_tree, tree_fingerprint

__all__ = [
    "PythonNotFound",
    "PythonUnsupported",
    "Venv",
    "VenvFactory",
    "activated_env",
    "resolve_python",
]

# virtualenv keeps process-wide caches (interpreter info, app-data handles) and is not documented
# as thread-safe; its own file locks only guard against other processes.
_LOCK = threading.Lock()
_FAST_FLAGS = ("--no-download", "--no-periodic-update", "--activators", "bash")
_UNSET = ("PYTHONHOME", "PYTHONPATH", "__PYVENV_LAUNCHER__")
_RECORD_FORMAT = 1


class PythonNotFound(LocalCIError):
    """No local interpreter matches the requested Python (e.g. `python:3.9` without a 3.9)."""

    exit_code = 3  # the machine's setup to fix (jobs turn it into their own failure)


class PythonUnsupported(LocalCIError):
    """The interpreter exists but no virtualenv can be made for it (Python 2.7)."""

    exit_code = 3


def _quiet(_line: str) -> None:
    """Default progress sink: say nothing."""


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

    def __init__(self, app_data_dir: Path, *, seed_pip: bool = True, download: bool = True) -> None:
        self._app_data = app_data_dir
        self._seed_pip = seed_pip
        self._download = download
        # One seed plan per interpreter and run: finding the wheels scans directories, and every
        # job asks for the plan, also when its slot's venv is kept (its identity is compared).
        self._plans: dict[tuple[Path, str], SeedPlan] = {}
        self._plans_lock = threading.Lock()

    def create(
        self, dest: Path, python: str | None = None, log: Callable[[str], None] = _quiet
    ) -> Venv:
        """Create a venv at `dest` for `python`: None (this interpreter), "3.11", "3", or a path,
        seeded with what the official `python:X.Y` image ships.

        Raises PythonNotFound when no local interpreter matches, PythonUnsupported when it is
        too old for a virtualenv.
        """
        target = resolve_python(python)
        plan = self._seed_plan(target, log)
        return self._create(dest, target, plan)

    def _create(self, dest: Path, target: Interpreter, plan: SeedPlan | None) -> Venv:
        session_via_cli = _virtualenv_api().session_via_cli
        args = [str(dest), *self._flags(), "-p", str(target.path)]
        with _LOCK:
            try:
                session = session_via_cli(args, setup_logging=False, env=_virtualenv_env())
                with session:
                    session.run()
            except Exception as exc:  # virtualenv's errors have no common base class
                raise PythonUnsupported(
                    f"virtualenv could not create an environment for Python {target.full} "
                    f"({target.path}): {exc}"
                ) from exc
        venv = _venv_of(session)
        site_packages = Path(session.creator.purelib)
        if target.version[:2] < (3, 8):
            # virtualenv's distutils hook is written for 3.8+ (a SyntaxError on every start).
            for name in ("_virtualenv.pth", "_virtualenv.py"):
                (site_packages / name).unlink(missing_ok=True)
        if plan is not None:
            seed_venv(plan, site_packages, venv.bin_dir, target.minor)
        return venv

    def _seed_plan(self, target: Interpreter, log: Callable[[str], None]) -> SeedPlan | None:
        if not self._seed_pip:
            return None
        key = (target.path, target.minor)
        with self._plans_lock:
            plan = self._plans.get(key)
            if plan is None:
                plan = plan_seeds(
                    target.path, target.minor, self._app_data, download=self._download, log=log
                )
                self._plans[key] = plan
        for deviation in plan.deviations:
            log(f"WARNING: python:{target.minor} image differs here: {deviation}")
        return plan

    def fresh(
        self,
        dest: Path,
        python: str | None,
        record: Path,
        log: Callable[[str], None] = _quiet,
    ) -> tuple[Venv, bool]:
        """A pristine venv at `dest` for `python`, and whether it was kept rather than created.

        The venv a previous job left at `dest` is kept when `record` (written when it was created)
        proves it byte-for-byte untouched: same interpreter and seeds, same settings, every entry
        of the tree with the same inode, size, mode, mtime and ctime, and every link into the
        shared seed images still resolving (the user may have cleared their cache). A job cannot
        reset a ctime, so a kept venv is indistinguishable from a new one; anything else is
        recreated.
        """
        target = resolve_python(python)
        plan = self._seed_plan(target, log)
        request = self._request(target, plan)
        kept = _kept_venv(dest, record, request)
        if kept is not None:
            return kept, True
        record.unlink(missing_ok=True)
        remove_tree(dest)
        venv = self._create(dest, target, plan)
        _save_record(record, request, venv, tree_fingerprint(dest))
        return venv, False

    def _request(self, target: Interpreter, plan: SeedPlan | None) -> dict[str, str]:
        return {
            "python": str(target.path),
            "flags": " ".join(self._flags()),
            "seeds": plan.identity if plan else "",
            "virtualenv": _virtualenv_identity(),
        }

    def _flags(self) -> list[str]:
        return [*_FAST_FLAGS, "--no-seed", "--app-data", str(self._app_data)]


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
        if not fingerprint or fingerprint != tree_fingerprint(dest) or _dangling_link(dest):
            return None
        return Venv(
            path=Path(saved["path"]),
            python=Path(saved["python"]),
            bin_dir=Path(saved["bin_dir"]),
            version=str(saved["version"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # no usable record: the venv is recreated, which is always correct


def _dangling_link(dest: Path) -> bool:
    """Whether a link of the venv (its interpreter, its seeds) points at nothing any more."""
    folders = (dest / "bin", *(dest / "lib").glob("python*/site-packages"))
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return True
        if any(entry.is_symlink() and not Path(entry.path).exists() for entry in entries):
            return True
    return False


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


def resolve_python(python: str | None) -> Interpreter:
    """The interpreter for None (localci's own), a version ("3.9", "3.9.18", "3") or a path."""
    if python is None:
        return current_interpreter()
    request = request_for_option(python)
    if request.path is not None:
        return _usable(_interpreter_at(request.path))
    found = choose(discover_here(), request)
    if found is None:
        raise PythonNotFound(f"no local Python interpreter matches {python!r}")
    return _usable(found)


def _usable(found: Interpreter) -> Interpreter:
    if found.version[:2] >= (3, 6):
        return found
    raise PythonUnsupported(
        f"Python {found.full} ({found.path}) is installed, but localci cannot make an "
        "environment for it: virtualenv supports Python 3.6 and later, and Python 2 has no "
        "`venv` module. Run the job with `--python 3.X` to try it on Python 3, or on GitLab"
    )


def _interpreter_at(path: Path) -> Interpreter:
    if not (os.access(path, os.X_OK) and path.is_file()):
        raise PythonNotFound(f"no local Python interpreter matches {str(path)!r}")
    match = re.search(r"python(\d)\.(\d+)$", path.name)
    known = [i for i in discover_here() if i.path.resolve() == path.resolve()]
    if known:
        return known[0]
    if match:
        return Interpreter((int(match[1]), int(match[2]), -1), path, "--python")
    return _query_version(path)


def _query_version(path: Path) -> Interpreter:
    """A path named plainly (`python3`): ask it once."""
    import subprocess

    try:
        out = subprocess.run(
            [str(path), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
        major, minor, patch = (int(part) for part in out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise PythonNotFound(f"{path} is not a Python interpreter localci can use") from exc
    return Interpreter((major, minor, patch), path, "--python")


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
