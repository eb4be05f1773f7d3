"""Which local Python interpreter stands for a job's image, found wherever developers keep one.

Discovery reads directory layouts only (pyenv's `versions/3.9.18`, uv's `cpython-3.12.1-...`,
Homebrew's `Cellar/python@3.11/3.11.7`): no subprocess per candidate, and the result is cached
for the run. Also the PATH a Python-image job gets: without the host's other Pythons and tools.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Interpreter",
    "PythonChoice",
    "PythonRequest",
    "choose",
    "choose_for_job",
    "current_interpreter",
    "discover",
    "discover_here",
    "python_free_path",
    "request_for_image",
    "request_for_option",
]

UNKNOWN_PATCH = -1
_VERSION = re.compile(r"(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?")
_EXE = re.compile(r"python(?P<major>\d)\.(?P<minor>\d+)")
# Image name (after any registry/namespace) -> how its tag names the Python version.
_PLAIN_TAG = re.compile(
    r"(?P<version>\d+(?:\.\d+){0,2})(?:(?:a|b|rc)\d*)?(?:-[\w.-]*)?|latest|[a-z][\w.-]*"
)
_PREFIXED_TAG = re.compile(r"(?:[\w.]+-)?python(?P<version>\d+(?:\.\d+){0,2})(?:-[\w.-]*)?")
_DEVCONTAINER_TAG = re.compile(r"(?:\d+-)?(?P<version>\d+\.\d+(?:\.\d+)?)(?:-[\w.-]*)?")
_IMAGES: dict[str, re.Pattern[str]] = {
    "python": _PLAIN_TAG,  # docker.io/library/python, any mirror of it
    "cimg/python": _PLAIN_TAG,  # CircleCI
    "circleci/python": _PLAIN_TAG,
    "bitnami/python": _PLAIN_TAG,
    "astral-sh/uv": _PREFIXED_TAG,  # ghcr.io/astral-sh/uv:python3.12-bookworm-slim
    "nikolaik/python-nodejs": _PREFIXED_TAG,  # nikolaik/python-nodejs:python3.11-nodejs20
    "devcontainers/python": _DEVCONTAINER_TAG,  # mcr.microsoft.com/devcontainers/python:1-3.11
}
# Which source wins between two installs of the same X.Y.Z (a managed install is the one the
# developer chose on purpose; /usr/bin belongs to the OS).
_SYSTEM_DIRS = ("/usr/bin", "/usr/local/bin")  # where Debian, deadsnakes and `make install` put it
_SOURCE_RANK = ("pyenv", "uv", "asdf", "mise", "Homebrew", "python.org", "system", "PATH")


@dataclass(frozen=True, slots=True, order=True)
class Interpreter:
    """A local CPython: its version (patch -1 when the layout does not say), path, origin."""

    version: tuple[int, int, int]
    path: Path
    source: str

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def full(self) -> str:
        return self.minor if self.version[2] == UNKNOWN_PATCH else ".".join(map(str, self.version))


@dataclass(frozen=True, slots=True)
class PythonRequest:
    """The Python a job asks for: "3.9" (or "3"), and an exact patch when the tag names one."""

    minor: str
    patch: str | None = None
    path: Path | None = None  # --python /some/python: that interpreter, no discovery

    @property
    def label(self) -> str:
        return str(self.path) if self.path else self.patch or self.minor


def request_for_image(image: str | None) -> PythonRequest | None:
    """The Python an image of a known Python family provides, else None.

    `python:3.9`, `python:3.9.18-slim-bookworm`, `python:3.13-alpine`, `python` (newest 3.x),
    and the families in _IMAGES (uv, CircleCI, Bitnami, python-nodejs, devcontainers).
    """
    if not image:
        return None
    reference = image.strip().partition("@")[0]
    name, tag = _split_reference(reference)
    by_length = sorted(_IMAGES, key=len, reverse=True)  # devcontainers/python before python
    family = next((key for key in by_length if _is_family(name, key)), None)
    if family is None:
        return None
    match = _IMAGES[family].fullmatch(tag)
    if match is None:
        return None
    version = match.groupdict().get("version")
    if not version:
        return PythonRequest("3") if family != "astral-sh/uv" else None
    return _request_of(version)


def request_for_option(value: str) -> PythonRequest:
    """`--python 3.9`, `--python 3.9.18`, `--python python3.9` or `--python /path/to/python`."""
    text = value.strip()
    bare = text.removeprefix("python")
    if _VERSION.fullmatch(bare) or bare.isdigit():
        return _request_of(bare)
    return PythonRequest(minor="", path=Path(text))


def _request_of(version: str) -> PythonRequest:
    parts = version.split(".")
    if len(parts) == 1:
        return PythonRequest(parts[0])
    minor = ".".join(parts[:2])
    return PythonRequest(minor, version if len(parts) == 3 else None)


def _split_reference(reference: str) -> tuple[str, str]:
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return reference, "latest"
    name, _, tag = reference.rpartition(":")
    return name, tag


def _is_family(name: str, family: str) -> bool:
    if name == family or name.endswith("/" + family):
        return True
    return family == "python" and name.endswith("/library/python")


def choose(found: Iterable[Interpreter], request: PythonRequest) -> Interpreter | None:
    """The interpreter for `request`: the exact patch when asked and present, else the highest
    patch of that X.Y (of the highest X.Y for a bare "3")."""
    wanted = tuple(int(part) for part in request.minor.split(".") if part)
    matching = [i for i in found if i.version[: len(wanted)] == wanted]
    if request.patch:
        exact = [i for i in matching if i.full == request.patch]
        matching = exact or matching
    if not matching:
        return None
    return max(matching, key=lambda i: (i.version, -_SOURCE_RANK.index(i.source)))


@functools.cache
def discover_here() -> tuple[Interpreter, ...]:
    """`discover` for this process's environment and home, once per run."""
    return discover(os.environ, Path.home())


def discover(env: Mapping[str, str], home: Path, root: Path = Path("/")) -> tuple[Interpreter, ...]:
    """Every CPython 2.7/3.x installed where developers keep one, one entry per real file.

    `root` stands for `/` so tests can lay out fake machines.
    """
    seen: dict[Path, Interpreter] = {}
    for found in _all_sources(env, home, root):
        key = _real(found.path)
        known = seen.get(key)
        if known is None or _better(found, known):
            seen[key] = found
    return tuple(sorted(seen.values(), key=lambda i: (i.version, str(i.path)), reverse=True))


def _better(new: Interpreter, old: Interpreter) -> bool:
    if new.version[2] != old.version[2]:
        return new.version[2] > old.version[2]  # a layout that knows the patch says more
    return _SOURCE_RANK.index(new.source) < _SOURCE_RANK.index(old.source)


def _all_sources(env: Mapping[str, str], home: Path, root: Path) -> Iterator[Interpreter]:
    data_home = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    pyenv = Path(env.get("PYENV_ROOT") or home / ".pyenv")
    yield from _versions_dir(pyenv / "versions", "pyenv")
    uv_dir = env.get("UV_PYTHON_INSTALL_DIR")
    yield from _uv_dir(Path(uv_dir) if uv_dir else data_home / "uv" / "python")
    asdf = Path(env.get("ASDF_DATA_DIR") or home / ".asdf")
    yield from _versions_dir(asdf / "installs" / "python", "asdf")
    mise = Path(env.get("MISE_DATA_DIR") or data_home / "mise")
    yield from _versions_dir(mise / "installs" / "python", "mise")
    for prefix in ("opt/homebrew", "usr/local", "home/linuxbrew/.linuxbrew"):
        yield from _homebrew(root / prefix / "Cellar")
    framework = root / "Library/Frameworks/Python.framework/Versions"
    for version_dir in _children(framework):
        yield from _executables(version_dir / "bin", "python.org")
    yield from _path_entries(env.get("PATH", ""), root)
    for system_dir in _SYSTEM_DIRS:
        yield from _executables(root / system_dir.lstrip("/"), "system")


def _versions_dir(folder: Path, source: str) -> Iterator[Interpreter]:
    """pyenv, asdf and mise: `<folder>/3.9.18/bin/python3.9` (PyPy, conda... are skipped)."""
    for child in _children(folder):
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", child.name)
        if match:
            yield from _executables(child / "bin", source, int(match[3]))


def _uv_dir(folder: Path) -> Iterator[Interpreter]:
    """uv: `<folder>/cpython-3.12.1-linux-x86_64-gnu/bin/python3.12` (no freethreaded builds)."""
    for child in _children(folder):
        match = re.fullmatch(r"cpython-(\d+)\.(\d+)\.(\d+)-.*", child.name)
        if match:
            yield from _executables(child / "bin", "uv", int(match[3]))


def _homebrew(cellar: Path) -> Iterator[Interpreter]:
    """Homebrew: `Cellar/python@3.11/3.11.7_1/bin/python3.11`."""
    for formula in _children(cellar):
        if formula.name.startswith("python@"):
            for keg in _children(formula):
                match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:_\d+)?", keg.name)
                if match:
                    yield from _executables(keg / "bin", "Homebrew", int(match[3]))


def _path_entries(path: str, root: Path) -> Iterator[Interpreter]:
    for entry in path.split(os.pathsep):
        folder = Path(entry)
        if not folder.is_absolute() or entry in _SYSTEM_DIRS:
            continue  # system folders are scanned as "system"
        if root != Path("/"):
            folder = root / folder.relative_to("/")
        if not _is_shim_or_env(folder):
            yield from _executables(folder, "PATH")


def _executables(folder: Path, source: str, patch: int = UNKNOWN_PATCH) -> Iterator[Interpreter]:
    """`pythonX.Y` files in `folder` that can be executed."""
    try:
        with os.scandir(folder) as scan:
            names = sorted(entry.name for entry in scan)
    except OSError:
        return
    for name in names:
        match = _EXE.fullmatch(name)
        path = folder / name
        if match and os.access(path, os.X_OK) and path.is_file():
            version = (int(match["major"]), int(match["minor"]), patch)
            yield Interpreter(version, path, source)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return []


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def _is_shim_or_env(folder: Path) -> bool:
    """A folder of shims (pyenv, asdf, mise) or a virtual/conda environment's scripts."""
    if folder.name == "shims":
        return True
    parent = folder.parent
    return (parent / "pyvenv.cfg").exists() or (parent / "conda-meta").is_dir()


def current_interpreter() -> Interpreter:
    """The interpreter localci runs on (the fallback when a job's version is missing)."""
    base = Path(getattr(sys, "_base_executable", "") or sys.executable)
    major, minor, patch = sys.version_info[:3]
    return Interpreter((major, minor, patch), base, "localci")


def python_free_path(path: str, home: Path) -> str:
    """`path` without the folders that provide other Python interpreters or their tools.

    On GitLab a `python:X.Y` job sees only the image's Python; here the host's pyenv/asdf/mise
    shims, `~/.local/bin` (pip --user and pipx), other virtualenvs, conda environments, pipx's
    and Python installs' bin folders would answer `pytest` or `python3.12` for it. System tools
    (git, make, compilers in /usr/bin) stay.
    """
    kept: list[str] = []
    for entry in path.split(os.pathsep):
        if entry and entry not in kept and not _provides_python(Path(entry), home):
            kept.append(entry)
    return os.pathsep.join(kept)


def _provides_python(folder: Path, home: Path) -> bool:
    if _is_shim_or_env(folder):
        return True
    text = str(folder)
    if folder == home / ".local" / "bin" or "/pipx/" in f"{text}/":
        return True
    markers = (
        "/.pyenv/",
        "/pyenv/",
        "/.asdf/installs/python/",
        "/mise/installs/python/",
        "/uv/python/",
        "/Python.framework/",
        "/Cellar/python@",
        "/opt/python@",
        "/conda/",
        "/miniconda",
        "/anaconda",
        "/miniforge",
        "/mambaforge",
    )
    return any(marker in f"{text}/" for marker in markers)


@dataclass(frozen=True, slots=True)
class PythonChoice:
    """Which interpreter a job's venv gets, and why."""

    spec: str | None  # what VenvFactory is given: a path, or None for localci's own
    interpreter: Interpreter | None  # what discovery found (None: localci's own, or a path)
    wanted: str | None  # what the image or --python asked for ("3.9")
    python_image: bool  # a Python image: the job's PATH drops the host's other Pythons
    substitution: str = ""  # "ran on 3.11 instead of 3.9 ..." when the wanted one is missing

    def describe(self) -> str:
        if self.interpreter is None and self.spec:
            return f"Python at {self.spec} (--python)"
        chosen = self.interpreter or current_interpreter()
        text = f"Python {chosen.full} ({chosen.source}: {chosen.path})"
        if chosen.version[:2] < (3, 6):
            text += f" - the job fails: no virtualenv for Python {chosen.minor}"
        return f"{text}; {self.substitution}" if self.substitution else text


def choose_for_job(
    image: str | None,
    option: str | None,
    found: Iterable[Interpreter],
    *,
    uv_available: bool,
) -> PythonChoice:
    """The interpreter for a job with `image`, or for every job with `--python option`."""
    request = request_for_option(option) if option else request_for_image(image)
    python_image = request is not None and (option is None or request_for_image(image) is not None)
    if request is None:
        return PythonChoice(None, None, None, python_image=False)
    if request.path is not None:
        return PythonChoice(str(request.path), None, request.label, python_image)
    chosen = choose(found, request)
    if chosen is not None:
        return PythonChoice(str(chosen.path), chosen, request.label, python_image)
    fallback = current_interpreter()
    text = f"ran on {fallback.minor} instead of {request.label}"
    if uv_available:
        text += f" (`uv python install {request.minor}` installs it; or run with --install-python)"
    return PythonChoice(None, None, request.label, python_image, substitution=text)
