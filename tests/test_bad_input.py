"""Hostile and broken input through the real CLI: every case ends in a clear error (exit 3, or 2
for usage) naming the file and line, within bounded time and memory; never a crash (exit 4)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localci.config import load_pipeline_from_text
from localci.errors import ConfigError
from tests.helpers import Result, deadline, make_repo, run_cli

OK_JOB = "job:\n  script: echo hi\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "project", {".gitlab-ci.yml": OK_JOB})


def write(repo: Path, name: str, content: str | bytes) -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def config_error(result: Result, *needles: str) -> str:
    """Assert exit 3 with each needle in the message; returns stderr."""
    assert result.exit_code == 3, result.output
    assert "internal error" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def lint(repo: Path, config: str | bytes, *args: str) -> Result:
    write(repo, ".gitlab-ci.yml", config)
    return run_cli(repo, "lint", *args)


def bounded_cli(
    repo: Path, *args: str, memory: int = 1536 << 20
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess limited to `memory` bytes of address space and 120 s."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    exe = Path(sys.executable).with_name("localci")
    return subprocess.run(
        [str(exe), "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        check=False,
    )


# ---- alias bombs, size, depth --------------------------------------------------------------------


def alias_bomb(use: str) -> str:
    """9 levels of 9-element lists of aliases: 9**9 (387 million) strings once expanded."""
    lines = ['.l0: &l0 ["lol"]']
    for level in range(1, 10):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f".l{level}: &l{level} [{aliases}]")
    return "\n".join([*lines, use]) + "\n"


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("use", "command"),
    [
        ("job: {script: echo}", "lint"),
        ("job: {script: *l9}", "config"),
        ("job: {script: [echo, *l9]}", "list"),
        ("variables: {BOMB: *l9}\njob: {script: echo}", "lint"),
        ("job: {script: echo, extends: .l9}", "lint"),
        ("job:\n  script: echo\n  rules: *l9", "list"),
    ],
)
def test_alias_bomb_is_refused_in_bounded_memory(repo: Path, use: str, command: str) -> None:
    write(repo, ".gitlab-ci.yml", alias_bomb(use))
    proc = bounded_cli(repo, command)
    assert proc.returncode == 3, proc.stderr
    assert ".gitlab-ci.yml:" in proc.stderr
    assert "aliases are expanded" in proc.stderr


@pytest.mark.timeout(150)
def test_reference_bomb_is_refused_in_bounded_memory(repo: Path) -> None:
    lines = [".r0: {script: [echo lol]}"]
    for level in range(1, 10):
        refs = ", ".join([f"!reference [.r{level - 1}, script]"] * 9)
        lines.append(f".r{level}: {{script: [{refs}]}}")
    write(repo, ".gitlab-ci.yml", "\n".join([*lines, "job: {script: !reference [.r9, script]}"]))
    proc = bounded_cli(repo, "lint")
    assert proc.returncode == 3, proc.stderr
    assert "once every !reference is expanded" in proc.stderr
    assert ".gitlab-ci.yml:" in proc.stderr


def test_alias_bomb_in_an_included_file_names_that_file(repo: Path) -> None:
    write(repo, "ci/bomb.yml", alias_bomb("hidden: {script: echo}"))
    result = lint(repo, "include: ci/bomb.yml\n" + OK_JOB)
    config_error(result, "ci/bomb.yml:", "aliases are expanded")


def test_a_file_over_4_mib_is_refused_before_parsing(repo: Path) -> None:
    big = OK_JOB + "".join(f"# {'x' * 96}\n" for _ in range(45_000))
    assert len(big) > 4 * 1024 * 1024
    started = time.monotonic()
    result = lint(repo, big)
    config_error(result, ".gitlab-ci.yml:1", "larger than 4 MiB")
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("[" * 10_000, "nesting depth"),
        ("job:\n  script: " + "[" * 10_000, "nesting depth"),
        ("{a: " * 10_000, "nesting depth"),
        (
            "job:\n  script: echo\n  variables:\n"
            + "".join("  " * i + "   a:\n" for i in range(1, 300)),
            "nested more than 100",
        ),
        ("".join("  " * i + "- \n" for i in range(500)), "nested more than 100"),
        ("job: {script: echo, variables: &v {A: *v}}", "nested more than 100"),
        ("job:\n  script: &s [echo, *s]", "nested more than 100"),
    ],
    ids=[
        "flow-list",
        "flow-in-job",
        "flow-map",
        "block-map",
        "block-list",
        "self-anchor-map",
        "self-anchor-list",
    ],
)
def test_deep_nesting_is_refused_with_a_line(repo: Path, config: str, needle: str) -> None:
    config_error(lint(repo, config), ".gitlab-ci.yml:", needle)


def test_nesting_of_100_levels_is_accepted_and_101_refused() -> None:
    # the top-level mapping is the first level; hidden keys may hold any YAML
    pipeline = load_pipeline_from_text(".deep: " + "[" * 99 + "a" + "]" * 99 + "\n" + OK_JOB)
    assert [job.name for job in pipeline.jobs] == ["job"]
    with pytest.raises(ConfigError, match="nested more than 100"):
        load_pipeline_from_text(".deep: " + "[" * 100 + "a" + "]" * 100 + "\n" + OK_JOB)


def test_deep_nesting_through_references_is_refused(repo: Path) -> None:
    deep = "[" * 60 + "x" + "]" * 60
    config = (
        f".d: {deep}\n.e: {{a: {'[' * 50}!reference [.d]{']' * 50}}}\n"
        "job: {script: x, variables: !reference [.e]}\n"
    )
    config_error(lint(repo, config), ".gitlab-ci.yml:2", "once !reference is expanded")


@pytest.mark.timeout(120)
def test_ten_thousand_jobs_load_and_list(repo: Path) -> None:
    jobs = "".join(f"job-{i}:\n  script: echo {i}\n" for i in range(10_000))
    result = lint(repo, jobs)
    assert result.exit_code == 0, result.output
    assert "10000 jobs" in result.stdout
    listed = run_cli(repo, "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.count('"job-') >= 10_000


# ---- encoding and file shape ---------------------------------------------------------------------


def test_non_utf8_bytes_name_the_file(repo: Path) -> None:
    config_error(lint(repo, b"job:\n  script: echo \xff\xfe\n"), ".gitlab-ci.yml", "UTF-8")


def test_non_utf8_include_names_the_included_file(repo: Path) -> None:
    write(repo, "ci/bad.yml", b"other:\n  script: \xc3\x28\n")
    config_error(lint(repo, "include: ci/bad.yml\n" + OK_JOB), "ci/bad.yml", "UTF-8")


def test_a_byte_order_mark_is_accepted(repo: Path) -> None:
    write(repo, "ci/bom.yml", "\ufeffother:\n  script: echo other\n")
    result = lint(repo, ("\ufeffinclude: ci/bom.yml\n" + OK_JOB).encode("utf-8"))
    assert result.exit_code == 0, result.output
    assert "2 jobs" in result.stdout


def test_a_nul_byte_is_a_located_yaml_error(repo: Path) -> None:
    config_error(lint(repo, "job:\n  script: echo \x00\n"), ".gitlab-ci.yml:2")


def test_the_configuration_is_a_directory(repo: Path) -> None:
    (repo / ".gitlab-ci.yml").unlink()
    (repo / ".gitlab-ci.yml").mkdir()
    config_error(run_cli(repo, "lint"), ".gitlab-ci.yml is a directory")


def test_the_configuration_is_missing(repo: Path) -> None:
    (repo / ".gitlab-ci.yml").unlink()
    config_error(run_cli(repo, "list"), "no .gitlab-ci.yml")


def test_a_missing_file_option_is_a_clear_error(repo: Path) -> None:
    config_error(run_cli(repo, "--file", "ci/nope.yml", "lint"), "ci/nope.yml")


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("", "at least one visible job"),
        ("# only\n# comments\n", "at least one visible job"),
        ("---\n", "at least one visible job"),
        ("- a\n- b\n", "must be a mapping"),
        ("just a string\n", "must be a mapping"),
        ("42\n", "must be a mapping"),
        ("a: 1\n---\nb: 2\n---\nc: 3\n", "at most two YAML documents"),
        (".hidden:\n  script: echo\n", "at least one visible job"),
    ],
    ids=["empty", "comments", "empty-doc", "list", "string", "number", "three-docs", "only-hidden"],
)
def test_shapes_that_are_not_a_pipeline(repo: Path, config: str, needle: str) -> None:
    config_error(lint(repo, config), ".gitlab-ci.yml:", needle)


@pytest.mark.parametrize(
    "config",
    [
        "job:\n  script: !!python/object/apply:os.system ['true']\n",
        "job: !!python/name:os.system\n",
        "job:\n  script: !!binary aGVsbG8=\n",
        "job:\n  script: !custom x\n",
        "job: {script: echo, <<: 5}\n",
        "? [a, b]\n: {script: echo}\n",
    ],
    ids=["python-apply", "python-name", "binary", "custom-tag", "merge-scalar", "list-key"],
)
def test_unsafe_or_odd_yaml_is_a_located_error(repo: Path, config: str) -> None:
    config_error(lint(repo, config), ".gitlab-ci.yml:")


# ---- includes ------------------------------------------------------------------------------------


def test_an_include_that_is_a_directory(repo: Path) -> None:
    (repo / "ci" / "jobs.yml").mkdir(parents=True)
    config_error(lint(repo, "include: ci/jobs.yml\n" + OK_JOB), ".gitlab-ci.yml:1", "ci/jobs.yml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_include(repo: Path) -> None:
    write(repo, "ci/secret.yml", "other:\n  script: echo\n")
    (repo / "ci" / "secret.yml").chmod(0)
    config_error(lint(repo, "include: ci/secret.yml\n" + OK_JOB), "ci/secret.yml")


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"a.yml": "include: b.yml\n", "b.yml": "include: a.yml\n"}, "include cycle"),
        ({"a.yml": "include: a.yml\n"}, "include cycle"),
    ],
    ids=["two-files", "self"],
)
def test_include_cycles(repo: Path, files: dict[str, str], needle: str) -> None:
    for name, text in files.items():
        write(repo, name, text)
    config_error(lint(repo, "include: a.yml\n" + OK_JOB), "a.yml", needle)


def test_the_same_include_151_times_hits_the_limit(repo: Path) -> None:
    write(repo, "ci/one.yml", "other:\n  script: echo\n")
    config = "include:\n" + "  - ci/one.yml\n" * 151 + OK_JOB
    config_error(lint(repo, config), ".gitlab-ci.yml:", "150")


def test_an_include_symlinked_out_of_the_project(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yml"
    outside.write_text("stolen:\n  script: echo stolen\n")
    (repo / "x.yml").symlink_to(outside)
    (repo / "etc").symlink_to("/etc")
    config_error(lint(repo, "include: x.yml\n" + OK_JOB), "x.yml", "outside the project")
    config_error(lint(repo, "include: etc/hostname.yml\n" + OK_JOB), "outside the project")
    config_error(lint(repo, "include: ../outside.yml\n" + OK_JOB), "leaves the repository")


def test_an_include_symlinked_out_of_the_project_names_the_line(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.yml").write_text("stolen:\n  script: echo\n")
    (repo / "x.yml").symlink_to(tmp_path / "outside.yml")
    config_error(lint(repo, OK_JOB + "include: x.yml\n"), ".gitlab-ci.yml:3")


def test_include_rules_exists_of_a_number(repo: Path) -> None:
    write(repo, "a.yml", "other:\n  script: echo\n")
    config = "include:\n  - local: a.yml\n    rules:\n      - exists: 5\n" + OK_JOB
    config_error(lint(repo, config), ".gitlab-ci.yml:")


# ---- extends, references, inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("a:\n  extends: b\n  script: x\nb:\n  extends: a\n", "circular dependency"),
        ("a:\n  extends: a\n  script: x\n", "circular dependency"),
        ("a:\n  extends: [5, {x: 1}]\n  script: x\n", "`extends` must be"),
        (
            "a:\n  script: !reference [b, script]\nb:\n  script: !reference [a, script]\n",
            "circular !reference",
        ),
        ("a:\n  script: !reference [a, script]\n", "circular !reference"),
        ("a:\n  script: !reference []\n", "!reference must be a list"),
        ("a:\n  script: !reference {x: 1}\n", "!reference must be a list"),
    ],
    ids=[
        "extends-cycle",
        "extends-self",
        "extends-type",
        "ref-cycle",
        "ref-self",
        "ref-empty",
        "ref-map",
    ],
)
def test_extends_and_reference_errors(repo: Path, config: str, needle: str) -> None:
    config_error(lint(repo, config), ".gitlab-ci.yml:", needle)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("a: {options: 5}", "`options` of input 'a' must be a list"),
        ("a: {regex: 5, default: x}", "`regex` of input 'a' must be a string"),
        ("a: {type: [string]}", "unknown type"),
        ("a: {regex: '(', default: x}", "regex"),
    ],
)
def test_bad_input_specs(repo: Path, spec: str, needle: str) -> None:
    write(repo, "ci/tpl.yml", f"spec:\n  inputs:\n    {spec}\n---\nother:\n  script: echo\n")
    config_error(lint(repo, "include: ci/tpl.yml\n" + OK_JOB), "ci/tpl.yml:", needle)


def test_many_unclosed_interpolations_take_linear_time(repo: Path) -> None:
    write(
        repo,
        "ci/tpl.yml",
        'spec:\n  inputs:\n    a: {default: x}\n---\nother:\n  script: "'
        + "$[[ " * 200_000
        + '"\n',
    )
    with deadline(30):
        result = lint(repo, "include: ci/tpl.yml\n" + OK_JOB)
    assert result.exit_code == 0, result.output


# ---- job names -----------------------------------------------------------------------------------


def test_job_names_with_newlines_unicode_and_colons(repo: Path) -> None:
    config = (
        '"a\\nb":\n  script: echo 1\n'
        '"deploy: [x, y]":\n  script: echo 2\n'
        '"ünï €  ✓":\n  script: echo 3\n'
        '"a/b":\n  script: echo 4\n'
        f'"{"n" * 255}":\n  script: echo 5\n'
        '"": \n  script: echo 6\n'
    )
    result = lint(repo, config)
    assert result.exit_code in (0, 3), result.output
    listed = run_cli(repo, "list", "--json")
    assert listed.exit_code == result.exit_code, listed.output
    explained = run_cli(repo, "explain", "a\nb")
    assert explained.exit_code == result.exit_code, explained.output


@pytest.mark.slow
def test_jobs_whose_names_differ_only_in_symbols_keep_their_own_logs(repo: Path) -> None:
    config = '"a b":\n  script: echo FIRST-LOG\n"a/b":\n  script: echo SECOND-LOG\n'
    write(repo, ".gitlab-ci.yml", config)
    assert run_cli(repo, "run", "--no-tty", "-q").exit_code == 0
    assert "FIRST-LOG" in run_cli(repo, "logs", "a b").stdout
    assert "SECOND-LOG" in run_cli(repo, "logs", "a/b").stdout


def test_an_unknown_job_for_explain_is_a_usage_error(repo: Path) -> None:
    result = run_cli(repo, "explain", "no\nsuch job")
    assert result.exit_code in (2, 3), result.output
    assert "internal error" not in result.output


# ---- variables files, expressions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("A: [1, 2]\n", "variables.yml:1"),
        ("- a\n", "variables.yml:1"),
        ("A: {value: x, bogus: 1}\n", "variables.yml:1"),
        ("A: !!python/object/apply:os.system [true]\n", "variables.yml"),
        ("A: 'unterminated\n", "variables.yml"),
    ],
)
def test_bad_variables_files_name_the_file(repo: Path, content: str, needle: str) -> None:
    write(repo, ".localci/variables.yml", content)
    config_error(run_cli(repo, "list"), needle)


def test_deeply_nested_variables_file(repo: Path) -> None:
    write(repo, ".localci/variables.yml", "A: " + "[" * 5000 + "\n")
    config_error(run_cli(repo, "list"), "variables.yml")


def test_rules_regex_match_takes_linear_time() -> None:
    from localci.expr import parse_expression

    expression = parse_expression("$CI_COMMIT_MESSAGE =~ /(a+)+b/")
    with deadline(3):
        assert not expression.evaluate({"CI_COMMIT_MESSAGE": "a" * 40})


def test_input_regex_check_takes_linear_time(repo: Path) -> None:
    (repo / "t.yml").write_text(
        "spec:\n  inputs:\n    v:\n      regex: '(a+)+b'\n"
        "---\njob:\n  script: echo $[[ inputs.v ]]\n"
    )
    config = "include:\n  - local: t.yml\n    inputs:\n      v: '" + "a" * 60 + "'\n"
    with deadline(5):
        result = lint(repo, config)
    config_error(result, "does not match the regex /(a+)+b/")


def test_rules_expression_errors_are_located(repo: Path) -> None:
    config = "job:\n  script: echo\n  rules:\n    - if: '$A == ('\n    - if: '/x/ =~'\n"
    config_error(lint(repo, config), ".gitlab-ci.yml:4")


def test_configuration_errors_never_hide_behind_an_internal_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline_from_text("job: {script: x, parallel: {matrix: [{A: [{b: 1}]}]}}\n" * 1)
    assert caught.value.problems
