"""Per-job virtualenvs: created fast from a shared app-data, isolated, activated for bash."""

from __future__ import annotations

import os
import platform
import sys
import threading
from pathlib import Path

import pytest

from localci.execute.interpreters import discover_here
from localci.execute.process import run_bash
from localci.execute.venvs import (
    PythonNotFound,
    Venv,
    VenvFactory,
    activated_env,
)

pytestmark = pytest.mark.slow

CURRENT = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="session")
def app_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The app-data jobs of this session use (see conftest): seed images are built once.
    return tmp_path_factory.getbasetemp() / "localci-cache" / "virtualenv"


@pytest.fixture(scope="session")
def factory(app_data: Path) -> VenvFactory:
    return VenvFactory(app_data)


def bash_in(venv: Venv, script: str, cwd: Path) -> tuple[int | None, list[str]]:
    lines: list[str] = []
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHONPATH": "/nowhere"}
    env = activated_env(base, venv)
    outcome = run_bash(script, cwd=cwd, env=env, on_output=lines.append)
    return outcome.exit_code, lines


def test_job_python_and_pip_point_into_the_venv(factory: VenvFactory, tmp_path: Path) -> None:
    venv = factory.create(tmp_path / "venv")
    assert venv.path == tmp_path / "venv"
    assert venv.bin_dir == venv.path / "bin"
    assert venv.python.parent == venv.bin_dir
    assert venv.python.exists()
    assert venv.version == platform.python_version()
    script = "command -v python; python -c 'import sys; print(sys.prefix)'; pip --version"
    code, lines = bash_in(venv, script, tmp_path)
    assert code == 0, lines
    assert lines[0] == str(venv.bin_dir / "python")
    assert lines[1] == str(venv.path)
    assert f"from {venv.path}/lib/" in lines[2]


def test_bash_activator_works(factory: VenvFactory, tmp_path: Path) -> None:
    venv = factory.create(tmp_path / "venv")
    script = (
        f"PATH=/usr/bin:/bin; unset VIRTUAL_ENV; source {venv.bin_dir}/activate; "
        "echo $VIRTUAL_ENV; command -v python; deactivate; echo ${VIRTUAL_ENV:-gone}"
    )
    code, lines = bash_in(venv, script, tmp_path)
    assert code == 0, lines
    assert lines == [str(venv.path), str(venv.bin_dir / "python"), "gone"]


def test_two_venvs_are_independent(factory: VenvFactory, tmp_path: Path) -> None:
    first = factory.create(tmp_path / "first")
    second = factory.create(tmp_path / "second")
    site = next((first.path / "lib").glob("python*/site-packages"))
    (site / "only_in_first.py").write_text("VALUE = 1\n")
    code, lines = bash_in(
        first, "pip uninstall -y -q pip; python -c 'import only_in_first'", tmp_path
    )
    assert code == 0, lines
    assert not (first.bin_dir / "pip").exists()
    script = "python -c 'import only_in_first' 2>/dev/null || echo isolated; pip --version"
    code, lines = bash_in(second, script, tmp_path)
    assert code == 0, lines
    assert lines[0] == "isolated"
    assert f"from {second.path}/lib/" in lines[1]
    # pip's wheel image in the shared app-data survived the uninstall in `first`.
    code, lines = bash_in(factory.create(tmp_path / "third"), "pip --version", tmp_path)
    assert code == 0, lines


def test_python_specs(factory: VenvFactory, tmp_path: Path) -> None:
    for index, spec in enumerate([CURRENT, sys.executable]):
        venv = factory.create(tmp_path / f"v{index}", spec)
        assert venv.version.startswith(CURRENT)
    assert factory.create(tmp_path / "newest", "3").version.startswith("3.")


def test_unknown_python_raises(factory: VenvFactory, tmp_path: Path) -> None:
    with pytest.raises(PythonNotFound, match=r"2\.1"):
        factory.create(tmp_path / "venv", "2.1")
    with pytest.raises(PythonNotFound):
        factory.create(tmp_path / "venv", str(tmp_path / "no-such-python"))


def test_without_pip(app_data: Path, tmp_path: Path) -> None:
    venv = VenvFactory(app_data, seed_pip=False).create(tmp_path / "bare")
    assert venv.python.exists()
    assert not (venv.bin_dir / "pip").exists()
    assert (venv.bin_dir / "activate").exists()


def test_user_virtualenv_settings_do_not_leak(
    factory: VenvFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIRTUALENV_SYSTEM_SITE_PACKAGES", "true")
    monkeypatch.setenv("VIRTUALENV_ACTIVATORS", "fish")
    venv = factory.create(tmp_path / "venv")
    assert "include-system-site-packages = false" in (venv.path / "pyvenv.cfg").read_text()
    assert (venv.bin_dir / "activate").exists()


def test_concurrent_creation(factory: VenvFactory, tmp_path: Path) -> None:
    venvs: dict[int, Venv] = {}
    errors: list[BaseException] = []

    def create(index: int) -> None:
        try:
            venvs[index] = factory.create(tmp_path / f"venv{index}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(venvs) == [0, 1, 2, 3]
    for venv in venvs.values():
        code, lines = bash_in(venv, "python -c 'import sys, pip; print(sys.prefix)'", tmp_path)
        assert (code, lines) == (0, [str(venv.path)])


def test_activated_env() -> None:
    venv = Venv(Path("/w/venv"), Path("/w/venv/bin/python"), Path("/w/venv/bin"), "3.11.7")
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONHOME": "/x",
        "PYTHONPATH": "/y",
        "__PYVENV_LAUNCHER__": "/z",
        "PIP_REQUIRE_VIRTUALENV": "true",
        "VIRTUAL_ENV": "/old",
        "KEEP": "1",
    }
    env = activated_env(base, venv)
    assert env == {
        "PATH": "/w/venv/bin:/usr/bin:/bin",
        "PIP_REQUIRE_VIRTUALENV": "true",
        "VIRTUAL_ENV": "/w/venv",
        "VIRTUAL_ENV_PROMPT": "venv",
        "KEEP": "1",
    }
    assert base["PYTHONHOME"] == "/x"
    assert activated_env({}, venv)["PATH"] == f"/w/venv/bin:{os.defpath}"


def test_fresh_keeps_an_untouched_venv_and_recreates_a_touched_one(
    factory: VenvFactory, tmp_path: Path
) -> None:
    dest, record = tmp_path / "venv", tmp_path / "venv.json"
    first, kept = factory.fresh(dest, None, record)
    assert not kept
    code, lines = bash_in(first, "python -c 'import pip, json' && pip --version", tmp_path)
    assert code == 0, lines
    again, kept = factory.fresh(dest, None, record)
    assert kept and again == first

    activate = first.bin_dir / "activate"
    before = activate.stat()
    text = activate.read_bytes()
    # Same size, same mtime, other bytes: only the ctime tells.
    activate.write_bytes(text.replace(b"deactivate", b"DEACTIVATE", 1))
    os.utime(activate, ns=(before.st_atime_ns, before.st_mtime_ns))
    _, kept = factory.fresh(dest, None, record)
    assert not kept
    assert activate.read_bytes() == text


def test_fresh_recreates_for_another_interpreter_or_a_lost_record(
    factory: VenvFactory, tmp_path: Path
) -> None:
    dest, record = tmp_path / "venv", tmp_path / "venv.json"
    factory.fresh(dest, None, record)
    _, kept = factory.fresh(dest, CURRENT, record)
    assert kept  # the same interpreter, named two ways
    other = next((i for i in discover_here() if i.minor not in (CURRENT, "2.7")), None)
    if other is not None:
        _, kept = factory.fresh(dest, other.minor, record)
        assert not kept
        _, kept = factory.fresh(dest, CURRENT, record)
        assert not kept
    record.write_text("{not json")
    _, kept = factory.fresh(dest, CURRENT, record)
    assert not kept
    (dest / "lib" / "extra.pth").write_text("")
    _, kept = factory.fresh(dest, CURRENT, record)
    assert not kept and not (dest / "lib" / "extra.pth").exists()


def test_a_venv_whose_links_dangle_is_never_kept(factory: VenvFactory, tmp_path: Path) -> None:
    """Issue 20 item 6: links into a cleared cache fail the untouched check, fingerprint or not."""
    from localci.execute.venvs import _dangling_link

    dest = tmp_path / "venv"
    factory.create(dest)
    assert not _dangling_link(dest)
    site = next((dest / "lib").glob("python*/site-packages"))
    image = (site / "pip").resolve()
    moved = image.with_name(image.name + ".moved")
    image.rename(moved)  # what `rm -rf ~/.cache/localci` does to the venv's pip
    try:
        assert _dangling_link(dest)
    finally:
        moved.rename(image)
