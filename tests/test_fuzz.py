"""Property tests: random and mutated configurations, expressions and variable inputs never crash
localci. Each input gives a result or a located `ConfigError`, within a per-example deadline.

The properties (`check_*`) and strategies are shared with `scripts/fuzz_long.py`, which runs them
for much longer; here each test is bounded by `max_examples` (about 20 s for the module).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from localci.config import load_pipeline_from_text
from localci.config.inputs import find_blocks
from localci.errors import ConfigError
from localci.expr import ExpressionError, parse_expression
from localci.plan import StaticFacts, build_plan, explain_job
from localci.plan.context import PipelineContext
from localci.plan.variable_files import load_variables_file
from localci.plan.variables import (
    VarValue,
    expand_gitlab,
    expand_runner,
    parse_dotenv_report,
)
from tests.helpers import deadline as helpers_deadline

# Seconds one example may take before it counts as a hang (generous: the machine is noisy).
EXAMPLE_DEADLINE_S = 20
# Scales every max_examples below; scripts/fuzz_long.py sets it much higher.
SCALE = float(os.environ.get("LOCALCI_FUZZ_SCALE", "1"))
# How many inputs each property tried (printed by scripts/fuzz_long.py).
TRIED: Counter[str] = Counter()

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTEXT = PipelineContext(project_dir=REPO_ROOT)
FACTS = StaticFacts(changed=frozenset({"src/a.py", "README.md"}), file_list=("src/a.py", "a.yml"))


# ---- seeds ---------------------------------------------------------------------------------------

BUILTIN_SEEDS: dict[str, dict[str, str]] = {
    "features": {
        ".gitlab-ci.yml": """\
include:
  - local: ci/tpl.yml
    inputs: {name: demo}
  - local: ci/*.yaml
    rules:
      - if: $CI_COMMIT_BRANCH == "main"
stages: [build, test, deploy]
variables:
  GLOBAL: "g"
  RAW: {value: "$X", expand: false}
  CHOICE: {value: a, options: [a, b], description: pick}
default:
  before_script: [echo before]
  retry: {max: 1, when: [script_failure]}
.base: &base
  image: python:3.12
  variables: {A: "1"}
  script: &steps [echo one, echo two]
build:
  <<: *base
  stage: build
  script: [*steps, echo three, !reference [.more, script]]
  artifacts: {paths: [dist/], reports: {dotenv: build.env}, when: always}
  cache: {key: {files: [requirements.txt]}, paths: [.cache/pip]}
.more:
  script: [echo more]
test:
  extends: .base
  needs: [build]
  parallel: {matrix: [{PY: ["3.11", "3.12"], OS: [linux]}]}
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event" && $A =~ /^1$/
      when: manual
      allow_failure: true
    - changes: [src/**/*.py]
      variables: {B: "2"}
    - exists: [a.yml]
    - when: on_success
deploy:
  stage: deploy
  script: echo deploy
  environment: {name: review/$CI_COMMIT_REF_SLUG, url: https://x.example}
  only: [main, /^release-.*$/]
  except: {variables: [$SKIP == "1"]}
  when: manual
workflow:
  name: "pipeline $CI_COMMIT_BRANCH"
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - when: always
""",
        "ci/tpl.yml": """\
spec:
  inputs:
    name: {default: x, regex: ^[a-z]+$}
    count: {type: number, default: 2}
---
"job-$[[ inputs.name ]]":
  script: echo $[[ inputs.name | truncate(0,3) ]]
  parallel: $[[ inputs.count ]]
""",
        "ci/extra.yaml": "extra:\n  script: [echo extra]\n  stage: test\n  timeout: 10m\n",
    },
    "small": {".gitlab-ci.yml": "job:\n  script: echo hi\n"},
}


def _conformance_dirs() -> list[Path]:
    """The conformance cases of shared/ (beside the clone in CI, or at /work/shared)."""
    candidates = [
        os.environ.get("LOCALCI_CONFORMANCE", ""),
        str(REPO_ROOT.parent / "shared" / "conformance" / "cases"),
        "/work/shared/conformance/cases",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return sorted(p for p in Path(candidate).iterdir() if p.is_dir())
    return []


def _case_files(case: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(case.rglob("*")):
        rel = path.relative_to(case).as_posix()
        if rel.startswith("expected/") or path.suffix not in (".yml", ".yaml"):
            continue
        with contextlib.suppress(OSError, UnicodeDecodeError):
            files[rel] = path.read_text(encoding="utf-8")
    return files


def load_seeds() -> dict[str, dict[str, str]]:
    """Seed configurations (name -> files, `.gitlab-ci.yml` among them)."""
    seeds = dict(BUILTIN_SEEDS)
    for case in _conformance_dirs():
        files = _case_files(case)
        if ".gitlab-ci.yml" in files:
            seeds[case.name] = files
    return seeds


SEEDS = load_seeds()
SEED_NAMES = sorted(SEEDS)


# ---- the per-example deadline -------------------------------------------------------------------


def deadline(seconds: float = EXAMPLE_DEADLINE_S) -> contextlib.AbstractContextManager[None]:
    return helpers_deadline(seconds)


# ---- properties ----------------------------------------------------------------------------------


def check_pipeline(text: str, files: Mapping[str, str] | None = None) -> str:
    """Load and plan `text`; a result, or a ConfigError with at least one located problem."""
    TRIED["pipeline"] += 1
    with deadline():
        try:
            pipeline = load_pipeline_from_text(text, files)
            plan = build_plan(pipeline, CONTEXT, facts=FACTS)
            if pipeline.jobs:
                explain_job(pipeline, CONTEXT, pipeline.jobs[0].name)
        except ConfigError as exc:
            assert exc.problems, "a ConfigError without problems"
            located = [p for p in exc.problems if p.location is not None]
            assert located, f"no problem is located: {exc.render()}"
            TRIED["pipeline: ConfigError"] += 1
            return "error"
    assert plan.context is CONTEXT
    TRIED["pipeline: loaded and planned"] += 1
    return "ok"


def check_expression(text: str, variables: Mapping[str, str], inputs: Mapping[str, Any]) -> None:
    """Parsing and evaluating give a value or an ExpressionError, nothing else."""
    TRIED["expression"] += 1
    with deadline():
        try:
            expression = parse_expression(text)
        except ExpressionError:
            return
        with contextlib.suppress(ExpressionError):
            assert isinstance(expression.evaluate(variables, inputs=inputs), bool)
            expression.explain(variables)


def check_expansion(variables: Mapping[str, VarValue], text: str) -> None:
    """GitLab expansion gives a value or a ConfigError (a cycle); runner expansion never fails."""
    TRIED["expansion"] += 1
    with deadline():
        try:
            expanded = expand_gitlab(variables)
        except ConfigError as exc:
            assert exc.problems
        else:
            assert set(expanded) == set(variables)
        env = {name: var.value for name, var in variables.items()}
        assert isinstance(expand_runner(text, env), str)


def check_dotenv_report(data: bytes) -> None:
    TRIED["dotenv"] += 1
    with deadline(), contextlib.suppress(ConfigError):
        result = parse_dotenv_report(data)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


def check_variables_file(data: bytes, suffix: str) -> None:
    """A variables file gives variables or a ConfigError naming the file."""
    TRIED["variables_file"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"variables{suffix}"
        path.write_bytes(data)
        with deadline():
            try:
                result = load_variables_file(path)
            except ConfigError as exc:
                assert exc.problems
                assert str(path) in exc.render(), exc.render()
                return
    assert all(isinstance(v, VarValue) for v in result.values())


# ---- strategies ----------------------------------------------------------------------------------

KEYWORDS = [
    "script",
    "before_script",
    "after_script",
    "stage",
    "stages",
    "variables",
    "rules",
    "if",
    "when",
    "changes",
    "exists",
    "needs",
    "job",
    "artifacts",
    "optional",
    "parallel",
    "matrix",
    "cache",
    "key",
    "files",
    "paths",
    "policy",
    "extends",
    "include",
    "local",
    "inputs",
    "spec",
    "default",
    "workflow",
    "name",
    "only",
    "except",
    "refs",
    "retry",
    "max",
    "timeout",
    "allow_failure",
    "exit_codes",
    "image",
    "services",
    "environment",
    "url",
    "trigger",
    "inherit",
    "tags",
    "dependencies",
    "start_in",
    "interruptible",
    "coverage",
    "resource_group",
    "reports",
    "dotenv",
    "untracked",
    "fallback_keys",
    "prefix",
    "value",
    "expand",
    "description",
    "options",
    "type",
    "regex",
    "auto_cancel",
    "on_job_failure",
    "compare_to",
    "project",
    "<<",
]
STRINGS = (
    '$CI_COMMIT_BRANCH == "main"',
    "$A =~ /^a.*/i",
    "$X",
    "${X}",
    "%X%",
    "$$",
    "on_success",
    "manual",
    "delayed",
    "never",
    "always",
    "on_failure",
    "1h 30m",
    "test",
    "build",
    ".pre",
    ".post",
    "$[[ inputs.name ]]",
    "$[[ inputs.count | truncate(0,1) ]]",
    "../../etc/passwd",
    "/etc/passwd",
    "ci/tpl.yml",
    "ci/*.yaml",
    "**/*.yml",
    "job: [a, b]",
    "build 1/2",
    "\x00",
    "\u202e",
    "\ufeff",
    "é",
    "💥",
    "a" * 300,
    "\n",
    ": ",
    "- ",
    "#",
    "&a",
    "*a",
    "!reference [.base, script]",
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(STRINGS),
    st.sampled_from(KEYWORDS),
)
keys = st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(STRINGS), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=25,
)
jobs = st.builds(
    lambda script, rest: {"script": script, **rest},
    st.one_of(st.text(max_size=10), st.lists(scalars, max_size=3), values),
    st.dictionaries(st.sampled_from(KEYWORDS), values, max_size=6),
)
configs = st.dictionaries(
    st.one_of(keys, st.sampled_from(("job", "build", ".base", "test"))),
    st.one_of(jobs, values),
    min_size=1,
    max_size=6,
)


class Ref(list[Any]):
    """A `!reference` while seeds are mutated as plain structures."""


class _SeedLoader(yaml.SafeLoader):
    """Seeds as plain data; `!reference` kept, every other tag read as its plain value."""


def _construct_ref(loader: _SeedLoader, node: yaml.Node) -> Ref:
    if isinstance(node, yaml.SequenceNode):
        return Ref(loader.construct_sequence(node, deep=True))
    return Ref([str(node.value)])


def _construct_any(loader: _SeedLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_SeedLoader.add_constructor("!reference", _construct_ref)
_SeedLoader.add_multi_constructor("!", _construct_any)
_SeedLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


class _SeedDumper(yaml.SafeDumper):
    """Writes `Ref` back as `!reference`; shared objects become anchors and aliases."""


_SeedDumper.add_representer(
    Ref, lambda dumper, data: dumper.represent_sequence("!reference", list(data), flow_style=True)
)


def parse_seed(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_SeedLoader)
    except yaml.YAMLError:
        return None


def dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_SeedDumper, allow_unicode=True, sort_keys=False)


def _nested(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


def _swap(value: Any) -> Any:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    return [value]


def _pick(draw: Callable[..., Any], tree: Any) -> tuple[Any, Any] | None:
    """A random (container, key) inside `tree`, walking down a random path."""
    parent: Any = None
    key: Any = None
    node = tree
    while isinstance(node, (dict, list)) and node:
        keys_ = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys_))
        node = node[key]
        if not draw(st.booleans()):
            break
    return None if parent is None else (parent, key)


def _random_path(draw: Callable[..., Any], tree: Any) -> list[str]:
    path: list[str] = []
    node = tree
    while isinstance(node, dict) and node and len(path) < 3:
        key = draw(st.sampled_from(list(node)))
        path.append(str(key))
        node = node[key]
        if not draw(st.booleans()):
            break
    return path or ["job"]


def _mutate(draw: Callable[..., Any], tree: Any) -> None:
    spot = _pick(draw, tree)
    if spot is None:
        return
    parent, key = spot
    op = draw(
        st.sampled_from(
            ("delete", "duplicate", "retype", "swap", "unicode", "nest", "reference", "extends")
        )
    )
    if op == "delete":
        del parent[key]
    elif op == "duplicate":
        if isinstance(parent, dict):
            parent[draw(keys)] = parent[key]
        else:
            parent.insert(key, parent[key])
    elif op == "retype":
        parent[key] = draw(values)
    elif op == "swap":
        parent[key] = _swap(parent[key])
    elif op == "unicode":
        parent[key] = draw(st.text(min_size=1, max_size=20))
    elif op == "nest":
        parent[key] = _nested(parent[key], draw(st.integers(1, 120)), draw(st.booleans()))
    elif op == "reference":
        parent[key] = Ref(_random_path(draw, tree))
    elif isinstance(parent.get(key) if isinstance(parent, dict) else None, dict):
        parent[key]["extends"] = draw(st.sampled_from([*map(str, tree), ".missing"]))


@st.composite
def mutated_structures(draw: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """A seed configuration parsed, mutated as data, and written back as YAML."""
    files = dict(SEEDS[draw(st.sampled_from(SEED_NAMES))])
    name = draw(st.sampled_from(sorted(files)))
    tree = parse_seed(files[name])
    if isinstance(tree, dict) and tree:
        for _ in range(draw(st.integers(1, 5))):
            _mutate(draw, tree)
        files[name] = dump(tree)
    return files.pop(".gitlab-ci.yml"), files


SNIPPETS = (
    "*a",
    "&a ",
    "<<: *a",
    "!reference [",
    "!reference [.base, script]",
    "\t",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "? ",
    "!!python/object/apply:os.system ['true'] ",
    "!!binary ",
    "!!set ",
    "\ufeff",
    "\x00",
    "\x85",
    "[" * 50,
    "{" * 50,
    "- " * 40,
    "$[[ inputs.",
    "include: ",
    "extends: ",
    ": ",
    "'",
    '"',
    "|",
    ">-",
)


@st.composite
def mutated_texts(draw: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """A seed's YAML text with lines deleted, duplicated, moved, re-indented or injected."""
    files = dict(SEEDS[draw(st.sampled_from(SEED_NAMES))])
    name = draw(st.sampled_from(sorted(files)))
    lines = files[name].splitlines(keepends=True) or [""]
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(("delete", "duplicate", "move", "indent", "inject", "char")))
        if op == "delete" and len(lines) > 1:
            del lines[index]
        elif op == "duplicate":
            lines.insert(index, lines[index])
        elif op == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(index))
        elif op == "indent":
            lines[index] = " " * draw(st.integers(0, 9)) + lines[index].lstrip(" ")
        else:
            line = lines[index]
            at = draw(st.integers(0, len(line)))
            piece = draw(st.sampled_from(SNIPPETS)) if op == "inject" else draw(st.text(max_size=3))
            lines[index] = line[:at] + piece + line[at:]
    files[name] = "".join(lines)
    return files.pop(".gitlab-ci.yml"), files


EXPRESSION_TOKENS = (
    "$A",
    "$B",
    "$CI_COMMIT_BRANCH",
    "$UNDEFINED",
    '"main"',
    "'x'",
    '""',
    "/^a.*$/",
    "/(a|b)+/i",
    "/[/",
    "/\\//",
    "/a{2,}/m",
    "/(?i)x/",
    "/\\p{L}+/",
    "/\\d+/U",
    "/[[:alpha:]]/",
    "/\\Qa.b\\E/",
    "/(?P<n>a)/",
    "/\\1/",
    "null",
    "true",
    "false",
    "==",
    "!=",
    "=~",
    "!~",
    "&&",
    "||",
    "(",
    ")",
    " ",
    "$[[ inputs.x ]]",
    "$[[ inputs.missing ]]",
)
expressions = st.one_of(
    st.lists(st.sampled_from(EXPRESSION_TOKENS), max_size=12).map(" ".join),
    st.lists(st.sampled_from(EXPRESSION_TOKENS), max_size=12).map("".join),
    st.text(max_size=30),
)
variable_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(("/a+/", "/[/", "/(?i)A/", "", "main", "a", "//", "/x/z", "$B", "$$A")),
)
expression_variables = st.dictionaries(
    st.sampled_from(("A", "B", "CI_COMMIT_BRANCH")), variable_values, max_size=3
)
variable_names = st.one_of(
    st.sampled_from(("A", "B", "C", "D_1")), st.from_regex(r"\w{1,4}", fullmatch=True)
)
var_values = st.builds(
    VarValue,
    st.one_of(
        st.lists(
            st.sampled_from(("$A", "${B}", "%C%", "$$", "%%", "x", "$", "${", "%", " ", "$D_1")),
            max_size=6,
        ).map("".join),
        st.text(max_size=10),
    ),
    raw=st.booleans(),
    masked=st.booleans(),
    file=st.booleans(),
)
runner_texts = st.one_of(
    st.lists(
        st.sampled_from(("$A", "${B}", "$", "${", "}", "$$", "${*}", "$1", "${}", "x", "${A")),
        max_size=8,
    ).map("".join),
    st.text(max_size=20),
)
dotenv_lines = st.sampled_from(
    ("A=1", "B = two ", "export C=3", "# c", "", "=x", "bad key=1", "D='q'", "A=2", "\ufeffE=5")
)
dotenv_data = st.one_of(
    st.lists(dotenv_lines, max_size=25).map("\n".join).map(str.encode),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
variables_file_data = st.one_of(
    dotenv_data,
    st.sampled_from(
        (
            b"A: 1\nB: {value: x, masked: true}\n",
            b"A: [1, 2]\n",
            b"- a\n",
            b"A: {value: x, bogus: 1}\n",
            b"A: {masked: maybe}\n",
            b"? [a]\n: b\n",
            b"A: &x {value: 1}\nB: *x\n",
            b"A: !!python/object/apply:os.system [true]\n",
            b"\xff\xfe",
            b'A="unterminated\n',
            b"A: 2024-01-01\n",
        )
    ),
    values.map(lambda v: dump(v).encode()),
)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,  # `deadline()` bounds each example instead, without timing flakiness
        database=None,
        # CI runs a fixed set of examples (a new finding should not turn a submission red at
        # random); local runs and scripts/fuzz_long.py explore new ones every time.
        derandomize=os.environ.get("CI") == "true",
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
        # the explain phase traces every line: far too slow for these inputs on Python < 3.12
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    )


# ---- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_seed_loads_or_fails_cleanly(name: str) -> None:
    files = dict(SEEDS[name])
    check_pipeline(files.pop(".gitlab-ci.yml"), files)


@_settings(300)
@given(configs)
def test_random_configurations(config: dict[str, Any]) -> None:
    check_pipeline(dump(config))


@_settings(600)
@given(mutated_structures())
def test_mutated_structures(case: tuple[str, dict[str, str]]) -> None:
    check_pipeline(*case)


@_settings(800)
@given(mutated_texts())
def test_mutated_texts(case: tuple[str, dict[str, str]]) -> None:
    check_pipeline(*case)


@_settings(1500)
@given(expressions, expression_variables, st.dictionaries(st.just("x"), values, max_size=1))
def test_expressions(text: str, variables: dict[str, str], inputs: dict[str, Any]) -> None:
    check_expression(text, variables, inputs)


@_settings(800)
@given(st.dictionaries(variable_names, var_values, max_size=5), runner_texts)
def test_variable_expansion(variables: dict[str, VarValue], text: str) -> None:
    check_expansion(variables, text)


@_settings(500)
@given(dotenv_data)
def test_dotenv_reports(data: bytes) -> None:
    check_dotenv_report(data)


@_settings(250)
@given(variables_file_data, st.sampled_from((".yml", ".env", "")))
def test_variables_files(data: bytes, suffix: str) -> None:
    check_variables_file(data, suffix)


BLOCK_REGEX = re.compile(r"\$\[\[\s*(.*?)\s*\]\]")


@_settings(500)
@given(
    st.lists(
        st.sampled_from(("$[[", "]]", " ", "\n", "inputs.a", "$", "[", "]", "x", "\t")), max_size=12
    ).map("".join)
)
def test_interpolation_blocks_are_found_as_the_regex_finds_them(text: str) -> None:
    TRIED["blocks"] += 1
    expected = [(m.start(), m.end(), m.group(1)) for m in BLOCK_REGEX.finditer(text)]
    assert find_blocks(text) == expected
