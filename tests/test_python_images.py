"""`image: python:X.Y` jobs on this machine's real interpreters (pyenv 2.7, 3.6-3.13): each job
on its own version, seeded as the official image, old versions working, substitutions marked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from localci.execute.interpreters import current_interpreter, discover_here
from tests.helpers import make_repo, run_cli

pytestmark = pytest.mark.slow

MATRIX = ["3.6", "3.8", "3.9", "3.10", "3.12", "3.13"]
INSTALLED = {i.minor for i in discover_here()}

MATRIX_PIPELINE = """\
test:
  image: python:$PY
  parallel:
    matrix:
      - PY: [{versions}]
  script:
    - python --version 2>&1 | grep -F "Python $PY."
    - python3 -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$PY'"
    - python$PY -c pass && python${{PY%%.*}} -c pass
    - pip --version | grep -F "(python $PY)"
    - pip$PY --version && pip3 --version
    - |
      if python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
        if python -c 'import setuptools' 2>/dev/null; then exit 9; fi
      else
        python -c 'import setuptools, wheel'
        printf 'from setuptools import setup\\nsetup(name="demo", version="1")\\n' > setup.py
        python setup.py -q bdist_wheel && ls dist/demo-1-*.whl
      fi
"""


def test_a_matrix_runs_each_job_on_its_own_python_seeded_as_the_image(tmp_path: Path) -> None:
    missing = [version for version in MATRIX if version not in INSTALLED]
    if missing:
        pytest.skip(f"Python {', '.join(missing)} not installed here")
    versions = ", ".join(f'"{version}"' for version in MATRIX)
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": MATRIX_PIPELINE.format(versions=versions)})
    report = tmp_path / "report.json"
    result = run_cli(repo, "run", "--no-tty", "-j", "2", "--json-report", str(report))
    assert result.exit_code == 0, result.output
    jobs = json.loads(report.read_text())["jobs"]
    assert sorted(job["name"] for job in jobs) == sorted(f"test: [{v}]" for v in MATRIX)
    assert all("python_substitution" not in job for job in jobs)


def test_python_2_7_is_a_clear_job_failure_not_an_internal_error(tmp_path: Path) -> None:
    if "2.7" not in INSTALLED:
        pytest.skip("Python 2.7 not installed here")
    config = "old:\n  image: python:2.7\n  script: [python --version]\nnew:\n  script: [true]\n"
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 1, result.output
    assert "localci cannot make an environment for it" in result.output
    assert "new" in result.output and "Traceback" not in result.output


def test_a_missing_version_runs_on_localci_python_and_every_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no uv: no install hint
    config = "old:\n  image: python:3.4-slim\n  script: [python --version, exit 3]\n"
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    report = tmp_path / "report.json"
    result = run_cli(repo, "run", "--no-tty", "--json-report", str(report))
    here = current_interpreter().minor
    marker = f"ran on {here} instead of 3.4"
    assert result.exit_code == 1
    job = json.loads(report.read_text())["jobs"][0]
    assert job["python_substitution"] == marker
    first_line = Path(job["log"]).read_text().splitlines()[0]
    assert first_line == f"WARNING: {marker}"
    table = result.output[result.output.rindex("┏") :]  # the summary table
    assert marker.split(" instead", maxsplit=1)[0] in table
    assert f"failed ({marker}): " in result.output  # the failure tail's header


def test_host_python_tools_do_not_leak_into_a_python_image_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    for folder in (home / ".pyenv" / "shims", home / ".local" / "bin"):
        folder.mkdir(parents=True)
        tool = folder / "pytest"
        tool.write_text("#!/bin/sh\necho host pytest\n")
        tool.chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{home}/.pyenv/shims:{home}/.local/bin:/usr/bin:/bin")
    config = (
        "image-job:\n  image: python:3.11-slim\n"
        "  script: ['! command -v pytest', 'command -v git make']\n"
        "host-job:\n  script: ['pytest | grep -F \"host pytest\"']\n"
    )
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 0, result.output


def test_a_cleared_user_cache_does_not_break_the_kept_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 item 6: the kept venv's pip linked into the user cache, then `rm -rf` of it."""
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("LOCALCI_CACHE_DIR", str(cache))
    config = "job:\n  image: python:3.12\n  script: [pip --version, python -m pip --version]\n"
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    assert run_cli(repo, "run", "--no-tty").exit_code == 0
    shutil.rmtree(cache)
    for _ in range(2):  # the first run after the removal, and every later one
        result = run_cli(repo, "run", "--no-tty", "-v")
        assert result.exit_code == 0, result.output
        assert "No module named" not in result.output


def test_doctor_lists_interpreters_tags_and_dependencies(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "j:\n  script: [true]\n"})
    result = run_cli(repo, "doctor")
    assert result.exit_code == 0, result.output
    newest = max(i for i in discover_here() if i.version[:2] >= (3, 6))
    assert f"python:{newest.minor}" in result.output
    for line in ("git: git version", "uv: ", "container engine: ", "free disk in .localci/: "):
        assert line in result.output
    from localci.execute.container.engine import detect_engine

    engine = detect_engine(use_cache=False)
    expected = engine.describe() if engine else "none answers"
    assert f"container engine: {expected}" in result.output


def test_dry_run_names_each_job_interpreter(tmp_path: Path) -> None:
    config = "a:\n  image: python:3.4\n  script: [true]\nb:\n  script: [true]\n"
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    result = run_cli(repo, "run", "--dry-run")
    assert result.exit_code == 0, result.output
    own = current_interpreter()
    text = " ".join(result.output.split())
    assert (
        f"a: Python {own.full} (localci: {own.path}); would run on {own.minor} instead of 3.4"
        in text
    )
    assert f"b: Python {own.full}" in text


def test_install_python_runs_uv_before_the_pipeline_and_uses_what_it_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv is stood in for by a script that lays out an install the way uv does (no network)."""
    bin_dir, installs = tmp_path / "bin", tmp_path / "uv-pythons"
    bin_dir.mkdir()
    real = current_interpreter().path
    uv = bin_dir / "uv"
    uv.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/uv-calls\n'
        f"mkdir -p {installs}/cpython-3.99.1-linux-x86_64-gnu/bin\n"
        f"cd {installs}/cpython-3.99.1-linux-x86_64-gnu/bin\n"
        f"printf '#!/bin/sh\\nexec {real} \"$@\"\\n' > python3.99 && chmod +x python3.99\n"
    )
    uv.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(installs))
    discover_here.cache_clear()
    config = "j:\n  image: python:3.99\n  script: [python -c 'import sys; print(sys.prefix)']\n"
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": config})
    report = tmp_path / "report.json"
    try:
        hint = run_cli(repo, "run", "--dry-run")
        assert "`uv python install 3.99` installs it" in " ".join(hint.output.split())
        result = run_cli(repo, "run", "--no-tty", "--install-python", "--json-report", str(report))
    finally:
        discover_here.cache_clear()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "uv-calls").read_text() == "python install 3.99\n"
    assert "python_substitution" not in json.loads(report.read_text())["jobs"][0]


def test_the_board_shows_a_substituted_interpreter() -> None:
    from localci.report.live import JobView, detail
    from localci.results import JobResult, Status

    result = JobResult(
        "j", "test", Status.SUCCESS, attempts=1,
        python_substitution="ran on 3.11 instead of 3.9 (`uv python install 3.9` installs it)",
    )  # fmt: skip
    view = JobView("j", "test", "on_success", "", started=1.0, result=result)
    assert detail(view).plain == "ran on 3.11 instead of 3.9"


def test_offline_seeding_falls_back_to_the_interpreter_bundled_wheels_and_says_so(
    tmp_path: Path,
) -> None:
    from localci.execute.seeding import plan_seeds

    found = [i for i in discover_here() if i.minor == "3.9" and i.source == "pyenv"]
    if not found:
        pytest.skip("no pyenv Python 3.9 here")
    lines: list[str] = []
    plan = plan_seeds(found[0].path, "3.9", tmp_path, download=False, log=lines.append)
    names = {seed.name for seed in plan.seeds}
    assert names == {"pip", "setuptools"}
    assert any("instead of 79.0.1" in d for d in plan.deviations)
    assert any(d.startswith("wheel 0.45.1 is not available") for d in plan.deviations)
    assert lines == []  # nothing was downloaded
