"""The job graph: parallel/matrix expansion, needs resolution and validation, artifact sources."""

from __future__ import annotations

import pytest
from planfactory import included, make_job, make_pipeline, plan

from localci.config.model import Need, Parallel, Pipeline, Rule
from localci.errors import Location, PlanError
from localci.plan import PlannedNeed
from localci.plan.job_graph import expand_parallel, find_cycles, matrix_combinations


def needs_of(text: str, name: str, **kwargs: object) -> list[str] | None:
    job = plan(text, **kwargs).job(name)  # type: ignore[arg-type]
    assert job is not None
    return None if job.needs is None else [need.job for need in job.needs]


def plan_error(text: str | Pipeline, **kwargs: object) -> list[str]:
    with pytest.raises(PlanError) as caught:
        plan(text, **kwargs)  # type: ignore[arg-type]
    return [problem.message for problem in caught.value.problems]


# ---- parallel ----------------------------------------------------------------------------------


def test_parallel_count_names_and_node_variables() -> None:
    p = plan("""
        test:
          script: x
          parallel: 3
        """)
    assert included(p) == ["test 1/3", "test 2/3", "test 3/3"]
    second = p.job("test 2/3")
    assert second is not None
    assert (second.group_name, second.node_index, second.node_total) == ("test", 2, 3)
    assert second.predefined["CI_NODE_INDEX"] == "2"
    assert second.predefined["CI_NODE_TOTAL"] == "3"
    assert second.predefined["CI_JOB_NAME"] == "test 2/3"
    assert second.predefined["CI_JOB_GROUP_NAME"] == "test"


def test_parallel_one_still_gets_a_suffix() -> None:
    assert [i.name for i in expand_parallel(make_job("t", parallel=Parallel(count=1)))] == ["t 1/1"]


def test_non_parallel_job_has_total_one_and_no_index() -> None:
    job = plan("a:\n  script: x\n").job("a")
    assert job is not None
    assert job.node_index is None
    assert job.predefined["CI_NODE_TOTAL"] == "1"
    assert "CI_NODE_INDEX" not in job.predefined


def test_matrix_order_first_key_slowest_and_entries_concatenated() -> None:
    p = plan("""
        deploy:
          script: x
          parallel:
            matrix:
              - PROVIDER: aws
                STACK: [monitoring, app1, app2]
              - PROVIDER: [ovh, gcp]
                STACK: [data]
              - PROVIDER: [a, b]
                REGION: [r1, r2]
        """)
    assert included(p) == [
        "deploy: [aws, monitoring]",
        "deploy: [aws, app1]",
        "deploy: [aws, app2]",
        "deploy: [ovh, data]",
        "deploy: [gcp, data]",
        "deploy: [a, r1]",
        "deploy: [a, r2]",
        "deploy: [b, r1]",
        "deploy: [b, r2]",
    ]
    job = p.job("deploy: [gcp, data]")
    assert job is not None
    assert (job.node_index, job.node_total) == (5, 9)
    assert job.yaml_variables["PROVIDER"].value == "gcp"
    assert job.predefined["CI_JOB_GROUP_NAME"] == "deploy"


def test_matrix_numbers_and_null_values() -> None:
    p = plan("""
        t:
          script: x
          parallel:
            matrix:
              - PY: [3.10, "3.12"]
                EXTRA: ~
        """)
    assert included(p) == ["t: [3.1]", "t: [3.12]"]


def test_matrix_combinations_helper() -> None:
    combos = matrix_combinations(({"A": ("1", "2"), "B": ("x",)},))
    assert combos == ((("A", "1"), ("B", "x")), (("A", "2"), ("B", "x")))


def test_matrix_values_override_job_variables() -> None:
    p = plan("""
        variables:
          OS: global
        t:
          script: x
          variables:
            OS: job
            KEEP: job
          parallel:
            matrix:
              - OS: [linux]
        """)
    job = p.job("t: [linux]")
    assert job is not None
    assert {k: v.value for k, v in job.yaml_variables.items()} == {"OS": "linux", "KEEP": "job"}


def test_duplicate_matrix_names_keep_the_last_instance() -> None:
    p = plan("""
        t:
          script: x
          parallel:
            matrix:
              - A: [x]
              - B: [x, y]
        """)
    assert included(p) == ["t: [x]", "t: [y]"]
    job = p.job("t: [x]")
    assert job is not None
    assert job.node_index == 2
    assert "B" in job.yaml_variables


def test_rules_see_matrix_variables_and_node_index() -> None:
    p = plan("""
        t:
          script: x
          parallel:
            matrix:
              - OS: [linux, windows]
          rules:
            - if: $OS == "linux" && $CI_NODE_INDEX == "1"
        """)
    assert included(p) == ["t: [linux]"]


# ---- needs -------------------------------------------------------------------------------------

PARALLEL_BUILD = """
stages: [build, test]
build:
  stage: build
  script: x
  parallel:
    matrix:
      - OS: [linux, mac]
        ARCH: [amd64, arm64]
"""


def test_need_on_a_parallel_job_means_all_instances() -> None:
    text = PARALLEL_BUILD + "test:\n  script: x\n  needs: [build]\n"
    assert needs_of(text, "test") == [
        "build: [linux, amd64]",
        "build: [linux, arm64]",
        "build: [mac, amd64]",
        "build: [mac, arm64]",
    ]


def test_need_on_parallel_count_job() -> None:
    text = """
        a:
          stage: build
          script: x
          parallel: 2
        b:
          script: x
          needs: [a]
          dependencies: [a]
        """
    assert needs_of(text, "b") == ["a 1/2", "a 2/2"]


def test_needs_parallel_matrix_selects_instances() -> None:
    text = (
        PARALLEL_BUILD
        + """
test:
  script: x
  needs:
    - job: build
      artifacts: false
      parallel:
        matrix:
          - OS: mac
            ARCH: arm64
          - OS: linux
            ARCH: amd64
"""
    )
    job = plan(text).job("test")
    assert job is not None
    assert job.needs == (
        PlannedNeed("build: [mac, arm64]", artifacts=False),
        PlannedNeed("build: [linux, amd64]", artifacts=False),
    )
    assert job.artifact_sources == ()


def test_needs_parallel_matrix_list_values_expand() -> None:
    # Issue 14 item 1: GitLab's Normalizer expands a need's matrix with the job's own
    # MatrixStrategy.expand, so list values select every combination.
    text = """
        build: {stage: build, script: [echo], parallel: {matrix: [{PY: ["3.11", "3.12"]}]}}
        test:
          {stage: test, script: [echo], needs: [{job: build, parallel: {matrix: [{PY: ["3.11"]}]}}]}
        both:
          stage: test
          script: [echo]
          needs: [{job: build, parallel: {matrix: [{PY: ["3.11", "3.12"]}]}}]
        """
    assert needs_of(text, "test") == ["build: [3.11]"]
    assert needs_of(text, "both") == ["build: [3.11]", "build: [3.12]"]


@pytest.mark.parametrize("spelling", ['"$[[ matrix.PY ]]"', '["$[[ matrix.PY ]]"]'])
def test_needs_matrix_expression_scalar_and_list_with_list_values(spelling: str) -> None:
    text = f"""
        build:
          stage: build
          script: [echo]
          parallel: {{matrix: [{{PY: ["3.11", "3.12"], OS: [a, b]}}]}}
        test:
          stage: test
          script: [echo]
          parallel: {{matrix: [{{PY: ["3.11", "3.12"]}}]}}
          needs: [{{job: build, parallel: {{matrix: [{{PY: {spelling}, OS: [a, b]}}]}}}}]
        """
    assert needs_of(text, "test: [3.12]") == ["build: [3.12, a]", "build: [3.12, b]"]


def test_matrix_expression_in_a_file_with_spec_inputs() -> None:
    # Input interpolation leaves the matrix context alone; it is resolved per instance later.
    text = """
        spec:
          inputs:
            v: {default: "3"}
        ---
        build:
          stage: build
          script: ["echo $[[ inputs.v ]]"]
          parallel: {matrix: [{PY: ["3.11", "3.12"]}]}
        test:
          stage: test
          script: [echo]
          parallel: {matrix: [{PY: ["3.11", "3.12"]}]}
          needs: [{job: build, parallel: {matrix: [{PY: "$[[matrix.PY]]"}]}}]
        """
    p = plan(text)
    build, test = p.job("build: [3.11]"), p.job("test: [3.12]")
    assert build is not None and build.job.script == ("echo 3",)
    assert test is not None and [n.job for n in test.needs or ()] == ["build: [3.12]"]


def test_needs_parallel_matrix_wrong_order_is_undefined() -> None:
    text = (
        PARALLEL_BUILD
        + """
test:
  script: x
  needs:
    - job: build
      parallel:
        matrix:
          - ARCH: arm64
            OS: mac
"""
    )
    assert plan_error(text) == ["test job: undefined need: build: [arm64, mac]"]


def test_needs_matrix_interpolation() -> None:
    text = (
        PARALLEL_BUILD
        + """
test:
  script: x
  parallel:
    matrix:
      - OS: [linux, mac]
  needs:
    - job: build
      parallel:
        matrix:
          - OS: $[[ matrix.OS ]]
            ARCH: amd64
"""
    )
    assert needs_of(text, "test: [mac]") == ["build: [mac, amd64]"]
    assert needs_of(text, "test: [linux]") == ["build: [linux, amd64]"]


def test_optional_need_on_excluded_job_is_dropped() -> None:
    text = """
        stages: [build, test]
        build:
          stage: build
          script: x
          rules:
            - if: $CI_COMMIT_TAG
        other:
          stage: build
          script: x
        test:
          script: x
          needs:
            - job: build
              optional: true
            - other
        alone:
          script: x
          needs:
            - job: build
              optional: true
            - job: not-defined-anywhere
              optional: true
        """
    assert needs_of(text, "test") == ["other"]
    assert needs_of(text, "alone") == []  # all dropped: like needs: []
    assert needs_of(text, "test", ref="v1", tag=True) == ["build", "other"]


def test_need_on_excluded_job_is_an_error() -> None:
    text = """
        build:
          stage: build
          script: x
          only: [main]
        test:
          script: x
          needs: [build]
        """
    assert needs_of(text, "test") == ["build"]
    messages = plan_error(text, ref="dev")
    assert messages == [
        "'test' job needs 'build' job, but 'build' does not exist in the pipeline. This might be"
        " because of the only, except, or rules keywords. To need a job that sometimes does not"
        " exist in the pipeline, use needs:optional."
    ]


def test_undefined_need_is_an_error_even_for_excluded_jobs() -> None:
    # The loader rejects these too; the planner checks again for pipelines built otherwise.
    test = make_job(
        "test",
        needs=(Need("biuld"),),
        rules=(Rule(when="never"),),
        location=Location(".gitlab-ci.yml", 2),
    )
    with pytest.raises(PlanError) as caught:
        plan(make_pipeline(test, make_job("build", "build")))
    problem = caught.value.problems[0]
    assert problem.message == "test job: undefined need: biuld"
    assert problem.hint is not None and "'build'" in problem.hint
    assert problem.location == Location(".gitlab-ci.yml", 2)


def test_need_on_later_stage_is_an_error() -> None:
    build = make_job("build", "build", needs=(Need("deploy"),))
    config = make_pipeline(build, make_job("deploy", "deploy"))
    assert plan_error(config) == [
        "build job: need deploy is not defined in current or prior stages"
    ]


def test_rule_need_on_later_stage_or_undefined_job() -> None:
    text = """
        build:
          stage: build
          script: x
          rules:
            - needs: [deploy, nope]
        deploy:
          stage: deploy
          script: x
        """
    assert plan_error(text) == [
        "build job: need deploy is not defined in current or prior stages",
        "build job: undefined need: nope",
    ]


def test_same_stage_need_is_fine() -> None:
    text = """
        a:
          script: x
        b:
          script: x
          needs: [a]
        """
    assert needs_of(text, "b") == ["a"]


def test_needs_cycle_is_printed() -> None:
    text = """
        a:
          script: x
          needs: [c]
        b:
          script: x
          needs: [a]
        c:
          script: x
          needs: [b]
        d:
          script: x
          needs: [d]
        """
    assert plan_error(text) == [
        "circular dependency detected in `needs`: a -> c -> b -> a",
        "circular dependency detected in `needs`: d -> d",
    ]


def test_cycle_created_by_rule_needs() -> None:
    text = """
        a:
          script: x
          rules:
            - needs: [b]
        b:
          script: x
          needs: [a]
        """
    assert plan_error(text) == ["circular dependency detected in `needs`: a -> b -> a"]


def test_find_cycles_is_iterative_and_exhaustive() -> None:
    chain = {f"j{i}": [f"j{i + 1}"] for i in range(5000)}
    assert find_cycles(chain) == []
    chain["j5000"] = ["j0"]
    cycles = find_cycles(chain)
    assert len(cycles) == 1 and len(cycles[0]) == 5001 and cycles[0][0] == "j0"


def test_more_than_50_needs() -> None:
    producers = "".join(f"p{i}:\n  stage: build\n  script: x\n" for i in range(26))
    text = (
        producers
        + "big:\n  script: x\n  parallel: 2\nc:\n  script: x\n  needs: ["
        + ", ".join(f"p{i}" for i in range(26))
        + "]\n"
    )
    assert needs_of(text, "c") is not None
    text = (
        producers + "bigger:\n  stage: build\n  script: x\n  parallel: 25\nc:\n  script: x\n"
        "  needs: [bigger, " + ", ".join(f"p{i}" for i in range(26)) + "]\n"
    )
    assert plan_error(text) == [
        "c: one job can only need 50 others, but you have listed 51. See needs keyword "
        "documentation for more details"
    ]


def test_dependencies_validation() -> None:
    config = make_pipeline(
        make_job("a", "build"),
        make_job("b", dependencies=("a", "c", "nope")),
        make_job("c", "deploy"),
        make_job("d", needs=(Need("c"),), dependencies=("a",)),
    )
    assert plan_error(config) == [
        "b job: dependency c is not defined in current or prior stages",
        "b job: undefined dependency: nope",
        "d job: need c is not defined in current or prior stages",
        "d job: dependencies the a should be part of needs",
    ]


def test_same_stage_dependency_is_accepted_without_its_artifacts() -> None:
    # Issue 14 item 3: GitLab's check is "current or prior stages" for dependencies too
    # (YamlProcessor#validate_job_dependency!); in stage mode the artifacts still come only
    # from earlier stages, so a same-stage dependency passes nothing.
    p = plan("""
        stages: [deploy]
        check: {stage: deploy, script: [echo]}
        deploy: {stage: deploy, script: [echo], dependencies: [check]}
        """)
    deploy = p.job("deploy")
    assert deploy is not None and deploy.included
    assert deploy.artifact_sources == ()


def test_cross_pipeline_needs_are_dropped_with_a_warning() -> None:
    p = plan("""
        a:
          script: x
          needs:
            - project: group/other
              job: build
              ref: main
              artifacts: true
            - pipeline: $PARENT_PIPELINE_ID
              job: gen
        """)
    job = p.job("a")
    assert job is not None
    assert job.needs == ()
    assert len(p.warnings) == 2
    assert "project group/other" in p.warnings[0]


def test_all_errors_are_gathered() -> None:
    text = """
        stages: [build, test]
        a:
          script: x
          rules:
            - needs: [x1]
        b:
          script: x
          rules:
            - needs: [b]
        c:
          stage: build
          script: x
          only: [nothing]
        d:
          script: x
          needs: [c]
        """
    assert plan_error(text) == [
        "a job: undefined need: x1",
        "'d' job needs 'c' job, but 'c' does not exist in the pipeline. This might be because "
        "of the only, except, or rules keywords. To need a job that sometimes does not exist "
        "in the pipeline, use needs:optional.",
        "circular dependency detected in `needs`: b -> b",
    ]


# ---- artifact sources --------------------------------------------------------------------------

ARTIFACTS = """
stages: [build, test, deploy]
b1:
  stage: build
  script: x
b2:
  stage: build
  script: x
skip:
  stage: build
  script: x
  rules:
    - when: never
t1:
  stage: test
  script: x
t2:
  stage: test
  script: x
  dependencies: [b2]
t3:
  stage: test
  script: x
  dependencies: []
t4:
  stage: test
  script: x
  needs: [b1, {job: b2, artifacts: false}]
t5:
  stage: test
  script: x
  needs: [b1, b2]
  dependencies: [b2]
t6:
  stage: test
  script: x
  needs: []
d1:
  stage: deploy
  script: x
"""


@pytest.mark.parametrize(
    ("name", "sources"),
    [
        ("b1", ()),
        ("t1", ("b1", "b2")),
        ("t2", ("b2",)),
        ("t3", ()),
        ("t4", ("b1",)),
        ("t5", ("b2",)),
        ("t6", ()),
        ("d1", ("b1", "b2", "t1", "t2", "t3", "t4", "t5", "t6")),
    ],
)
def test_artifact_sources(name: str, sources: tuple[str, ...]) -> None:
    job = plan(ARTIFACTS).job(name)
    assert job is not None
    assert job.artifact_sources == sources


def test_stage_mode_sources_are_shared_between_jobs_of_a_stage() -> None:
    p = plan(ARTIFACTS)
    t1, d1 = p.job("t1"), p.job("d1")
    b1 = p.job("b1")
    assert t1 is not None and d1 is not None and b1 is not None
    assert b1.artifact_sources is p.job("b2").artifact_sources  # type: ignore[union-attr]


def test_need_objects_keep_flags() -> None:
    job = plan(ARTIFACTS).job("t4")
    assert job is not None
    assert job.needs == (PlannedNeed("b1"), PlannedNeed("b2", artifacts=False))


def test_config_need_model_is_accepted_directly() -> None:
    a = make_job("a", "build")
    b = make_job("b", needs=(Need("a", optional=True),))
    p = plan(make_pipeline(a, b))
    assert [n.job for n in p.job("b").needs or ()] == ["a"]  # type: ignore[union-attr]


def test_config_problems_of_parallel_jobs_are_reported_once() -> None:
    config = make_pipeline(make_job("t", parallel=Parallel(count=3), needs=(Need("nope"),)))
    assert plan_error(config) == ["t job: undefined need: nope"]
