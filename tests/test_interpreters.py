"""Interpreter discovery on fake machines (pyenv, uv, asdf, mise, Homebrew, python.org, Debian),
image tags -> Python versions, the choice for a job, and the PATH of a Python-image job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localci.execute.interpreters import (
    Interpreter,
    PythonRequest,
    choose,
    choose_for_job,
    current_interpreter,
    discover,
    python_free_path,
    request_for_image,
    request_for_option,
)


def exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A fake root and home holding one Python in every layout discovery knows."""
    root, home = tmp_path / "root", tmp_path / "root" / "home" / "dev"
    exe(home / ".pyenv/versions/3.9.18/bin/python3.9")
    exe(home / ".pyenv/versions/3.9.7/bin/python3.9")
    exe(home / ".pyenv/versions/pypy3.10-7.3.15/bin/python3.10")  # not CPython: skipped
    exe(home / ".pyenv/versions/2.7.18/bin/python2.7")
    exe(home / ".local/share/uv/python/cpython-3.12.1-linux-x86_64-gnu/bin/python3.12")
    exe(home / ".asdf/installs/python/3.8.18/bin/python3.8")
    exe(home / ".local/share/mise/installs/python/3.7.16/bin/python3.7")
    exe(root / "opt/homebrew/Cellar/python@3.11/3.11.7_1/bin/python3.11")
    exe(root / "Library/Frameworks/Python.framework/Versions/3.10/bin/python3.10")
    exe(root / "usr/bin/python3.13")  # Debian / deadsnakes
    exe(root / "usr/bin/python3")  # a bare name says no version: not used
    exe(home / ".pyenv/shims/python3.6")  # a shim is not an interpreter
    exe(root / "work/venv/bin/python3.6")  # nor is another virtualenv's python
    (root / "work/venv/pyvenv.cfg").write_text("home = /usr/bin\n")
    exe(root / "opt/tools/bin/python3.14")
    path = os.pathsep.join(
        ["/home/dev/.pyenv/shims", "/work/venv/bin", "/opt/tools/bin", "/usr/bin"]
    )
    return root, home, {"PATH": path}


def test_every_layout_is_found_with_its_version_and_source(
    machine: tuple[Path, Path, dict[str, str]],
) -> None:
    root, home, env = machine
    found = {(i.full, i.source) for i in discover(env, home, root)}
    assert found == {
        ("3.14", "PATH"),
        ("3.13", "system"),
        ("3.12.1", "uv"),
        ("3.11.7", "Homebrew"),
        ("3.10", "python.org"),
        ("3.9.18", "pyenv"),
        ("3.9.7", "pyenv"),
        ("3.8.18", "asdf"),
        ("3.7.16", "mise"),
        ("2.7.18", "pyenv"),
    }


def test_environment_variables_move_the_managers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    exe(tmp_path / "pyenv-root/versions/3.10.13/bin/python3.10")
    exe(tmp_path / "uv-pythons/cpython-3.11.7-macos-aarch64-none/bin/python3.11")
    exe(tmp_path / "asdf-data/installs/python/3.12.1/bin/python3.12")
    exe(tmp_path / "mise-data/installs/python/3.13.0/bin/python3.13")
    env = {
        "PYENV_ROOT": str(tmp_path / "pyenv-root"),
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons"),
        "ASDF_DATA_DIR": str(tmp_path / "asdf-data"),
        "MISE_DATA_DIR": str(tmp_path / "mise-data"),
    }
    found = {(i.full, i.source) for i in discover(env, home, tmp_path / "empty-root")}
    assert found == {
        ("3.10.13", "pyenv"),
        ("3.11.7", "uv"),
        ("3.12.1", "asdf"),
        ("3.13.0", "mise"),
    }


def test_one_file_reached_two_ways_is_listed_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    real = exe(home / ".pyenv/versions/3.9.18/bin/python3.9")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/python3.9").symlink_to(real)
    found = discover({"PATH": str(tmp_path / "bin")}, home, tmp_path / "root")
    assert [(i.full, i.source, i.path) for i in found] == [("3.9.18", "pyenv", real)]


@pytest.mark.parametrize(
    ("image", "minor", "patch"),
    [
        ("python:3.9", "3.9", None),
        ("python:3.9.18", "3.9", "3.9.18"),
        ("python:3.9-slim-bookworm", "3.9", None),
        ("python:3.13-alpine", "3.13", None),
        ("python:3.11.7-slim", "3.11", "3.11.7"),
        ("python:3.13.0rc1-slim", "3.13", "3.13.0"),
        ("python:3", "3", None),
        ("python:3-alpine", "3", None),
        ("python", "3", None),
        ("python:latest", "3", None),
        ("python:slim", "3", None),
        ("python:2.7", "2.7", None),
        ("docker.io/library/python:3.12-bookworm", "3.12", None),
        ("registry.example.com:5000/mirror/python:3.10-alpine3.19", "3.10", None),
        ("python:3.12@sha256:0123abcd", "3.12", None),
        ("  python:3.9  ", "3.9", None),
        ("ghcr.io/astral-sh/uv:python3.12-bookworm-slim", "3.12", None),
        ("ghcr.io/astral-sh/uv:0.5.1-python3.8-alpine", "3.8", None),
        ("cimg/python:3.11.4", "3.11", "3.11.4"),
        ("circleci/python:3.7-buster", "3.7", None),
        ("bitnami/python:3.10", "3.10", None),
        ("nikolaik/python-nodejs:python3.11-nodejs20", "3.11", None),
        ("mcr.microsoft.com/devcontainers/python:1-3.11-bookworm", "3.11", None),
    ],
)
def test_image_tags(image: str, minor: str, patch: str | None) -> None:
    assert request_for_image(image) == PythonRequest(minor, patch)


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/astral-sh/uv:latest", "pypy:3.10", "mypython:3.11", "python-tools:3.11",
     "node:20", "alpine:3.19", "", None],
)  # fmt: skip
def test_images_that_are_not_a_python(image: str | None) -> None:
    assert request_for_image(image) is None


def test_option_forms() -> None:
    assert request_for_option("3.9") == PythonRequest("3.9")
    assert request_for_option("python3.9") == PythonRequest("3.9")
    assert request_for_option("3.9.18") == PythonRequest("3.9", "3.9.18")
    assert request_for_option("/opt/py/bin/python") == PythonRequest(
        "", path=Path("/opt/py/bin/python")
    )


def found_versions(*versions: str) -> list[Interpreter]:
    out = []
    for text in versions:
        major, minor, patch = (int(part) for part in text.split("."))
        out.append(Interpreter((major, minor, patch), Path(f"/py/{text}"), "pyenv"))
    return out


def test_highest_patch_wins_and_an_exact_patch_is_preferred() -> None:
    found = found_versions("3.9.7", "3.9.18", "3.10.13", "3.13.0")
    assert choose(found, PythonRequest("3.9")) == found[1]
    assert choose(found, PythonRequest("3.9", "3.9.7")) == found[0]
    assert choose(found, PythonRequest("3.9", "3.9.2")) == found[1]  # nearest: highest patch
    assert choose(found, PythonRequest("3")) == found[3]
    assert choose(found, PythonRequest("3.8")) is None


def test_a_missing_version_runs_on_localci_python_and_says_so() -> None:
    found = found_versions("3.12.1")
    choice = choose_for_job("python:3.9", None, found, uv_available=False)
    here = current_interpreter().minor
    assert choice.spec is None and choice.wanted == "3.9"
    assert choice.substitution == f"ran on {here} instead of 3.9"
    with_uv = choose_for_job("python:3.9-slim", None, found, uv_available=True)
    assert "`uv python install 3.9`" in with_uv.substitution
    assert "--install-python" in with_uv.substitution


def test_the_option_overrides_the_image_and_non_python_images_keep_the_host_path() -> None:
    found = found_versions("3.9.18", "3.12.1")
    assert choose_for_job("python:3.9", "3.12", found, uv_available=False).spec == "/py/3.12.1"
    node = choose_for_job("node:20", None, found, uv_available=False)
    assert (node.spec, node.python_image) == (None, False)
    assert choose_for_job("python:3.9", None, found, uv_available=False).python_image
    assert "3.9.18" in choose_for_job("python:3.9", None, found, uv_available=False).describe()


def test_job_path_drops_other_pythons_and_keeps_system_tools(tmp_path: Path) -> None:
    home = tmp_path / "home"
    venv, conda = tmp_path / "venv", tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("")
    (conda / "conda-meta").mkdir(parents=True)
    path = os.pathsep.join([
        f"{home}/.pyenv/shims", f"{home}/.pyenv/bin", f"{home}/.local/bin",
        f"{venv}/bin", f"{conda}/bin", f"{home}/.asdf/shims",
        f"{home}/.local/share/mise/shims", f"{home}/.local/pipx/venvs/black/bin",
        "/opt/homebrew/opt/python@3.11/bin", f"{home}/.cargo/bin",
        "/usr/local/bin", "/usr/bin", "/bin", "/usr/bin",
    ])  # fmt: skip
    kept = python_free_path(path, home).split(os.pathsep)
    assert kept == [f"{home}/.cargo/bin", "/usr/local/bin", "/usr/bin", "/bin"]
