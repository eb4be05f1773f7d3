"""The layering contract (pyproject.toml's [tool.importlinter]) holds, and it does catch an
import that points up; localci's own git commands share one environment policy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localci.git import REDIRECTING_VARIABLES, git_environment

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(project / "pyproject.toml")],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project), "HOME": str(project)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def copy_of_project(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "localci", tmp_path / "localci", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_layers_contract_is_kept(copy_of_project: Path) -> None:
    result = lint_imports(copy_of_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward_import"),
    [
        ("config/model.py", "from localci.execute import cache"),
        ("events.py", "from localci.execute import scheduler"),
        ("files.py", "import localci.config"),
        ("plan/model.py", "import localci.report.summary"),
    ],
)
def test_an_upward_import_breaks_the_contract(
    copy_of_project: Path, module: str, upward_import: str
) -> None:
    path = copy_of_project / "localci" / module
    path.write_text(path.read_text() + f"\n{upward_import}  # noqa\n")
    result = lint_imports(copy_of_project)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert f"localci.{module.removesuffix('.py').replace('/', '.')}" in result.stdout


def test_git_environment_drops_what_redirects_git_and_keeps_the_users_settings() -> None:
    base = {
        "GIT_DIR": "/elsewhere/.git",
        "GIT_INDEX_FILE": "/elsewhere/index",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.bare",
        "GIT_CONFIG_VALUE_0": "true",
        "GIT_SSH_COMMAND": "ssh -i key",
        "GIT_ASKPASS": "/bin/askpass",
        "GIT_CONFIG_GLOBAL": "/home/me/.gitconfig",
        "PATH": "/usr/bin",
    }
    env = git_environment({"GIT_DIR": "/chosen/.git"}, base=base)
    assert env["GIT_DIR"] == "/chosen/.git"  # set on purpose by the caller
    assert not {"GIT_INDEX_FILE", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0"} & env.keys()
    for kept in ("GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_CONFIG_GLOBAL", "PATH"):
        assert env[kept] == base[kept]
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["LC_ALL"] == "C"


def test_the_policy_covers_every_variable_git_itself_calls_repository_local() -> None:
    local = subprocess.run(
        ["git", "rev-parse", "--local-env-vars"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(local) <= REDIRECTING_VARIABLES


def test_no_module_runs_git_on_its_own() -> None:
    runners = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "localci").rglob("*.py")
        if '["git"' in path.read_text() or "['git'" in path.read_text()
    ]
    assert runners == ["localci/git.py"]


def test_every_module_has_a_layer() -> None:
    """A new top-level module must be placed in the contract, or its imports go unchecked."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    modules = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "localci").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert modules <= named, f"place these in pyproject.toml's layers: {sorted(modules - named)}"
