"""CLI integration of external includes: notices, --offline, --include-map, config --origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_repo, run_cli
from tests.test_external_includes import Server, server  # noqa: F401


def test_cli_fetches_once_then_works_offline(
    server: Server,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.serve(
        "/raw/master/lib/gitlab/ci/templates/Lint.gitlab-ci.yml", "lint: {script: [ruff]}\n"
    )
    monkeypatch.setenv("LOCALCI_TEMPLATES_URL", f"{server.base}/raw")
    make_repo(tmp_path / "ci", {"build.yml": "build: {script: [make]}\n"}, remote=None)
    repo = make_repo(
        tmp_path / "app",
        {
            ".gitlab-ci.yml": """
                include:
                  - template: Lint.gitlab-ci.yml
                  - project: team/ci
                    ref: main
                    file: build.yml
                test: {script: [pytest]}
            """
        },
    )
    first = run_cli(repo, "config", "--origins", "--include-map", f"team/ci={tmp_path / 'ci'}")
    assert first.exit_code == 0, first.output
    assert "localci: fetching template Lint.gitlab-ci.yml from http://127.0.0.1" in first.stderr
    assert "localci: reading project team/ci (ref main) from" in first.stderr
    assert "lint   template:Lint.gitlab-ci.yml:1  <- .gitlab-ci.yml:3" in first.stdout
    assert "build  team/ci@main:build.yml:1  <- .gitlab-ci.yml:4" in first.stdout
    server.routes.clear()
    offline = run_cli(repo, "list", "--offline", "--include-map", f"team/ci={tmp_path / 'ci'}")
    assert offline.exit_code == 0, offline.output
    assert "fetching" not in offline.stderr and "lint" in offline.stdout
    lint = run_cli(repo, "lint", "--offline", "--include-map", f"team/ci={tmp_path / 'ci'}")
    assert lint.exit_code == 0 and "2 included files" in lint.stdout, lint.output
    missing = run_cli(repo, "list", "--offline")
    assert missing.exit_code == 3
    assert "project team/ci (ref main) is not in the include cache" in missing.stderr
    both = run_cli(repo, "list", "--offline", "--refresh-includes")
    assert both.exit_code == 2


@pytest.mark.parametrize(
    ("origin", "named"),
    [
        ("/srv/git/app.git", "'/srv/git/app.git', a local path that names no server"),
        ("file:///srv/git/app.git", "a local path that names no server"),
        ("https:///app.git", "'https:///app.git', a URL form localci cannot read a host from"),
        (None, "there is no `origin` remote"),
    ],
)
def test_project_include_names_what_origin_is(
    tmp_path: Path, origin: str | None, named: str
) -> None:
    # Issue 14 item 6: say what `origin` is and what would work, not "no origin remote".
    repo = make_repo(
        tmp_path / "app",
        {".gitlab-ci.yml": "include: {project: team/ci, file: a.yml}\njob: {script: [x]}\n"},
        remote=origin,
    )
    result = run_cli(repo, "lint")
    assert result.exit_code == 3
    assert named in result.stderr
    assert "expected a URL like https://HOST/GROUP/PROJECT.git or git@HOST:GROUP/PROJECT.git" in (
        result.stderr
    )


def test_one_unreadable_project_is_reported_once(tmp_path: Path) -> None:
    # Issue 14 item 7: nine includes of one unreachable project give one error naming the lines.
    entries = "".join(f"  - {{project: team/ci, file: f{i}.yml}}\n" for i in range(9))
    repo = make_repo(
        tmp_path / "app",
        {".gitlab-ci.yml": "include:\n" + entries + "job: {script: [x]}\n"},
        remote="/srv/git/app.git",
    )
    result = run_cli(repo, "lint")
    assert result.exit_code == 3
    assert result.stderr.count("cannot tell which GitLab server") == 1, result.stderr
    assert "(also at lines 3, 4, 5, 6, 7, 8, 9, 10)" in result.stderr


def test_readme_includes_yml_example_is_accepted(tmp_path: Path) -> None:
    # The documented `.localci/includes.yml` must be one localci reads.
    from localci.config.external import read_config

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("# .localci/includes.yml\n", 1)[1].split("```", 1)[0]
    (tmp_path / ".localci").mkdir()
    (tmp_path / ".localci" / "includes.yml").write_text(example, encoding="utf-8")
    config = read_config(tmp_path)
    assert config["server"] == "gitlab.example.com"
    assert config["map"]["team/ci-templates"] == tmp_path / "../ci-templates"
    assert "{project}" in config["git_urls"]["gitlab.example.com"]
