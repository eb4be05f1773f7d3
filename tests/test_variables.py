"""CI/CD variables: predefined values, GitLab and runner expansion, variables files, dotenv."""

from __future__ import annotations

import itertools
import re
import secrets
import stat
from pathlib import Path

import pytest

from localci.errors import ConfigError, UsageError
from localci.execute.environment import runner_environment
from localci.plan.context import MergeRequest, PipelineContext
from localci.plan.variable_files import load_variables_file, parse_assignment
from localci.plan.variables import (
    JOB_ONLY_VARIABLES,
    CircularVariableError,
    DotenvError,
    VarValue,
    environment_slug,
    environment_tier,
    expand_gitlab,
    expand_runner,
    include_rule_variables,
    job_variables,
    mask_text,
    parse_dotenv_report,
    pipeline_variables,
    runtime_variables,
    slugify,
)

SHA = "1234567890abcdef1234567890abcdef12345678"
BEFORE = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"


def context(**overrides: object) -> PipelineContext:
    values: dict[str, object] = {
        "project_dir": Path("/work/proj"),
        "ref": "feature/Login-Page",
        "sha": SHA,
        "before_sha": BEFORE,
        "commit_message": "Add login\n\nWith tests.\n",
        "commit_title": "Add login",
        "commit_description": "\nWith tests.",
        "commit_author": "Ada <ada@example.com>",
        "commit_timestamp": "2024-01-31T15:47:55Z",
        "default_branch": "main",
        "project_path": "group/sub/app",
        "server_host": "gitlab.example.com",
        "user_name": "Ada Lovelace",
        "user_email": "ada@example.com",
        "is_git_repo": True,
        "has_commits": True,
    }
    values.update(overrides)
    return PipelineContext(**values)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- slugs


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("main", "main"),
        ("feature/Login-Page", "feature-login-page"),
        ("UPPER_case", "upper-case"),
        ("v1.2.3", "v1-2-3"),
        ("a//b", "a--b"),
        ("--lead-and-trail--", "lead-and-trail"),
        ("/", ""),
        ("", ""),
        ("café", "caf"),
        ("naïve-ß", "na-ve"),
        ("日本", ""),
        ("a" * 70, "a" * 63),
        ("b" * 62 + "/c", "b" * 62),
        ("-" * 5 + "x" * 70, "x" * 58),
        ("deploy: [aws, app1]", "deploy---aws--app1"),
        ("test 2/3", "test-2-3"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_slugify_limit() -> None:
    assert slugify("abc-def", limit=4) == "abc"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("production", "production"),
        ("staging-2", "staging-2"),
        ("review/feature-1", r"review-feature-1-[0-9a-z]{6}"),
        ("Production", r"production-[0-9a-z]{6}"),
        ("1env", r"env-1env-[0-9a-z]{6}"),
        ("a-very-long-environment-name-indeed", r"a-very-long-envir-[0-9a-z]{6}"),
        ("ends-", "ends"),
    ],
)
def test_environment_slug(name: str, expected: str) -> None:
    slug = environment_slug(name)
    assert re.fullmatch(expected, slug), slug
    assert len(slug) <= 24
    assert environment_slug(name) == slug  # deterministic


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("production", "production"),
        ("prd", "production"),
        ("staging", "staging"),
        ("review/x", "development"),
        ("qa", "testing"),
        ("something", "other"),
    ],
)
def test_environment_tier(name: str, tier: str) -> None:
    assert environment_tier(name) == tier


# ------------------------------------------------------------------------ predefined variables


def test_branch_pipeline_variables() -> None:
    found = pipeline_variables(context(), pipeline_id=7, pipeline_iid=3, created_at="T")
    assert found["CI"] == found["GITLAB_CI"] == "true"
    assert found["CI_COMMIT_SHA"] == SHA
    assert found["CI_COMMIT_SHORT_SHA"] == SHA[:8]
    assert found["CI_COMMIT_BEFORE_SHA"] == BEFORE
    assert found["CI_COMMIT_REF_NAME"] == found["CI_COMMIT_BRANCH"] == "feature/Login-Page"
    assert found["CI_COMMIT_REF_SLUG"] == "feature-login-page"
    assert found["CI_COMMIT_MESSAGE"] == "Add login\n\nWith tests.\n"
    assert (found["CI_COMMIT_TITLE"], found["CI_COMMIT_DESCRIPTION"]) == (
        "Add login",
        "\nWith tests.",
    )
    assert found["CI_COMMIT_MESSAGE_IS_TRUNCATED"] == "false"
    assert found["CI_COMMIT_AUTHOR"] == "Ada <ada@example.com>"
    assert found["CI_COMMIT_TIMESTAMP"] == "2024-01-31T15:47:55Z"
    assert found["CI_COMMIT_REF_PROTECTED"] == "false"
    assert (found["CI_DEFAULT_BRANCH"], found["CI_DEFAULT_BRANCH_SLUG"]) == ("main", "main")
    assert found["CI_PIPELINE_SOURCE"] == "push"
    assert (found["CI_PIPELINE_ID"], found["CI_PIPELINE_IID"]) == ("7", "3")
    assert found["CI_PIPELINE_CREATED_AT"] == "T"
    assert found["CI_PIPELINE_URL"] == "https://gitlab.example.com/group/sub/app/-/pipelines/7"
    assert found["CI_PROJECT_PATH"] == "group/sub/app"
    assert found["CI_PROJECT_PATH_SLUG"] == "group-sub-app"
    assert (found["CI_PROJECT_NAME"], found["CI_PROJECT_TITLE"]) == ("app", "app")
    assert (found["CI_PROJECT_NAMESPACE"], found["CI_PROJECT_NAMESPACE_SLUG"]) == (
        "group/sub",
        "group-sub",
    )
    assert found["CI_PROJECT_ROOT_NAMESPACE"] == "group"
    assert found["CI_PROJECT_URL"] == "https://gitlab.example.com/group/sub/app"
    assert found["CI_SERVER_URL"] == "https://gitlab.example.com"
    assert (found["CI_SERVER_HOST"], found["CI_SERVER_PORT"]) == ("gitlab.example.com", "443")
    assert found["CI_API_V4_URL"] == "https://gitlab.example.com/api/v4"
    assert found["CI_CONFIG_PATH"] == ".gitlab-ci.yml"
    assert found["GITLAB_USER_NAME"] == "Ada Lovelace"
    assert (found["GITLAB_USER_EMAIL"], found["GITLAB_USER_LOGIN"]) == ("ada@example.com", "ada")
    for absent in (
        "CI_COMMIT_TAG",
        "CI_COMMIT_TAG_MESSAGE",
        "CI_PIPELINE_NAME",
        "CI_PIPELINE_TRIGGERED",
        "CI_MERGE_REQUEST_IID",
        "CI_OPEN_MERGE_REQUESTS",
        "CI_JOB_ID",
        "CI_NODE_INDEX",
    ):
        assert absent not in found
    assert all(isinstance(value, str) for value in found.values())
    assert found.keys() >= JOB_ONLY_VARIABLES


def test_created_at_defaults_to_now_utc() -> None:
    stamp = pipeline_variables(context())["CI_PIPELINE_CREATED_AT"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)


def test_tag_pipeline_variables() -> None:
    found = pipeline_variables(
        context(ref="v1.0", ref_is_tag=True, tag_message="Release", protected=True)
    )
    assert (found["CI_COMMIT_TAG"], found["CI_COMMIT_TAG_MESSAGE"]) == ("v1.0", "Release")
    assert found["CI_COMMIT_REF_NAME"] == "v1.0"
    assert found["CI_COMMIT_REF_PROTECTED"] == "true"
    assert "CI_COMMIT_BRANCH" not in found
    light = pipeline_variables(context(ref="v2", ref_is_tag=True))
    assert light["CI_COMMIT_TAG_MESSAGE"] == ""


def test_merge_request_pipeline_variables() -> None:
    mr = MergeRequest(
        source_branch="feature",
        target_branch="main",
        iid=4,
        title="Add login",
        description="Why",
        diff_base_sha=BEFORE,
        target_protected=True,
    )
    found = pipeline_variables(
        context(ref="feature", source="merge_request_event", merge_request=mr)
    )
    assert "CI_COMMIT_BRANCH" not in found
    assert found["CI_COMMIT_REF_NAME"] == "feature"
    assert found["CI_PIPELINE_SOURCE"] == "merge_request_event"
    assert found["CI_MERGE_REQUEST_IID"] == "4"
    assert found["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] == "feature"
    assert found["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] == "main"
    assert found["CI_MERGE_REQUEST_TARGET_BRANCH_PROTECTED"] == "true"
    assert found["CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED"] == "false"
    assert found["CI_MERGE_REQUEST_DIFF_BASE_SHA"] == BEFORE
    assert (found["CI_MERGE_REQUEST_TITLE"], found["CI_MERGE_REQUEST_DESCRIPTION"]) == (
        "Add login",
        "Why",
    )
    assert found["CI_MERGE_REQUEST_EVENT_TYPE"] == "detached"
    assert found["CI_MERGE_REQUEST_REF_PATH"] == "refs/merge-requests/4/head"
    assert found["CI_MERGE_REQUEST_PROJECT_PATH"] == "group/sub/app"
    assert (
        found["CI_MERGE_REQUEST_SOURCE_PROJECT_URL"] == "https://gitlab.example.com/group/sub/app"
    )
    assert found["CI_OPEN_MERGE_REQUESTS"] == "group/sub/app!4"


def test_trigger_name_and_truncation() -> None:
    long = "t" * 50 + "\n" + "é" * 60_000
    found = pipeline_variables(
        context(source="trigger", commit_message=long, commit_description="é" * 60_000),
        pipeline_name="Nightly",
    )
    assert found["CI_PIPELINE_TRIGGERED"] == "true"
    assert found["CI_PIPELINE_NAME"] == "Nightly"
    assert found["CI_COMMIT_MESSAGE_IS_TRUNCATED"] == "true"
    assert len(found["CI_COMMIT_MESSAGE"].encode()) <= 100_000
    assert found["CI_COMMIT_MESSAGE"].startswith("t" * 50)
    assert len(found["CI_COMMIT_DESCRIPTION"].encode()) <= 100_000


def test_include_rule_variables_are_restricted() -> None:
    found = include_rule_variables(context())
    assert found["CI_PROJECT_PATH"] == "group/sub/app"
    assert found["CI_DEFAULT_BRANCH"] == "main"
    assert found["CI_COMMIT_REF_NAME"] == "feature/Login-Page"
    assert found["CI_PIPELINE_SOURCE"] == "push"
    assert found["GITLAB_FEATURES"] == ""
    for absent in (
        "CI_COMMIT_SHA",
        "CI_COMMIT_BRANCH",
        "CI_PIPELINE_ID",
        "GITLAB_USER_LOGIN",
        "CI_PIPELINE_TRIGGERED",
    ):
        assert absent not in found
    assert include_rule_variables(context(source="trigger"))["CI_PIPELINE_TRIGGERED"] == "true"


def test_job_variables() -> None:
    single = job_variables(
        job_name="build", group_name="build", stage="build", node_index=None, node_total=1
    )
    assert single == {
        "CI_JOB_NAME": "build",
        "CI_JOB_NAME_SLUG": "build",
        "CI_JOB_GROUP_NAME": "build",
        "CI_JOB_STAGE": "build",
        "CI_NODE_TOTAL": "1",
    }
    matrix = job_variables(
        job_name="deploy: [aws, app1]",
        group_name="deploy",
        stage="deploy",
        node_index=2,
        node_total=4,
        manual=True,
    )
    assert (matrix["CI_NODE_INDEX"], matrix["CI_NODE_TOTAL"]) == ("2", "4")
    assert matrix["CI_JOB_NAME_SLUG"] == "deploy---aws--app1"
    assert matrix["CI_JOB_MANUAL"] == "true"


def test_runtime_variables(tmp_path: Path) -> None:
    found = runtime_variables(
        project_dir=tmp_path / "ws" / "job",
        builds_dir=tmp_path / "ws",
        job_id=12,
        started_at="2024-01-01T00:00:00Z",
        timeout_s=3600,
        environment=("review/feature", "https://x.example", "start", None),
        project_url="https://localhost/local/p",
    )
    assert found["CI_PROJECT_DIR"] == str(tmp_path / "ws" / "job")
    assert found["CI_BUILDS_DIR"] == str(tmp_path / "ws")
    assert (found["CI_JOB_ID"], found["CI_JOB_TIMEOUT"], found["CI_JOB_STATUS"]) == (
        "12",
        "3600",
        "running",
    )
    assert (found["CI_SERVER"], found["CI_SHARED_ENVIRONMENT"]) == ("yes", "true")
    assert found["CI_JOB_URL"] == "https://localhost/local/p/-/jobs/12"
    assert found["CI_ENVIRONMENT_NAME"] == "review/feature"
    assert found["CI_ENVIRONMENT_SLUG"].startswith("review-feature-")
    assert (found["CI_ENVIRONMENT_URL"], found["CI_ENVIRONMENT_ACTION"]) == (
        "https://x.example",
        "start",
    )
    assert found["CI_ENVIRONMENT_TIER"] == "development"
    assert "CI_DISPOSABLE_ENVIRONMENT" not in found
    assert {"CI_RUNNER_ID", "CI_RUNNER_VERSION", "CI_RUNNER_EXECUTABLE_ARCH"} <= found.keys()
    bare = runtime_variables(
        project_dir=tmp_path, builds_dir=tmp_path, job_id=1, started_at="s", timeout_s=1
    )
    assert not any(key.startswith("CI_ENVIRONMENT") for key in bare)
    assert "CI_JOB_URL" not in bare
    tiered = runtime_variables(
        project_dir=tmp_path,
        builds_dir=tmp_path,
        job_id=1,
        started_at="s",
        timeout_s=1,
        environment=("prod", None, "stop", "staging"),
    )
    assert tiered["CI_ENVIRONMENT_TIER"] == "staging"
    assert "CI_ENVIRONMENT_URL" not in tiered


# ----------------------------------------------------------------------------- GitLab expansion


def expanded(**values: str | VarValue) -> dict[str, str]:
    variables = {k: v if isinstance(v, VarValue) else VarValue(v) for k, v in values.items()}
    return {name: var.value for name, var in expand_gitlab(variables).items()}


def test_nested_expansion_in_any_order() -> None:
    items = [("C", "c=$B"), ("B", "b=${A}"), ("A", "x"), ("D", "%C%/$A")]
    want = {"A": "x", "B": "b=x", "C": "c=b=x", "D": "c=b=x/x"}
    for order in itertools.permutations(items):
        assert expanded(**dict(order)) == want


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("$$A", "$$A"),
        ("%%A%", "%%A%"),
        ("$$$A", "$$x"),
        ("$UNKNOWN/$A", "$UNKNOWN/x"),
        ("${UNKNOWN}", "${UNKNOWN}"),
        ("%UNKNOWN%", "%UNKNOWN%"),
        ("100%", "100%"),
        ("${A", "${A"),
        ("$A$A", "xx"),
        ("${A}_suffix", "x_suffix"),
        ("$A_suffix", "$A_suffix"),
        ("$1", "$1"),
    ],
)
def test_expansion_table(value: str, result: str) -> None:
    assert expanded(A="x", V=value)["V"] == result


def test_raw_and_file_variables() -> None:
    result = expand_gitlab(
        {
            "A": VarValue("x"),
            "RAW": VarValue("keep $A", raw=True, masked=True),
            "USES_RAW": VarValue("[$RAW]"),
            "FILE": VarValue("content $A", file=True),
            "USES_FILE": VarValue("cat $FILE"),
        }
    )
    assert result["RAW"] == VarValue("keep $A", raw=True, masked=True)
    assert result["USES_RAW"].value == "[$RAW]"
    assert result["FILE"] == VarValue("content x", file=True)
    assert result["USES_FILE"].value == "cat $FILE"


def test_self_reference_stays_literal() -> None:
    assert expanded(MY_VAR="$MY_VAR")["MY_VAR"] == "$MY_VAR"
    assert expanded(MY_VAR="${MY_VAR}:x", OTHER="$MY_VAR")["OTHER"] == "${MY_VAR}:x"


@pytest.mark.parametrize(
    ("values", "cycle"),
    [
        ({"A": "$B", "B": "$A"}, ("A", "B")),
        ({"A": "${B}", "B": "%C%", "C": "$A", "OK": "$A"}, ("A", "B", "C")),
    ],
)
def test_cycles_are_errors(values: dict[str, str], cycle: tuple[str, ...]) -> None:
    with pytest.raises(CircularVariableError) as info:
        expanded(**values)
    assert info.value.names == cycle
    assert isinstance(info.value, ConfigError)
    assert "circular variable reference" in info.value.render()


def test_cycle_through_raw_variable_is_no_cycle() -> None:
    result = expand_gitlab({"A": VarValue("$B"), "B": VarValue("$A", raw=True)})
    assert result["A"].value == "$B"


# ----------------------------------------------------------------------------- runner expansion


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("$A", "x"),
        ("${A}", "x"),
        ("$A$B", "xy y"),
        ("pre-${A}-post", "pre-x-post"),
        ("$UNKNOWN", ""),
        ("a${UNKNOWN}b", "ab"),
        ("$$", "$"),
        ("$$A", "$A"),
        ("$$$A", "$x"),
        ("$", "$"),
        ("a$", "a$"),
        ("a$ b", "a$ b"),
        ("$1 $* $# $@ $! $? $- $0", "       "),
        ("${1}", ""),
        ("${", ""),
        ("${A", "A"),
        ("${}", ""),
        ("${A B}", ""),
        ("$A_B1", "ab1"),
        ("$é", "$é"),
        ("100%", "100%"),
        ("%A%", "%A%"),
        ("$A.txt", "x.txt"),
    ],
)
def test_expand_runner(text: str, result: str) -> None:
    assert expand_runner(text, {"A": "x", "B": "y y", "A_B1": "ab1"}) == result


def test_runner_environment(tmp_path: Path) -> None:
    files = tmp_path / "tmp"
    env = runner_environment(
        {
            "A": VarValue("x"),
            "B": VarValue("$A/$$HOME/$NOPE"),
            "CHAIN": VarValue("$B"),
            "RAW": VarValue("$A $$", raw=True),
            "SECRET": VarValue("key=$A", file=True, masked=True),
            "USES": VarValue("--key $SECRET"),
            "MY_VAR": VarValue("$MY_VAR"),
        },
        files,
    )
    assert env["B"] == "x/$HOME/"
    assert env["CHAIN"] == "$A/$$HOME/$NOPE"  # one pass, against unexpanded values
    assert env["RAW"] == "$A $$"
    assert env["SECRET"] == str(files / "SECRET")
    assert (files / "SECRET").read_text() == "key=x"
    assert stat.S_IMODE((files / "SECRET").stat().st_mode) == 0o600
    assert env["USES"] == f"--key {files / 'SECRET'}"
    assert env["MY_VAR"] == "$MY_VAR"


def test_gitlab_then_runner_escape() -> None:
    gitlab = expand_gitlab({"FLAGS": VarValue("-al"), "LS_CMD": VarValue('ls "$FLAGS" $$TMP_DIR')})
    assert runner_environment(gitlab, Path("/unused"))["LS_CMD"] == 'ls "-al" $TMP_DIR'


# ----------------------------------------------------------------------------- masks, --var


def test_mask_text() -> None:
    text = "token abc123 and abc123456 and again abc123"
    assert mask_text(text, ["abc123", "abc123456", ""]) == (
        "token [MASKED] and [MASKED] and again [MASKED]"
    )
    assert mask_text("a.b", ["."]) == "a[MASKED]b"
    assert mask_text("nothing", []) == "nothing"


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("A=1", ("A", "1")),
        ("A=", ("A", "")),
        ("URL=a=b", ("URL", "a=b")),
        ("_x9=  s ", ("_x9", "  s ")),
    ],
)
def test_parse_assignment(text: str, pair: tuple[str, str]) -> None:
    assert parse_assignment(text) == pair


@pytest.mark.parametrize("text", ["A", "=1", "A B=1", "A-B=1", " A=1", "É=1"])
def test_parse_assignment_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_assignment(text)


# ----------------------------------------------------------------------------- variables files


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_variables_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "vars.yml",
        (
            "PLAIN: hello\n"
            "NUMBER: 012\n"
            "FLOAT: 1.5\n"
            "BOOL: yes\n"
            "EMPTY:\n"
            "TOKEN: {value: s3cret-value, masked: true}\n"
            "KEY:\n  value: |\n    line1\n    line2\n  file: true\n"
            "RAW: {value: $NOT, expand: false, description: kept}\n"
            "DESC_ONLY: {description: nothing}\n"
        ),
    )
    assert load_variables_file(path) == {
        "PLAIN": VarValue("hello"),
        "NUMBER": VarValue("10"),
        "FLOAT": VarValue("1.5"),
        "BOOL": VarValue("true"),
        "EMPTY": VarValue(""),
        "TOKEN": VarValue("s3cret-value", masked=True),
        "KEY": VarValue("line1\nline2\n", file=True),
        "RAW": VarValue("$NOT", raw=True),
        "DESC_ONLY": VarValue(""),
    }


def test_yaml_file_errors_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "vars.yaml",
        (
            "GOOD: 1\n"
            "bad-name: 2\n"
            "LIST: [1, 2]\n"
            "OPTS: {value: x, secret: true}\n"
            "FLAG: {value: x, masked: maybe}\n"
        ),
    )
    with pytest.raises(ConfigError) as info:
        load_variables_file(path)
    rendered = info.value.render()
    assert f"{path}:2: 'bad-name' is not a variable name" in rendered
    assert f"{path}:3: a variable value must be a string, number or boolean" in rendered
    assert f"{path}:4: OPTS: unknown key 'secret'" in rendered
    assert f"{path}:5: FLAG: masked must be true or false" in rendered
    assert len(info.value.problems) == 4


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A: 1\nB: [unclosed\n", 3, "not valid YAML"),
        ("- A\n- B\n", 1, "expected a mapping"),
        ("A: 1\n? [x]\n: 2\n", 2, "is not a variable name"),
    ],
)
def test_yaml_structure_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, "v.yml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_variables_file(path)
    assert info.value.problems[0].location is not None
    assert info.value.problems[0].location.line == line


def test_empty_yaml_file(tmp_path: Path) -> None:
    assert load_variables_file(write(tmp_path, "v.yml", "# nothing\n")) == {}


def test_dotenv_variables_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "local.env",
        (
            "# a comment\n"
            "\n"
            "PLAIN=hello world  # trailing comment\n"
            "export EXPORTED=1\n"
            "SPACED = around \n"
            'DOUBLE="a \\"quoted\\" $HOME\\nnext"\n'
            "SINGLE='literal \\n $X'\n"
            'MULTI="first\n'
            'second"\n'
            "HASH=a#b\n"
            "EMPTY=\n"
            "CRLF=yes\r\n"
        ),
    )
    assert {k: v.value for k, v in load_variables_file(path).items()} == {
        "PLAIN": "hello world",
        "EXPORTED": "1",
        "SPACED": "around",
        "DOUBLE": 'a "quoted" $HOME\nnext',
        "SINGLE": "literal \\n $X",
        "MULTI": "first\nsecond",
        "HASH": "a#b",
        "EMPTY": "",
        "CRLF": "yes",
    }


def test_dotenv_file_errors_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.env",
        ('OK=1\nno equals sign\nBAD-NAME=2\nTAIL="x" extra\nOPEN="never closed\nmore\n'),
    )
    with pytest.raises(ConfigError) as info:
        load_variables_file(path)
    lines = [problem.location.line for problem in info.value.problems if problem.location]
    assert lines == [2, 3, 4, 5]
    assert "quote is never closed" in info.value.render()


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("vars.txt", "# comment\nA=1\n", "dotenv"),
        ("vars.txt", "A: 1\n", "yaml"),
        ("vars", "export A=1\n", "dotenv"),
        (".env.local", "A=1\n", "dotenv"),
        ("vars.yml", "A: b=c\n", "yaml"),
    ],
)
def test_format_detection(tmp_path: Path, name: str, text: str, kind: str) -> None:
    found = load_variables_file(write(tmp_path, name, text))
    expected = "1" if kind == "dotenv" or text == "A: 1\n" else "b=c"
    assert found == {"A": VarValue(expected)}


def test_missing_variables_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read variables file"):
        load_variables_file(tmp_path / "nope.yml")


# ------------------------------------------------------------------------------- dotenv reports


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("", {}),
        ("A=1", {"A": "1"}),
        ("A=1\nB=2\n", {"A": "1", "B": "2"}),
        ("  A  =  spaced  \n", {"A": "spaced"}),
        ('A="quoted"\n', {"A": '"quoted"'}),
        ("A='single'\n", {"A": "'single'"}),
        ("A==b\n", {"A": "=b"}),
        ("A=x=y\n", {"A": "x=y"}),
        ("A=\n", {"A": ""}),
        ("A=$B ${C}\n", {"A": "$B ${C}"}),
        ("A=1 # not a comment\n", {"A": "1 # not a comment"}),
        ("A=1\nA=2\n", {"A": "2"}),
        ("\ufeffA=bom\n", {"A": "bom"}),
        ("A=crlf\r\nB=2\r\n", {"A": "crlf", "B": "2"}),
        ("1A=digit first\n", {"1A": "digit first"}),
        ("A=a\rb\n", {"A": "a\rb"}),
        (b"A=\xc3\xa9\n", {"A": "é"}),
    ],
)
def test_dotenv_report_accepts(text: str | bytes, result: dict[str, str]) -> None:
    assert parse_dotenv_report(text) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\n\nB=2\n", "build.env:2: invalid format"),
        ("A=1\n\n", "build.env:2: invalid format"),
        ("# comment\nA=1\n", "build.env:1: invalid format"),
        ("#A=1\n", "invalid key '#A'"),
        ("export A=1\n", "invalid key 'export A'"),
        ("=value\n", "invalid key ''"),
        ("MY-VAR=1\n", "invalid key 'MY-VAR'"),
        ("MY VAR=1\n", "invalid key 'MY VAR'"),
        ("ÄB=1\n", "invalid key"),
        ("K" * 256 + "=1\n", "invalid key"),
        ("just text\n", "invalid format"),
        (b"A=\xff\n", "not valid UTF-8"),
        ("".join(f"V{i}=1\n" for i in range(21)), "21 variables; the limit is 20"),
    ],
)
def test_dotenv_report_rejects(text: str | bytes, message: str) -> None:
    with pytest.raises(DotenvError, match=message):
        parse_dotenv_report(text, filename="build.env")


def test_dotenv_report_size_limit() -> None:
    big = "".join(f"V{i}={secrets.token_urlsafe(450)}\n" for i in range(20))
    with pytest.raises(DotenvError, match="too big"):
        parse_dotenv_report(big)
    assert len(parse_dotenv_report(big, max_bytes=100_000)) == 20
    many = "".join(f"V{i}=1\n" for i in range(50))
    assert len(parse_dotenv_report(many, max_variables=50)) == 50


def test_dotenv_report_error_location() -> None:
    with pytest.raises(DotenvError) as info:
        parse_dotenv_report("A=1\nbad\n", filename="deploy.env")
    assert info.value.problems[0].location is not None
    assert str(info.value.problems[0].location) == "deploy.env:2"
    assert isinstance(info.value, ConfigError)
