"""What a job's venv holds besides the interpreter: what the official `python:X.Y` image ships.

The docker-library/python Dockerfiles (their final build of each version) install pip from the
interpreter's own `ensurepip` (3.8 and later) or pinned through get-pip.py (3.6, 3.7), then
pinned setuptools and wheel up to 3.11; from 3.12 the image has pip only. Each wheel is unpacked
once into an image under the app-data folder and symlinked into every venv, as virtualenv's
`--symlink-app-data` does: seeding a venv costs a few symlinks and scripts.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENSUREPIP", "IMAGE_SEEDS", "Seed", "SeedPlan", "plan_seeds", "seed_venv"]

ENSUREPIP = "ensurepip"  # the interpreter's own bundled wheel, as `--with-ensurepip` installs
# image X.Y -> (distribution, version) the image installs, from docker-library/python.
IMAGE_SEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "3.6": (("pip", "21.2.4"), ("setuptools", "57.5.0"), ("wheel", "0.37.1")),
    "3.7": (("pip", "23.0.1"), ("setuptools", "57.5.0"), ("wheel", "0.41.2")),
    "3.8": (("pip", ENSUREPIP), ("setuptools", "57.5.0"), ("wheel", "0.44.0")),
    "3.9": (("pip", ENSUREPIP), ("setuptools", "79.0.1"), ("wheel", "0.45.1")),
    "3.10": (("pip", ENSUREPIP), ("setuptools", "79.0.1"), ("wheel", "0.45.1")),
    "3.11": (("pip", ENSUREPIP), ("setuptools", "79.0.1"), ("wheel", "0.45.1")),
}
_PIP_ONLY = (("pip", ENSUREPIP),)  # 3.12 and later
_DOWNLOAD_TIMEOUT_S = 120.0
_UNREACHABLE: set[tuple[str, str]] = set()  # downloads that failed in this run: not retried
_LOCK = threading.Lock()
_VERSION_SUFFIX = re.compile(r".*?-?\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class Seed:
    """One distribution to link into a venv: its unpacked read-only image."""

    name: str
    version: str
    image: Path


@dataclass(frozen=True, slots=True)
class SeedPlan:
    """The seeds of one X.Y, and what differs from the image (said in the job log)."""

    seeds: tuple[Seed, ...]
    deviations: tuple[str, ...]

    @property
    def identity(self) -> str:
        return " ".join(f"{s.name}=={s.version}@{s.image}" for s in self.seeds)


def wanted_seeds(minor: str) -> tuple[tuple[str, str], ...]:
    """What the `python:<minor>` image ships (pip only from 3.12)."""
    return IMAGE_SEEDS.get(minor, _PIP_ONLY)


def plan_seeds(
    python: Path, minor: str, app_data: Path, *, download: bool, log: Callable[[str], None]
) -> SeedPlan:
    """Find or build the read-only image of every seed `python:<minor>` ships.

    A pinned wheel comes from the download cache, the interpreter's ensurepip, or (when
    `download`) PyPI, once; failing all, the nearest local version stands in and the plan says so.
    """
    seeds: list[Seed] = []
    deviations: list[str] = []
    wanted = wanted_seeds(minor)
    with _LOCK:
        missing = [
            (n, v)
            for n, v in wanted
            if _find_wheel(python, minor, n, v, app_data) is None and (n, v) not in _UNREACHABLE
        ]
        if missing and download:
            _download(missing, minor, app_data / "wheels", log)
        for name, version in wanted:
            wheel = _find_wheel(python, minor, name, version, app_data) or _stand_in(
                python, minor, name
            )
            if wheel is None:
                deviations.append(f"{name} {version} is not available here; not installed")
                continue
            got = _wheel_version(wheel)
            if version not in (ENSUREPIP, got):
                deviations.append(f"{name} {got} instead of {version} (could not download it)")
            seeds.append(Seed(name, got, _image(wheel, minor, app_data)))
    return SeedPlan(tuple(seeds), tuple(deviations))


def seed_venv(plan: SeedPlan, site_packages: Path, bin_dir: Path, minor: str) -> None:
    """Link every seed into the venv and write its console scripts (pip, pip3, pip3.X...)."""
    python = bin_dir / "python"
    for seed in plan.seeds:
        for entry in sorted(seed.image.iterdir()):
            (site_packages / entry.name).symlink_to(entry)
        for script, target in _console_scripts(seed, minor):
            _write_script(bin_dir / script, python, target)


def _find_wheel(python: Path, minor: str, name: str, version: str, app_data: Path) -> Path | None:
    """The wheel of `name` the image pins (or the interpreter's own, for ENSUREPIP), if here."""
    bundled = sorted(_bundled_wheels(python, minor, name), key=_version_key)
    if version == ENSUREPIP:
        return bundled[-1] if bundled else None
    cached = _wheels_in(app_data / "wheels", name)
    return next((w for w in (*cached, *bundled) if _wheel_version(w) == version), None)


def _stand_in(python: Path, minor: str, name: str) -> Path | None:
    """The nearest local wheel of `name` when the pinned one cannot be had."""
    bundled = sorted(_bundled_wheels(python, minor, name), key=_version_key)
    return bundled[-1] if bundled else None


def _bundled_wheels(python: Path, minor: str, name: str) -> list[Path]:
    """`name` wheels the interpreter's ensurepip (or Debian's python-wheels) carries."""
    prefix = _real(python).parent.parent
    folders = [prefix / "lib" / f"python{minor}" / "ensurepip" / "_bundled"]
    if str(prefix) == "/usr":
        folders.append(Path("/usr/share/python-wheels"))
    return [wheel for folder in folders for wheel in _wheels_in(folder, name)]


def _wheels_in(folder: Path, name: str) -> list[Path]:
    try:
        return sorted(folder.glob(f"{name}-*.whl"))
    except OSError:
        return []


def _wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _version_key(wheel: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", _wheel_version(wheel)))


def _download(
    wanted: list[tuple[str, str]], minor: str, cache: Path, log: Callable[[str], None]
) -> None:
    """Fetch the pinned wheels from the package index, once for this machine."""
    names = ", ".join(f"{name} {version}" for name, version in wanted)
    log(f"Downloading {names} for the python:{minor} image's environment (once)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        # Bounded: without a network pip would otherwise retry for minutes inside a job.
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--disable-pip-version-check", "--only-binary=:all:", "--dest", tmp,
                   "--timeout", "15", "--retries", "1",
                   *(f"{name}=={version}" for name, version in wanted)]  # fmt: skip
        _UNREACHABLE.update(wanted)
        try:
            subprocess.run(command, check=False, capture_output=True, timeout=_DOWNLOAD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return
        for wheel in Path(tmp).glob("*.whl"):
            wheel.replace(cache / wheel.name)
            _UNREACHABLE.difference_update({tuple(wheel.name.split("-")[:2])})


def _image(wheel: Path, minor: str, app_data: Path) -> Path:
    """The unpacked image of `wheel` for Python `minor` (built once): its files read-only, its
    folders writable so that the interpreter caches bytecode there on first import (compiling
    all of pip and setuptools up front cost seconds per version, most of it never imported)."""
    image = app_data / "seed-images" / f"py{minor}" / wheel.stem
    if image.is_dir():
        return image
    image.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=image.parent, prefix=".build-"))
    try:
        with zipfile.ZipFile(wheel) as archive:
            _extract(archive, staging)
        _top_level_record(staging)
        _read_only(staging)
        staging.replace(image)
    except OSError:
        if not image.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return image


def _extract(archive: zipfile.ZipFile, dest: Path) -> None:
    root = dest.resolve()
    for member in archive.infolist():
        target = (dest / member.filename).resolve()
        if root not in target.parents and target != root:
            raise OSError(f"wheel member {member.filename!r} escapes the image")
    archive.extractall(dest)


def _top_level_record(image: Path) -> None:
    """RECORD lists only the links a venv gets: `pip uninstall` then removes the venv's links,
    never the shared image's files."""
    for record in image.glob("*.dist-info/RECORD"):
        lines = [f"{entry.name},," for entry in sorted(image.iterdir())]
        record.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read_only(image: Path) -> None:
    for path in _files(image):
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _files(root: Path) -> Iterator[Path]:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            yield Path(folder) / name


def _console_scripts(seed: Seed, minor: str) -> list[tuple[str, str]]:
    """(script name, "module:function"), with version-suffixed names made for `minor`."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for entry_points in seed.image.glob("*.dist-info/entry_points.txt"):
        parser.read(entry_points, encoding="utf-8")
    if not parser.has_section("console_scripts"):
        return []
    scripts = dict(parser.items("console_scripts"))
    plain = {n: t for n, t in scripts.items() if not _VERSION_SUFFIX.fullmatch(n)}
    if seed.name == "pip" and "pip" in plain:
        major = minor.split(".", maxsplit=1)[0]
        plain.update({f"pip{major}": plain["pip"], f"pip{minor}": plain["pip"]})
    return sorted(plain.items())


def _write_script(path: Path, python: Path, target: str) -> None:
    module, _, function = target.partition(":")
    function = function.strip()
    head = function.split(".")[0]
    body = (
        "import re\nimport sys\n"
        f"from {module.strip()} import {head}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({function}())\n"
    )
    path.write_text(_shebang(python) + body, encoding="utf-8")
    path.chmod(0o755)


def _shebang(python: Path) -> str:
    if len(str(python)) < 120 and " " not in str(python):
        return f"#!{python}\n"
    # Kernels cut long shebang lines: let sh find the interpreter (pip's own launcher trick).
    return f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n"


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path
