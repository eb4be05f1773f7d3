"""The short cuts taken for speed give what the general code gives: YAML scalars and aliases
(yaml_source), the indented JSON of `list --json` (report.json_text), the external include
reader set up on first use (app), garbage collection paused only while a command loads."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from localci.config.yaml_source import LocDict, LocList, load_documents
from localci.report.json_text import json_text
from tests.helpers import make_repo, run_cli
from tests.test_external_includes import Server, server  # noqa: F401

SCALARS = """\
plain: [abc, 12, -3, 0x1f, 0o17, 017, 1_000, 1.5, 1e3, .inf, -.Inf, yes, No, on, OFF, true,
        False, null, ~, "", 2024-01-02x, 1:20, "12", '1.5', "true", 'null', ! 12, !!str 12,
        !!int "12", !!float 1, !!bool "yes", !!null ""]
block: |
  12
folded: >
  true
quoted_keys: {"12": a, 'true': b}
"""


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def test_scalars_resolve_as_in_pyyaml_also_when_seen_again() -> None:
    expected = yaml.safe_load(SCALARS)
    for _ in range(2):  # the second time answers come from the cache of resolved tags
        (doc,), _warnings = load_documents(SCALARS, "x.yml")
        assert plain(doc) == expected
        assert [type(v) for v in doc["plain"]] == [type(v) for v in expected["plain"]]


def test_the_value_tag_stays_text() -> None:
    (doc,), _ = load_documents("a: [=, '=']\n", "x.yml")
    assert doc["a"] == ["=", "="]


def test_aliases_are_one_object_and_keep_locations() -> None:
    text = "a: &x {k: [1, two]}\nb: *x\nc: [*x, *x]\n"
    (doc,), _ = load_documents(text, "x.yml")
    assert doc["a"] is doc["b"] is doc["c"][0] is doc["c"][1]
    assert isinstance(doc["a"], LocDict) and isinstance(doc["a"]["k"], LocList)
    item = doc["a"]["k"].item_locs[1]
    assert str(doc.where("b")) == "x.yml:2" and item is not None and item.column == 15


def test_explicit_tags_on_collections_take_the_general_path() -> None:
    (doc,), _ = load_documents("a: !!map {k: v}\nb: !!seq [1]\nc: !!set {x}\n", "x.yml")
    assert doc["a"] == {"k": "v"} and isinstance(doc["a"], LocDict)
    assert doc["b"] == [1] and isinstance(doc["b"], LocList)
    assert doc["c"] == {"x"}


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        [{}],
        [[], [[]]],
        "text",
        'é \u2028 " \\ \n',
        None,
        True,
        0,
        [1, 2.5, -0.0, 10**30, float("inf"), float("nan"), True, False, None],
        {"a": {"b": [{"c": "d", "e": None, "f": False}]}, "g": ("t", ("u",))},
        {1: "a", "b": [1]},
        {"k": {2: [1, {"z": 2}]}, "s": "x"},
        {"exit_codes": [1, 2]},
    ],
)
def test_json_text_is_json_dumps_with_indent_2(value: Any) -> None:
    assert json_text(value) == json.dumps(value, indent=2)


def test_an_external_include_is_read_without_any_include_option(
    server: Server,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.serve(
        "/raw/master/lib/gitlab/ci/templates/Lint.gitlab-ci.yml", "lint: {script: [ruff]}\n"
    )
    monkeypatch.setenv("LOCALCI_TEMPLATES_URL", f"{server.base}/raw")
    text = "include: {template: Lint.gitlab-ci.yml}\ntest: {script: [pytest]}\n"
    repo = make_repo(tmp_path / "app", {".gitlab-ci.yml": text})
    result = run_cli(repo, "list", "--json")
    assert result.exit_code == 0, result.output
    assert [job["name"] for job in json.loads(result.stdout)] == ["lint", "test"]
    assert "fetching template Lint.gitlab-ci.yml" in result.stderr


def test_commands_leave_garbage_collection_as_they_found_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {".gitlab-ci.yml": "test: {script: [pytest]}\n"})
    assert gc.isenabled()
    assert run_cli(repo, "list", "--json").exit_code == 0
    assert gc.isenabled()
    (repo / ".gitlab-ci.yml").write_text("test: {script: [pytest], stage: nope}\n")
    assert run_cli(repo, "list", "--json").exit_code == 3  # failed while loading
    assert gc.isenabled()
    gc.disable()
    try:
        assert run_cli(repo, "list").exit_code == 3
        assert not gc.isenabled()
    finally:
        gc.enable()


LIST_CASES = {
    "mixed": """\
        stages: [build, test, deploy]
        compile:
          stage: build
          script: [make]
        lint:
          stage: build
          script: [lint]
          allow_failure: {exit_codes: [2, 3]}
        unit:
          stage: test
          needs: [compile, {job: lint, optional: true}]
          script: [test]
          services: [postgres:16]
        "matrix: [3.11]":
          stage: test
          needs: []
          allow_failure: true
          script: [test]
        skipped:
          stage: deploy
          rules: [{if: '$CI_COMMIT_BRANCH == "prod"'}]
          script: [deploy]
        child:
          stage: deploy
          trigger: {include: child.yml}
        """,
    "no pipeline": """\
        workflow:
          rules: [{if: '$CI_COMMIT_TAG'}]
        job:
          script: [x]
        """,
    "child without its file": """\
        job:
          script: [x]
        child:
          trigger: {include: missing.yml}
        """,
    "wide characters": """\
        tést-✓:
          script: [x]
        """,
}


@pytest.mark.parametrize("case", sorted(LIST_CASES))
@pytest.mark.parametrize("show_all", [False, True])
def test_piped_list_is_the_table_rich_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, show_all: bool
) -> None:
    from localci.report import listing

    files = {".gitlab-ci.yml": LIST_CASES[case], "child.yml": "c:\n  script: [x]\n"}
    repo = make_repo(tmp_path / "repo", files)
    args = ["list", "--all"] if show_all else ["list"]
    plain = run_cli(repo, *args)
    monkeypatch.setattr(listing, "_plain_output", lambda: False)
    drawn = run_cli(repo, *args)
    assert (plain.exit_code, plain.stdout) == (drawn.exit_code, drawn.stdout)
    assert "Pipeline for branch main" in plain.stdout


def test_plain_table_is_written_without_rich(tmp_path: Path) -> None:
    files = {".gitlab-ci.yml": LIST_CASES["child without its file"]}
    repo = make_repo(tmp_path / "repo", files)
    code = (
        "import sys\n"
        "sys.argv = ['localci', '-C', sys.argv[1], 'list']\n"
        "from localci.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('rich' in sys.modules, 'jinja2' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(repo)], capture_output=True, text=True, check=True
    )
    assert "│ child " in out.stdout
    assert "hint: " in out.stdout  # the reason's second line
    assert out.stderr.strip() == "False False"


def test_version_is_answered_before_the_cli_is_imported() -> None:
    from click.testing import CliRunner

    from localci.cli.root import cli

    expected = CliRunner().invoke(cli, ["--version"]).output
    code = (
        "import sys\n"
        "sys.argv = ['localci', '--version']\n"
        "from localci.cli import main\n"
        "main()\n"
        "print(sorted(m for m in ('click', 'localci.cli.root', 'yaml') if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == expected
    assert out.stderr.strip() == "[]"


# What `localci list` must never import: rendering it does not use (rich: the output is piped),
# the other commands, running, fetching includes, the schema, JSON (no --json).
NOT_FOR_LIST = (
    "rich",
    "jinja2",
    "check_jsonschema",
    "json",
    "urllib.request",
    "http",
    "localci.execute",
    "localci.report.html",
    "localci.report.live",
    "localci.report.plain",
    "localci.report.json_text",
    "localci.cli.run",
    "localci.cli.lint",
    "localci.cli.outputs",
    "localci.cli.prepare",
    "localci.config.schema",
    "localci.config.external",
    "localci.plan.child",  # only for trigger jobs
    "localci.plan.services",  # only for jobs with services
    "localci.hooks",
    "localci.run_records",
)


def imported_by(repo: Path, *args: str) -> set[str]:
    code = (
        "import sys\n"
        "sys.argv = ['localci', '-C', sys.argv[1], *sys.argv[2:]]\n"
        "from localci.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(*sorted(sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(repo), *args], capture_output=True, text=True, check=True
    )
    assert "Pipeline for branch main" in out.stdout or out.stdout.startswith("[")
    return set(out.stderr.split())


def unneeded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names))


def test_list_imports_only_what_it_needs(tmp_path: Path) -> None:
    jobs = "".join(f"job{i}:\n  stage: test\n  script: [echo {i}]\n" for i in range(10))
    rules = "ruled:\n  script: [x]\n  rules:\n    - if: $CI_COMMIT_BRANCH =~ /^ma/\n"
    repo = make_repo(tmp_path / "repo", {".gitlab-ci.yml": jobs + rules})
    assert unneeded(imported_by(repo, "list"), NOT_FOR_LIST) == []
    assert unneeded(imported_by(repo, "list", "--all"), NOT_FOR_LIST) == []
    with_json = imported_by(repo, "list", "--json")
    assert "localci.report.json_text" in with_json
    allowed = ("json", "localci.report.json_text")
    assert unneeded(with_json, tuple(n for n in NOT_FOR_LIST if n not in allowed)) == []


# What `list` of a pipeline without `include:`, variables file or `--var` does not import either.
NOT_FOR_A_PLAIN_LIST = (
    "localci.config.include_external",
    "localci.config.include_rules",
    "localci.config.inputs",
    "localci.plan.variable_files",
    "localci.globs",  # only for changes/exists
)


def test_includes_and_variable_files_are_imported_when_used(tmp_path: Path) -> None:
    jobs = "".join(f"job{i}:\n  stage: test\n  script: [echo {i}]\n" for i in range(10))
    plain = make_repo(tmp_path / "plain", {".gitlab-ci.yml": jobs})
    assert unneeded(imported_by(plain, "list"), NOT_FOR_A_PLAIN_LIST) == []
    with_all = make_repo(
        tmp_path / "with",
        {
            ".gitlab-ci.yml": "include:\n  - local: more.yml\n    rules: [{exists: [more.yml]}]\n"
            + jobs,
            "more.yml": "extra:\n  script: [x]\n",
            ".localci/variables.yml": "A: b\n",
        },
    )
    modules = imported_by(with_all, "list", "--var", "B=c")
    expected = {n for n in NOT_FOR_A_PLAIN_LIST if n != "localci.config.inputs"}  # exists: globs
    assert expected <= modules


def test_the_expression_language_is_imported_for_if_only(tmp_path: Path) -> None:
    jobs = "".join(f"job{i}:\n  stage: test\n  script: [echo {i}]\n" for i in range(10))
    without = make_repo(tmp_path / "without", {".gitlab-ci.yml": jobs})
    assert "localci.expr" not in imported_by(without, "list")
    ruled = "ruled:\n  script: [x]\n  rules:\n    - if: $CI_COMMIT_BRANCH\n"
    with_if = make_repo(tmp_path / "with", {".gitlab-ci.yml": jobs + ruled})
    assert "localci.expr" in imported_by(with_if, "list")


def test_a_trigger_job_or_services_import_what_they_need(tmp_path: Path) -> None:
    files = {
        ".gitlab-ci.yml": "up:\n  trigger:\n    include: child.yml\n"
        "db:\n  services: [postgres:16]\n  script: [x]\n",
        "child.yml": "c:\n  script: [x]\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    modules = imported_by(repo, "list")
    assert {"localci.plan.child", "localci.plan.services"} <= modules
