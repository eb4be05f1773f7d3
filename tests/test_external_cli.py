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
