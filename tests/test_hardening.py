"""Issue 20 hardening: each test is built from the issue's reproduction."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_repo, run_cli

MISTAGGED = [
    ("timeout: !!int soon", "'soon' cannot be read as !!int", 3),
    ("timeout: !!float x", "'x' cannot be read as !!float", 3),
    ("timeout: !!bool x", "'x' cannot be read as !!bool", 3),
    ("timeout: !!seq b", "'b' cannot be read as !!seq", 3),
    ("timeout: !!map x", "'x' cannot be read as !!map", 3),
    ("timeout: !!map [1]", "a list cannot be read as !!map", 3),
    ("timeout: !!seq {a: 1}", "a mapping cannot be read as !!seq", 3),
]


@pytest.mark.parametrize("command", ["lint", "list", "config"])
@pytest.mark.parametrize(("line", "message", "line_no"), MISTAGGED)
def test_mistagged_yaml_is_a_located_config_error(
    tmp_path: Path, command: str, line: str, message: str, line_no: int
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": f"job:\n  script: [echo hi]\n  {line}\n"})
    result = run_cli(repo, command)
    assert result.exit_code == 3, result.output
    assert f".gitlab-ci.yml:{line_no}" in result.output
    assert "invalid YAML" in result.output and message in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize("command", ["lint", "list", "config"])
def test_map_tag_over_a_list_document_is_a_located_config_error(
    tmp_path: Path, command: str
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "--- !!map\n- a\n- b\n"})
    result = run_cli(repo, command)
    assert result.exit_code == 3, result.output
    assert ".gitlab-ci.yml:1" in result.output
    assert "invalid YAML: a list cannot be read as !!map" in result.output
