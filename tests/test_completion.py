"""Shell completion through the real `localci` script (bash, zsh, fish), and the examples that
end every command's --help."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from localci.cli.help_examples import EXAMPLES
from localci.cli.root import cli
from tests.helpers import git, make_repo, run_cli, run_localci

PIPELINE = """\
stages: [build, test, deploy]
compile:
  stage: build
  script: [echo compile]
unit tests:
  stage: test
  script: [echo unit]
lint:
  stage: test
  script: [echo lint]
deploy:
  stage: deploy
  script: [echo deploy]
  rules:
    - if: $CI_COMMIT_BRANCH == "main"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo", {".gitlab-ci.yml": PIPELINE}, branch="feature")
    git(root, "branch", "release-1")
    return root


def complete(directory: Path, words: str, shell: str = "bash") -> list[str]:
    """What the shell would offer after `words` (the last word being completed)."""
    index = len(words.split()) - (0 if words.endswith(" ") else 1)
    incomplete = "" if words.endswith(" ") else words.rsplit(maxsplit=1)[-1]
    env = {
        "_LOCALCI_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        # bash and zsh pass the index of the word; fish passes the word itself
        "COMP_CWORD": incomplete if shell == "fish" else str(index),
    }
    result = run_localci(directory, env=env, timeout=60)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    if shell == "zsh":  # type, value, help: three lines each
        return result.stdout.splitlines()[1::3]
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]  # "type,value"


def test_run_completes_this_branchs_job_names(repo: Path) -> None:
    assert complete(repo, "localci run ") == ["compile", "unit tests", "lint"]
    assert complete(repo, "localci run l") == ["lint"]
    assert complete(repo, "localci run lint ") == ["compile", "unit tests"]  # not twice
    # --branch decides the pipeline, as for `localci list`
    assert complete(repo, "localci run --branch main ") == [
        "compile",
        "unit tests",
        "lint",
        "deploy",
    ]


def test_explain_completes_also_jobs_left_out(repo: Path) -> None:
    assert complete(repo, "localci explain d") == ["deploy"]
    assert complete(repo, "localci logs ") == ["compile", "unit tests", "lint"]
    assert complete(repo, "localci artifacts c") == ["compile"]


def test_stage_and_branch_completion(repo: Path) -> None:
    assert complete(repo, "localci run --stage ") == ["build", "test"]
    assert complete(repo, "localci hook install --stage t") == ["test"]
    assert complete(repo, "localci list --branch ") == ["feature", "release-1"]
    assert complete(repo, "localci run --branch rel") == ["release-1"]


def test_zsh_and_fish_complete_the_same_names(repo: Path) -> None:
    assert complete(repo, "localci run ", "zsh") == ["compile", "unit tests", "lint"]
    assert complete(repo, "localci run ", "fish") == ["compile", "unit tests", "lint"]


def test_directory_option_and_broken_pipelines_complete_quietly(repo: Path, tmp_path: Path) -> None:
    assert complete(tmp_path, f"localci -C {repo} run u") == ["unit tests"]
    (repo / ".gitlab-ci.yml").write_text("job: [unclosed\n")
    assert complete(repo, "localci run ") == []  # no error text in the prompt
    assert complete(tmp_path, "localci run ") == []  # not a repository
    assert complete(tmp_path, "localci list --branch ") == []


def test_completion_costs_no_more_than_list(repo: Path) -> None:
    def cpu_seconds(*args: str, env: dict[str, str] | None = None) -> float:
        before = _children_cpu()
        run_localci(repo, *args, env=env)
        return _children_cpu() - before

    listing = cpu_seconds("list")
    completing = cpu_seconds(
        env={"_LOCALCI_COMPLETE": "bash_complete", "COMP_WORDS": "localci run ", "COMP_CWORD": "2"}
    )
    assert completing < listing * 1.5 + 0.1


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_bash_line_in_the_readme_installs_completion(repo: Path) -> None:
    script = 'eval "$(_LOCALCI_COMPLETE=bash_source localci)" && complete -p localci'
    exe_dir = Path(sys.executable).parent
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{exe_dir}:/usr/bin:/bin", "HOME": str(repo)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "localci" in proc.stdout


# ---- help ---------------------------------------------------------------------------------------


def _commands(command: click.Command, path: str = "") -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None
            found += _commands(sub, f"{path} {name}".strip())
    return found


@pytest.mark.parametrize(
    ("path", "command"), _commands(cli), ids=lambda value: str(value) or "localci"
)
def test_every_help_ends_with_real_examples(path: str, command: click.Command, repo: Path) -> None:
    assert path in EXAMPLES, f"add examples for `localci {path}` to localci/cli/help_examples.py"
    assert 2 <= len(EXAMPLES[path]) <= 3
    result = run_cli(repo, *path.split(), "--help")
    assert result.exit_code == 0
    tail = result.stdout.rstrip().splitlines()[-len(EXAMPLES[path]) :]
    for line, (example, _) in zip(tail, EXAMPLES[path], strict=True):
        assert line.strip().startswith(example)
    for example, _ in EXAMPLES[path]:
        words = example.split("|")[0].split(">")[0].split()
        assert words[0] == "localci"
        # Every example parses: its command exists and takes these options.
        args = " ".join(words[1:]).replace("-C ../other ", "").split()
        parsed = run_cli(repo, *args, "--help")
        assert parsed.exit_code == 0, (example, parsed.output)
