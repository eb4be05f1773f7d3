"""The seed pipeline's pattern through the real CLI: `.venv` built in before_script and cached.

Three jobs (install/test/lint) each create or reuse `.venv` from the cache; the second run
downloads nothing and every job's `which python` is inside its own workspace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import make_repo, run_cli

pytestmark = pytest.mark.slow

PIPELINE = """
stages: [install, test, lint]
variables:
  VENV_PATH: .venv
default:
  before_script:
    - test -d $VENV_PATH || python -m venv $VENV_PATH
    - source $VENV_PATH/bin/activate
    - pip install --no-index --find-links wheels -q -r requirements.txt
    - echo "which-python $(which python)"
    - echo "project-dir $CI_PROJECT_DIR"
  cache:
    key: venv-$CI_COMMIT_REF_SLUG
    paths: [$VENV_PATH]
install:
  stage: install
  script:
    - python -c "import demo_dep; print('dep', demo_dep.VALUE)"
test:
  stage: test
  script: [demo-dep-cli]
lint:
  stage: lint
  script: [python -c "import demo_dep"]
"""


def _wheel(root: Path) -> None:
    """A tiny wheel with a module and a console script, built without any network."""
    import zipfile

    wheels = root / "wheels"
    wheels.mkdir()
    name = "demo_dep-1.0-py3-none-any.whl"
    dist = "demo_dep-1.0.dist-info"
    files = {
        "demo_dep/__init__.py": "VALUE = 42\ndef main():\n    print('cli-ok')\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: demo-dep\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\ndemo-dep-cli = demo_dep:main\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(wheels / name, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", record)


def _run(repo: Path) -> dict:
    out = repo.parent / "report.json"
    result = run_cli(repo, "run", "--no-tty", "-j", "1", "--json-report", str(out))
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def _logs(data: dict) -> dict[str, str]:
    return {j["name"]: Path(j["log"]).read_text() for j in data["jobs"]}


def test_venv_in_cache_is_reused_across_jobs_and_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": PIPELINE, "requirements.txt": "demo-dep\n"})
    _wheel(repo)  # untracked but not ignored: part of the snapshot
    first = _logs(_run(repo))
    assert "dep 42" in first["install"] and "cli-ok" in first["test"]
    assert "Successfully installed" not in first["test"]  # restored from install's cache
    second = _logs(_run(repo))
    for name, log in second.items():
        assert "Installing collected packages" not in log, name
        python = next(line for line in log.splitlines() if line.startswith("which-python"))
        project = next(line for line in log.splitlines() if line.startswith("project-dir"))
        assert python.split()[1].startswith(project.split()[1] + "/.venv/"), (name, log)


def test_cache_commands_list_and_clear(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": PIPELINE, "requirements.txt": "demo-dep\n"})
    _wheel(repo)
    _run(repo)
    listing = run_cli(repo, "cache", "list")
    assert "venv-main" in listing.stdout
    assert run_cli(repo, "cache", "clear", "nope").exit_code == 2
    assert "removed 1" in run_cli(repo, "cache", "clear").stdout
    assert "no caches" in run_cli(repo, "cache", "list").stdout


def test_cached_venv_works_from_another_slot(tmp_path: Path) -> None:
    """Two test jobs at once use two build slots; the venv saved in slot 0 works in slot 1."""
    text = PIPELINE + "test-two:\n  stage: test\n  script: [demo-dep-cli]\n"
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": text, "requirements.txt": "demo-dep\n"})
    _wheel(repo)
    out = repo.parent / "report.json"
    result = run_cli(repo, "run", "--no-tty", "-j", "2", "--json-report", str(out))
    assert result.exit_code == 0, result.output
    logs = _logs(json.loads(out.read_text()))
    dirs = set()
    for name in ("test", "test-two"):
        log = logs[name]
        assert "cli-ok" in log and "Installing collected packages" not in log, log
        project = next(line for line in log.splitlines() if line.startswith("project-dir"))
        python = next(line for line in log.splitlines() if line.startswith("which-python"))
        assert python.split()[1].startswith(project.split()[1] + "/.venv/")
        dirs.add(project)
    assert len(dirs) == 2  # really two different workspaces
