"""Loader: YAML, includes, inputs, extends, !reference, default, stages, validation."""

from __future__ import annotations

import textwrap

import pytest

from localci.config import load_pipeline_from_text
from localci.config.model import Pipeline
from localci.errors import ConfigError


def load(text: str, **files: str) -> Pipeline:
    extra = {
        name.replace("__", "/").replace("_yml", ".yml"): textwrap.dedent(body)
        for name, body in files.items()
    }
    return load_pipeline_from_text(textwrap.dedent(text), extra)


def errors(text: str, **files: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, **files)
    return [p.render() for p in info.value.problems]


def merged(text: str, **files: str) -> dict:
    return dict(load(text, **files).merged)


# ---- YAML ------------------------------------------------------------------------------------


def test_anchors_and_merge_keys_are_shallow() -> None:
    m = merged("""
        .base: &base
          script: [echo base]
          variables: {A: "1", B: "2"}
        job:
          <<: *base
          variables: {A: "x"}
    """)
    assert m["job"]["variables"] == {"A": "x"}
    assert m["job"]["script"] == ["echo base"]


def test_merge_key_list_of_anchors() -> None:
    m = merged("""
        .a: &a {script: [echo a], stage: build}
        .b: &b {stage: test}
        job:
          <<: [*a, *b]
    """)
    assert m["job"]["stage"] == "build"  # the first mapping in the list wins (YAML merge)


def test_yaml_11_scalars_become_strings_in_variables() -> None:
    p = load("""
        variables: {OCT: 012, BOOL: yes, FLOAT: 1.0, NUL: null}
        job: {script: [echo]}
    """)
    values = {v.name: v.value for v in p.variables}
    assert values == {"OCT": "10", "BOOL": "true", "FLOAT": "1.0", "NUL": ""}


def test_duplicate_keys_warn_with_both_lines() -> None:
    p = load("""
        job: {script: [echo 1]}
        job: {script: [echo 2]}
    """)
    assert p.jobs[0].script == ("echo 2",)
    assert any("duplicate key 'job'" in w and "line 2" in w for w in p.warnings)


def test_alias_to_anchor_of_another_file_is_an_error() -> None:
    msgs = errors(
        """
        include: [other.yml]
        job:
          script: *steps
    """,
        other_yml=".x: &steps [echo]\n",
    )
    assert "undefined alias" in msgs[0] and ".gitlab-ci.yml:4" in msgs[0]
    assert "!reference" in msgs[0]


def test_invalid_yaml_is_located() -> None:
    msgs = errors("job:\n  script: [echo\n  stage: test\n")
    assert msgs[0].startswith(".gitlab-ci.yml:")


def test_unknown_tag_is_an_error() -> None:
    assert "unknown YAML tag" in errors("job: !!python/object:os.system {script: x}\n")[0]


# ---- includes ----------------------------------------------------------------------------------


def test_includes_merge_in_order_and_including_file_wins() -> None:
    m = merged(
        """
        include:
          - a.yml
          - local: /b.yml
        variables: {X: root}
        job: {script: [echo]}
    """,
        a_yml="variables: {X: a, Y: a, Z: a}\n",
        b_yml="variables: {Y: b}\n",
    )
    assert m["variables"] == {"X": "root", "Y": "b", "Z": "a"}


def test_lists_are_replaced_not_concatenated() -> None:
    m = merged(
        """
        include: [a.yml]
        job: {script: [echo root]}
    """,
        a_yml="job: {script: [echo a, echo b], stage: build}\n",
    )
    assert m["job"]["script"] == ["echo root"]
    assert m["job"]["stage"] == "build"


def test_nested_includes_and_single_string_form() -> None:
    m = merged(
        "include: a.yml\n",
        a_yml="include: b.yml\nvariables: {A: a}\n",
        b_yml="job: {script: [echo b]}\n",
    )
    assert m["job"]["script"] == ["echo b"]


def test_include_cycle_is_an_error() -> None:
    msgs = errors(
        "include: a.yml\njob: {script: [x]}\n", a_yml="include: b.yml\n", b_yml="include: a.yml\n"
    )
    assert "include cycle" in msgs[0]


def test_missing_include_names_the_file() -> None:
    msgs = errors("include: missing.yml\njob: {script: [x]}\n")
    assert "missing.yml does not exist" in msgs[0]


def test_include_must_be_yaml_file() -> None:
    assert "must end in .yml" in errors("include: a.txt\njob: {script: [x]}\n")[0]


def test_remote_include_is_reported_clearly() -> None:
    msgs = errors("include: https://example.com/ci.yml\njob: {script: [x]}\n")
    assert "remote" in msgs[0] and "not supported yet" in msgs[0]


def test_include_rules_if_uses_include_variables() -> None:
    text = textwrap.dedent("""
        include:
          - local: a.yml
            rules:
              - if: $CI_COMMIT_REF_NAME == "main"
        job: {script: [x]}
    """)
    files = {"a.yml": "extra: {script: [y]}\n"}
    on_main = load_pipeline_from_text(text, files, variables={"CI_COMMIT_REF_NAME": "main"})
    other = load_pipeline_from_text(text, files, variables={"CI_COMMIT_REF_NAME": "dev"})
    assert [j.name for j in on_main.jobs] == ["extra", "job"]
    assert [j.name for j in other.jobs] == ["job"]


def test_include_rules_exists() -> None:
    text = """
        include:
          - local: a.yml
            rules: [{exists: [setup.py]}]
          - local: b.yml
            rules: [{exists: ["*.toml"]}]
        job: {script: [x]}
    """
    p = load(text, a_yml="a: {script: [a]}\n", b_yml="b: {script: [b]}\n", pyproject=".")
    names = [j.name for j in p.jobs]
    assert "a" not in names


def test_include_wildcards() -> None:
    files = {"ci/a.yml": "a: {script: [a]}\n", "ci/sub/b.yml": "b: {script: [b]}\n"}
    direct = load_pipeline_from_text("include: ci/*.yml\n", files)
    deep = load_pipeline_from_text("include: ci/**.yml\n", files)
    sub_only = load_pipeline_from_text("include: 'ci/**/*.yml'\n", files)
    assert [j.name for j in direct.jobs] == ["a"]
    assert sorted(j.name for j in deep.jobs) == ["a", "b"]
    assert [j.name for j in sub_only.jobs] == ["b"]


# ---- inputs ------------------------------------------------------------------------------------

TEMPLATE = """\
spec:
  inputs:
    stage: {default: test}
    env: {options: [dev, prod]}
    count: {type: number, default: 2}
---
deploy-$[[ inputs.env ]]:
  stage: $[[ inputs.stage ]]
  parallel: $[[ inputs.count ]]
  script:
    - echo deploying to $[[ inputs.env ]]
"""


def test_inputs_interpolate_with_types_and_defaults() -> None:
    p = load_pipeline_from_text(
        "include:\n  - local: t.yml\n    inputs: {env: prod}\n", {"t.yml": TEMPLATE}
    )
    job = p.jobs[0]
    assert job.name == "deploy-prod" and job.stage == "test"
    assert job.script == ("echo deploying to prod",)
    assert job.parallel is not None and job.parallel.count == 2


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("{}", "required input 'env' is missing"),
        ("{env: qa}", "is not one of the options"),
        ("{env: dev, color: red}", "unknown input 'color'"),
        ("{env: dev, count: many}", "expected a number"),
    ],
)
def test_input_errors(inputs: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline_from_text(
            f"include:\n  - local: t.yml\n    inputs: {inputs}\n", {"t.yml": TEMPLATE}
        )
    assert message in str(info.value)


def test_unknown_input_in_block_is_an_error() -> None:
    template = "spec:\n  inputs:\n    a: {default: x}\n---\njob:\n  script: echo $[[ inputs.b ]]\n"
    with pytest.raises(ConfigError, match="unknown input name 'b'"):
        load_pipeline_from_text("include: t.yml\n", {"t.yml": template})


def test_input_truncate_function() -> None:
    template = (
        "spec:\n  inputs:\n    a: {default: abcdefgh}\n---\n"
        "job: {script: ['echo $[[ inputs.a | truncate(1,3) ]]']}\n"
    )
    p = load_pipeline_from_text("include: t.yml\n", {"t.yml": template})
    assert p.jobs[0].script == ("echo bcd",)


# ---- extends -----------------------------------------------------------------------------------


def test_extends_deep_merges_hashes_and_replaces_lists() -> None:
    m = merged("""
        .a:
          variables: {A: a, B: a}
          script: [echo a]
          tags: [x]
        .b:
          extends: .a
          variables: {B: b}
        job:
          extends: .b
          variables: {C: c}
          tags: [y]
    """)
    assert m["job"]["variables"] == {"A": "a", "B": "b", "C": "c"}
    assert m["job"]["script"] == ["echo a"] and m["job"]["tags"] == ["y"]
    assert "extends" not in m["job"]


def test_extends_multiple_parents_later_wins() -> None:
    m = merged("""
        .one: {script: [one], stage: build, variables: {X: one}}
        .two: {script: [two], variables: {X: two, Y: two}}
        job: {extends: [.one, .two]}
    """)
    assert m["job"]["script"] == ["two"] and m["job"]["stage"] == "build"
    assert m["job"]["variables"] == {"X": "two", "Y": "two"}


def test_extends_null_removes_inherited_value() -> None:
    p = load("""
        .a: {script: [a], variables: {A: a}}
        job: {extends: .a, variables: null}
    """)
    assert p.jobs[0].variables == ()


def test_extends_errors() -> None:
    assert "not defined" in errors("job: {extends: .nope, script: [x]}\n")[0]
    cycle = errors(".a: {extends: .b}\n.b: {extends: .a}\njob: {extends: .a, script: [x]}\n")
    assert any("circular dependency" in m for m in cycle)


def test_extends_too_deep() -> None:
    chain = "".join(f".t{i}: {{extends: .t{i + 1}}}\n" for i in range(12))
    chain += ".t12: {script: [x]}\njob: {extends: .t0}\n"
    assert any("nesting too deep" in m for m in errors(chain))


@pytest.mark.parametrize("templates_first", [True, False])
def test_extends_boundary_is_gitlabs_ancestor_count(templates_first: bool) -> None:
    # Issue 14 item 4. Extendable::Entry#nesting_too_deep? is `ancestors.count > 10` for every
    # entry that has `extends`: a job extending through 11 levels passes, 12 levels fail, even
    # when the templates of the chain were already resolved on their own (memoised).
    templates = ".l0: {script: [echo]}\n" + "".join(
        f".l{i}: {{extends: .l{i - 1}}}\n" for i in range(1, 12)
    )

    def config(job: str) -> str:
        return templates + job if templates_first else job + templates

    eleven = load(config("job11: {extends: .l10}\n"))
    assert [j.name for j in eleven.jobs] == ["job11"]
    too_deep = [m for m in errors(config("job12: {extends: .l11}\n")) if "too deep" in m]
    assert len(too_deep) == 1
    assert (
        "job 'job12', extends: nesting too deep in `extends` (more than 11 levels)" in (too_deep[0])
    )


def test_extends_from_included_file() -> None:
    p = load("include: t.yml\njob: {extends: .t}\n", t_yml=".t: {script: [from template]}\n")
    assert p.jobs[0].script == ("from template",)


# ---- !reference ---------------------------------------------------------------------------------


def test_reference_resolved_after_extends_and_spliced_in_scripts() -> None:
    p = load("""
        .base: {script: [base]}
        .setup:
          extends: .base
        job:
          script:
            - !reference [.setup, script]
            - own
    """)
    assert p.jobs[0].script == ("base", "own")


def test_reference_nested_and_across_files() -> None:
    p = load(
        """
        include: t.yml
        .b: {script: [!reference [.a, script], b]}
        job:
          variables: !reference [.vars, variables]
          script: [!reference [.b, script], c]
    """,
        t_yml=".a: {script: [a]}\n.vars: {variables: {V: v}}\n",
    )
    assert p.jobs[0].script == ("a", "b", "c")
    assert p.jobs[0].variables[0].value == "v"


def test_reference_errors() -> None:
    assert "could not be found" in errors("job: {script: [!reference [.x, script]]}\n")[0]
    cyc = errors(
        ".a: {script: [!reference [.b, script]]}\n"
        ".b: {script: [!reference [.a, script]]}\njob: {script: [!reference [.a, script]]}\n"
    )
    assert any("circular !reference" in m for m in cyc)
    assert "list of one or more strings" in errors("job: {script: !reference {a: b}}\n")[0]


# ---- default, inherit, globals ------------------------------------------------------------------


def test_default_is_per_keyword_and_extends_beats_default() -> None:
    p = load("""
        default:
          image: python:3.12
          before_script: [default-before]
          cache: {paths: [.venv]}
        .t: {image: python:3.10}
        a: {extends: .t, script: [a]}
        b: {script: [b], cache: {paths: [x]}}
    """)
    a, b = p.jobs
    assert a.image is not None and a.image.name == "python:3.10"
    assert a.before_script == ("default-before",)
    assert b.cache[0].paths == ("x",)


def test_inherit_default_false_and_list() -> None:
    p = load("""
        default: {image: img, before_script: [x]}
        a: {script: [a], inherit: {default: false}}
        b: {script: [b], inherit: {default: [image]}}
    """)
    a, b = p.jobs
    assert a.image is None and a.before_script == ()
    assert b.image is not None and b.before_script == ()


def test_legacy_globals_act_as_default_and_default_wins() -> None:
    p = load("""
        image: legacy
        before_script: [legacy]
        default: {image: modern}
        job: {script: [x]}
    """)
    assert p.jobs[0].image is not None and p.jobs[0].image.name == "modern"
    assert p.jobs[0].before_script == ("legacy",)


def test_variables_forms() -> None:
    p = load("""
        variables:
          A: {value: a, description: the a}
          B: {value: "$A", expand: false}
          C: {description: only a description}
          D: {value: x, options: [x, y]}
        job: {script: [x]}
    """)
    v = {x.name: x for x in p.variables}
    assert v["A"].value == "a" and v["A"].description == "the a"
    assert v["B"].expand is False and v["C"].value == ""
    assert v["D"].options == ("x", "y")


# ---- stages and jobs ---------------------------------------------------------------------------


def test_default_stages_and_stage() -> None:
    p = load("job: {script: [x]}\n")
    assert p.stages == (".pre", "build", "test", "deploy", ".post")
    assert p.jobs[0].stage == "test"


def test_pre_and_post_forced_to_the_ends() -> None:
    p = load("stages: [.post, build, .pre, [deploy]]\njob: {stage: deploy, script: [x]}\n")
    assert p.stages == (".pre", "build", "deploy", ".post")


def test_hidden_jobs_dropped_and_nested_scripts_flattened() -> None:
    m = merged("""
        .steps: &steps [a, [b, c]]
        job: {script: [*steps, d]}
    """)
    assert list(m) == ["stages", "job"]
    assert m["job"]["script"] == ["a", "b", "c", "d"]


def test_unknown_stage_lists_available_stages() -> None:
    msgs = errors("stages: [build]\njob: {script: [x]}\n")
    assert "chosen stage 'test' does not exist" in msgs[0] and "job 'job'" in msgs[0]


def test_job_without_script() -> None:
    msgs = errors("job: {stage: test}\n")
    assert "script:" in msgs[0] and ".gitlab-ci.yml:1" in msgs[0]


def test_no_visible_job() -> None:
    assert "at least one visible job" in errors(".hidden: {script: [x]}\n")[0]


def test_non_string_script_line_is_located() -> None:
    msgs = errors("job:\n  script:\n    - echo ok\n    - key: value\n")
    assert ".gitlab-ci.yml:4" in msgs[0] and "item 2 should be a string" in msgs[0]


def test_unknown_job_key() -> None:
    msgs = errors("job: {script: [x], scrpit: [y]}\n")
    assert "unknown keys: scrpit" in msgs[0]


def test_only_with_rules_is_an_error() -> None:
    msgs = errors("job: {script: [x], only: [main], rules: [{when: always}]}\n")
    assert "`only` may not be used with `rules`" in msgs[0]


TEN_MISTAKES = """\
stages: [build, test]
.t: {script: [x]}
a: {stage: nope, script: [x]}
b: {script: [x], when: sometimes}
c: {script: [x], extends: .missing}
d: {stage: build}
e: {script: [x], retry: 5}
f: {script: [x], parallel: 500}
g: {script: [x], allow_failure: maybe}
h: {script: [x], unknown_key: 1}
i: {script: [x], rules: [{if: '$A ==== "x"'}]}
j: {script: [x], variables: {"BAD-NAME": 1}}
"""


def test_ten_mistakes_are_all_reported_with_lines() -> None:
    msgs = errors(TEN_MISTAKES)
    assert len(msgs) == 10, msgs
    lines = sorted(int(m.split(":")[1]) for m in msgs)
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]


def test_cache_list_with_a_reference_list_is_flattened() -> None:
    # Issue 14 item 2: ComposableArray composes `[@config].flatten`, so the caches of a
    # `!reference` list join the job's own; Entry::Caches counts the list as written.
    p = load("""
        .base: {cache: [{key: a, paths: [a/]}, {key: b, paths: [b/]}]}
        job: {script: [echo], cache: [!reference [.base, cache], {key: c, paths: [c/]}]}
        """)
    assert [(c.key, c.paths) for c in p.jobs[0].cache] == [
        ("a", ("a/",)),
        ("b", ("b/",)),
        ("c", ("c/",)),
    ]


def test_services_parsed_with_aliases() -> None:
    job = load("""
        job:
          script: [x]
          services:
            - postgres:15
            - {name: "redis:7", alias: "cache, kv", command: [redis-server], variables: {A: 1}}
        """).jobs[0]
    assert [(s.name, s.alias) for s in job.services] == [
        ("postgres:15", None),
        ("redis:7", "cache, kv"),
    ]
    assert job.services[1].command == ("redis-server",)
    assert dict(job.services[1].variables) == {"A": "1"}
    assert (
        "a service mapping requires `name:`"
        in errors("job: {script: [x], services: [{alias: db}]}\n")[0]
    )
    assert "image name or a mapping" in errors("job: {script: [x], services: [[a]]}\n")[0]
