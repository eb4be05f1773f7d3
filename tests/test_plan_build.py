"""build_plan on realistic pipelines, select_jobs, explain_job, and a 1,000-job pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_repo
from planfactory import (
    context,
    explain,
    facts,
    included,
    make_job,
    make_pipeline,
    pipeline,
    plan,
)

from localci.config.model import Need, Parallel, Rule, Variable
from localci.errors import UsageError
from localci.plan import GitFacts, Plan, build_plan, explain_job, select_jobs
from localci.plan.context import detect_context
from localci.plan.variables import VarValue

REALISTIC = """
stages: [lint, build, test, deploy]

variables:
  PIP_CACHE_DIR: "$CI_PROJECT_DIR/.cache/pip"
  DEPLOY_TARGET: staging

.python:
  image: python:3.12
  before_script:
    - pip install -e .

lint:
  extends: .python
  stage: lint
  script: ruff check .

build:
  extends: .python
  stage: build
  script: python -m build
  artifacts:
    paths: [dist/]

test:
  extends: .python
  stage: test
  script: pytest
  parallel:
    matrix:
      - PY: ["3.11", "3.12"]

docs:
  stage: test
  script: mkdocs build
  rules:
    - changes: [docs/**/*, mkdocs.yml]
    - if: $CI_COMMIT_TAG

deploy-staging:
  stage: deploy
  script: ./deploy.sh $DEPLOY_TARGET
  needs: [build, test]
  only: [main]
  environment: staging

deploy-prod:
  stage: deploy
  script: ./deploy.sh prod
  rules:
    - if: $CI_COMMIT_TAG =~ /^v\\d+\\.\\d+/
      when: manual
  needs:
    - build
    - job: docs
      optional: true

nightly:
  stage: test
  script: ./nightly.sh
  only: [schedules]
"""


def test_realistic_branch_push_on_main() -> None:
    p = plan(REALISTIC, changed=["src/app.py"])
    assert p.created
    assert included(p) == ["lint", "build", "test: [3.11]", "test: [3.12]", "deploy-staging"]
    assert p.stages == ("lint", "build", "test", "deploy")
    deploy = p.job("deploy-staging")
    assert deploy is not None
    assert [n.job for n in deploy.needs or ()] == ["build", "test: [3.11]", "test: [3.12]"]
    assert deploy.artifact_sources == ("build", "test: [3.11]", "test: [3.12]")
    test = p.job("test: [3.12]")
    assert test is not None and test.artifact_sources == ("lint", "build")
    excluded = {j.name: j.reason for j in p.jobs if not j.included}
    assert excluded["docs"] == "rules: none of the 2 rule(s) matched"
    assert excluded["nightly"].startswith("only: refs [schedules] did not match")


def test_realistic_feature_branch_and_docs_change() -> None:
    p = plan(REALISTIC, "feature/docs", changed=["docs/index.md"])
    assert included(p) == ["lint", "build", "test: [3.11]", "test: [3.12]", "docs"]


def test_realistic_tag_pipeline() -> None:
    p = plan(REALISTIC, "v1.2.0", tag=True)
    assert included(p) == ["lint", "build", "test: [3.11]", "test: [3.12]", "docs", "deploy-prod"]
    prod = p.job("deploy-prod")
    assert prod is not None
    assert (prod.when, prod.allow_failure.allowed) == ("manual", False)
    assert [n.job for n in prod.needs or ()] == ["build", "docs"]


def test_realistic_schedule_and_mr() -> None:
    assert "nightly" in included(plan(REALISTIC, source="schedule"))
    # MR pipelines: the default `only` leaves jobs without rules out; docs' changes hold
    # because this synthetic MR has no diff information.
    assert included(plan(REALISTIC, "feature/x", source="merge_request_event")) == ["docs"]


def test_yaml_variable_precedence_and_predefined() -> None:
    p = plan(
        """
        variables:
          G: global
          W: global
          J: global
          M: global
          R: global
        workflow:
          rules:
            - variables:
                W: workflow
        job:
          script: x
          variables:
            J: job
            M: job
            R: job
          parallel:
            matrix:
              - M: matrix
          rules:
            - variables:
                R: rule
        """,
        user={"U": "user"},
    )
    job = p.job("job: [matrix]")
    assert job is not None
    assert {k: v.value for k, v in job.yaml_variables.items()} == {
        "G": "global",
        "W": "workflow",
        "J": "job",
        "M": "matrix",
        "R": "rule",
    }
    assert p.user_variables == {"U": VarValue("user")}
    assert job.predefined["CI_COMMIT_REF_NAME"] == "main"
    assert job.predefined["CI_JOB_NAME"] == "job: [matrix]"
    assert job.predefined["CI_PIPELINE_SOURCE"] == "push"


def test_raw_variables_stay_raw() -> None:
    p = plan("""
        variables:
          RAW:
            value: "$NOT_EXPANDED"
            expand: false
        job:
          script: x
        """)
    job = p.job("job")
    assert job is not None and job.yaml_variables["RAW"] == VarValue("$NOT_EXPANDED", raw=True)


@pytest.mark.parametrize(
    ("inherit", "expected"),
    [
        ("false", {"OWN": "1"}),
        ("[A]", {"A": "a", "OWN": "1"}),
        ("true", {"A": "a", "B": "b", "OWN": "1"}),
    ],
)
def test_inherit_variables(inherit: str, expected: dict[str, str]) -> None:
    p = plan(f"""
variables:
  A: a
  B: b
job:
  script: x
  variables:
    OWN: "1"
  inherit:
    variables: {inherit}
  rules:
    - if: $B == null || $B == "b"
""")
    job = p.job("job")
    assert job is not None and job.included
    assert {k: v.value for k, v in job.yaml_variables.items()} == expected


def test_inherit_false_hides_globals_from_rules() -> None:
    p = plan("""
        variables:
          FLAG: "1"
        a:
          script: x
          inherit:
            variables: false
          rules:
            - if: $FLAG
        b:
          script: x
          rules:
            - if: $FLAG
        """)
    assert included(p) == ["b"]


def test_stages_without_jobs_are_dropped() -> None:
    p = plan("""
        stages: [one, two, three]
        a:
          stage: one
          script: x
        c:
          stage: three
          script: x
        skipped:
          stage: two
          script: x
          rules:
            - when: never
        """)
    assert p.stages == ("one", "three")
    assert [j.stage_index for j in p.included] == [1, 3]


def test_only_pre_and_post_jobs_create_no_pipeline() -> None:
    p = plan("""
        setup:
          stage: .pre
          script: x
        teardown:
          stage: .post
          script: x
        test:
          script: x
          rules:
            - if: $CI_COMMIT_TAG
        """)
    assert not p.created
    assert "only .pre/.post jobs" in p.workflow_reason
    assert p.included == () and p.stages == ()
    setup = p.job("setup")
    assert setup is not None and setup.reason.startswith("pipeline not created: only .pre/.post")


def test_pre_jobs_with_real_jobs() -> None:
    p = plan("setup:\n  stage: .pre\n  script: x\ntest:\n  script: x\n")
    assert p.stages == (".pre", "test")


def test_no_job_left_creates_no_pipeline() -> None:
    p = plan("a:\n  script: x\n  only: [tags]\n")
    assert not p.created
    assert p.workflow_reason == "no jobs: rules/only/except left every job out"


def test_plan_helpers() -> None:
    p = plan(REALISTIC)
    assert [j.name for j in p.group("test")] == ["test: [3.11]", "test: [3.12]"]
    assert [j.name for j in p.stage_jobs("deploy")] == ["deploy-staging"]
    assert p.ordered()[0].name == "lint"
    assert p.job("nope") is None


def test_job_spec_is_what_the_executor_runs() -> None:
    """`PlannedJob.spec` carries the configuration the executor needs, `default:` applied."""
    p = plan(
        """
default:
  image: python:3.12
  before_script: [pip install .]
unit:
  script: [pytest]
  retry: 2
  timeout: 10m
  needs:
    - pipeline: $PARENT_PIPELINE_ID
      job: build
bridge:
  trigger:
    include: child.yml
"""
    )
    unit, bridge = p.job("unit"), p.job("bridge")
    assert unit is not None and bridge is not None
    assert unit.spec.image is not None and unit.spec.image.name == "python:3.12"
    assert (unit.spec.before_script, unit.spec.script) == (("pip install .",), ("pytest",))
    assert (unit.spec.retry.max, unit.spec.timeout, unit.spec.trigger) == (2, "10m", False)
    assert [(n.job, n.pipeline) for n in unit.spec.pipeline_needs] == [
        ("build", "$PARENT_PIPELINE_ID")
    ]
    assert bridge.spec.trigger and bridge.spec.retry.max == 0 and not bridge.spec.pipeline_needs


# ---- select_jobs -------------------------------------------------------------------------------


def test_select_by_stage_and_name() -> None:
    p = plan(REALISTIC, changed=["src/app.py"])
    assert included(select_jobs(p, stages=["test"])) == ["test: [3.11]", "test: [3.12]"]
    assert included(select_jobs(p, names=["test: [3.12]"])) == ["test: [3.12]"]
    assert included(select_jobs(p, names=["test"])) == ["test: [3.11]", "test: [3.12]"]
    selected = select_jobs(p, names=["lint"], stages=["deploy"])
    assert included(selected) == ["lint", "deploy-staging"]
    assert selected.stages == ("lint", "deploy")
    assert select_jobs(p) is p


def test_select_with_needs_follows_needs_and_stage_sources() -> None:
    p = plan(REALISTIC, changed=["src/app.py"])
    assert included(select_jobs(p, names=["deploy-staging"], with_needs=True)) == [
        "lint",
        "build",
        "test: [3.11]",
        "test: [3.12]",
        "deploy-staging",
    ]
    assert included(select_jobs(p, names=["build"], with_needs=True)) == ["lint", "build"]


def test_select_unknown_or_excluded_job() -> None:
    p = plan(REALISTIC)
    with pytest.raises(UsageError, match="did you mean 'deploy-staging'"):
        select_jobs(p, names=["deploy-stagin"])
    with pytest.raises(UsageError, match="not in this pipeline: only: refs"):
        select_jobs(p, names=["nightly"])
    with pytest.raises(UsageError, match="stage 'nope' has no job"):
        select_jobs(p, stages=["nope"])


# ---- explain -----------------------------------------------------------------------------------


def test_explain_shows_rules_values_and_final_values() -> None:
    lines = explain(REALISTIC, "deploy-prod", "v1.2.0", tag=True)
    text = "\n".join(lines)
    assert "workflow:" in lines
    assert "no workflow:rules: the pipeline is created" in text
    assert "rules[0]: if $CI_COMMIT_TAG =~ /^v\\d+\\.\\d+/, when: manual" in text
    assert "$CI_COMMIT_TAG is 'v1.2.0'" in text
    assert "-> rules[0] matched" in text
    assert "when: manual" in text
    assert "allow_failure: false" in text
    assert "needs: [build, docs (optional)]" in text
    assert "DEPLOY_TARGET=staging" in text


def test_explain_excluded_only_job_and_parallel_group() -> None:
    text = "\n".join(explain(REALISTIC, "nightly"))
    assert "only:refs: [schedules] did not match branch 'main' (source push) -> false" in text
    assert "NOT included" in text
    text = "\n".join(explain(REALISTIC, "test"))
    assert "job 'test: [3.11]'" in text and "job 'test: [3.12]'" in text
    assert "default `only: [branches, tags]`" in text


def test_explain_changes_and_exists_matches() -> None:
    text = "\n".join(
        explain(
            """
        a:
          script: x
          rules:
            - changes: [src/*.py]
              exists: [pyproject.toml]
        """,
            "a",
            changed=["src/m.py"],
            files=["pyproject.toml"],
        )
    )
    assert "changes: changed file 'src/m.py' matches 'src/*.py' -> true" in text
    assert "exists: file 'pyproject.toml' matches 'pyproject.toml' -> true" in text


def test_explain_masks_masked_user_variables() -> None:
    lines = explain_job(
        pipeline("a:\n  script: x\n  rules:\n    - if: $TOKEN == 'x'\n"),
        context(),
        "a",
        user_variables={"TOKEN": VarValue("s3cr3t!", masked=True)},
        facts=facts(),
    )
    text = "\n".join(lines)
    assert "s3cr3t!" not in text and "[MASKED]" in text


def test_explain_reports_plan_errors() -> None:
    text = "\n".join(
        explain(
            """
        a:
          script: x
          only: [tags]
        b:
          script: x
          needs: [a]
        """,
            "b",
        )
    )
    assert "the pipeline cannot be created:" in text
    assert "'b' job needs 'a' job" in text


def test_explain_unknown_job() -> None:
    with pytest.raises(UsageError, match="no job named 'tset'; did you mean 'test'"):
        explain(REALISTIC, "tset")


def test_explain_when_workflow_stops_the_pipeline() -> None:
    text = "\n".join(explain("workflow:\n  rules:\n    - when: never\na:\n  script: x\n", "a"))
    assert "pipeline NOT created" in text
    assert "not evaluated: the pipeline is not created" in text


# ---- git integration and scale -----------------------------------------------------------------


def test_git_facts_from_a_real_repository(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": "a:\n  script: x\n",
            "src/app.py": "print(1)\n",
            "Dockerfile": "FROM scratch\n",
        },
    )
    (repo / "src" / "new.py").write_text("x = 1\n")
    ctx = detect_context(repo)
    config = pipeline("""
        docker:
          script: x
          rules:
            - exists: [Dockerfile]
        py:
          script: x
          rules:
            - changes: [src/new.py]
        helm:
          script: x
          rules:
            - exists: [chart/**/*.yaml]
        """)
    p = build_plan(config, ctx, facts=GitFacts(ctx))
    assert included(p) == ["docker", "py"]
    assert included(build_plan(config, ctx)) == ["docker", "py"]


def test_thousand_jobs_with_needs() -> None:
    jobs = [make_job("base", "build", parallel=Parallel(count=4))]
    for i in range(1000):
        needs = (Need("base"), Need(f"job{i - 1}")) if i else (Need("base"),)
        jobs.append(
            make_job(
                f"job{i}",
                "test" if i % 2 else "build",
                needs=needs if i % 2 else (Need("base"),),
                variables=(Variable("N", str(i)),),
                rules=(Rule(if_='$CI_COMMIT_BRANCH == "main" && $N != "7"'), Rule(when="manual")),
            )
        )
    p: Plan = build_plan(make_pipeline(*jobs), context(), facts=facts())
    assert len(p.jobs) == 1004
    job = p.job("job999")
    assert job is not None
    assert [n.job for n in job.needs or ()] == [
        "base 1/4",
        "base 2/4",
        "base 3/4",
        "base 4/4",
        "job998",
    ]
    seven = p.job("job7")
    assert seven is not None and seven.when == "manual"
    assert len(included(select_jobs(p, names=["job999"], with_needs=True))) == 6
