"""The wheel users install works on its own: built from a copy of the sources, installed into a
fresh virtualenv, it answers --version from the one version in localci/__init__.py and lints,
lists and runs a small pipeline outside the checkout. (.ci/run does the same from PyPI's
point of view: sdist and wheel with `python -m build`, `twine check`, dependencies from PyPI.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import localci
from tests.helpers import make_repo

ROOT = Path(__file__).resolve().parent.parent

PIPELINE = """\
stages: [build, test]
build:
  stage: build
  script:
    - mkdir -p out && python -c "print('built')" > out/result.txt
  artifacts:
    paths: [out/]
test:
  stage: test
  script:
    - grep -q built out/result.txt
"""


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "localci", source / "localci", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    _run(*pip, "--wheel-dir", dist, source, cwd=source)
    (built,) = dist.glob("*.whl")
    return built


def test_the_wheel_is_the_distribution_with_every_module(wheel: Path) -> None:
    assert wheel.name.startswith(f"localci_gitlab-{localci.__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "localci").rglob("*.py")}
    assert sources <= names
    metadata = next(name for name in names if name.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: localci-gitlab" in text
    assert f"Version: {localci.__version__}" in text
    assert "Requires-Dist: google-re2" in text
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "localci = localci.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_wheel_runs_a_pipeline_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", fresh, cwd=tmp_path)
    python = fresh / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        wheel,
        cwd=tmp_path,
    )
    # The dependencies come from this test run's environment (no network); localci itself
    # only from the wheel: a path line does not run the editable install's own .pth files.
    site = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
    )
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site.strip(), "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = f"{fresh / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    where = _run(python, "-c", "import localci; print(localci.__file__)", cwd=tmp_path, env=env)
    assert where.strip().startswith(str(fresh))

    localci_exe = fresh / "bin" / "localci"
    assert localci.__version__ in _run(localci_exe, "--version", cwd=tmp_path, env=env)
    demo = make_repo(tmp_path / "demo", {".gitlab-ci.yml": PIPELINE})
    _run(localci_exe, "lint", cwd=demo, env=env)
    listing = _run(localci_exe, "list", cwd=demo, env=env)
    assert "build" in listing
    assert "test" in listing
    output = _run(localci_exe, "run", "--no-tty", cwd=demo, env=env)
    assert "passed" in output


def test_the_version_is_written_once_and_in_the_changelog() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "localci.__version__" }' in pyproject
    assert f"## [{localci.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_the_readmes_pre_commit_hook_installs_this_release() -> None:
    import yaml

    readme = (ROOT / "README.md").read_text()
    block = readme.split("# .pre-commit-config.yaml\n", 1)[1].split("```", 1)[0]
    (hook,) = yaml.safe_load(block)["repos"][0]["hooks"]
    assert hook["additional_dependencies"] == [f"localci-gitlab=={localci.__version__}"]
    assert hook["language"] == "python"
    assert hook["stages"] == ["pre-push"]
    shipped = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    assert (hook["id"], hook["entry"]) == (shipped["id"], shipped["entry"])
    assert "pip install localci\n" not in readme
    assert "pip install localci " not in readme
