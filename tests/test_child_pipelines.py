"""Child pipelines (`trigger:`) run for real: real git repositories, real bash, real records."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import make_repo, processes_with, run_cli
from tests.test_external_includes import Server, server  # noqa: F401


def report(repo: Path, *args: str) -> tuple[int, dict, str]:
    out = repo.parent / "report.json"
    out.unlink(missing_ok=True)
    result = run_cli(repo, "run", "--no-tty", "--json-report", str(out), *args)
    data = json.loads(out.read_text()) if out.exists() else {}
    return result.exit_code, data, result.output


def job(data: dict, name: str) -> dict:
    return next(j for j in data["jobs"] if j["name"] == name)


def child_jobs(data: dict, trigger: str) -> dict[str, dict]:
    return {j["name"]: j for j in job(data, trigger)["downstream"]["jobs"]}


FAILING_CHILD = """
child-test:
  script:
    - echo "in the child"
    - exit 1
"""


def test_a_failing_child_fails_the_parent_only_with_strategy_depend(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                independent:
                  trigger:
                    include: child.yml
                dependent:
                  trigger:
                    include:
                      - local: child.yml
                    strategy: depend
                mirroring:
                  trigger:
                    include: child.yml
                    strategy: mirror
            """,
            "child.yml": FAILING_CHILD,
        },
    )
    code, data, output = report(repo, "independent")
    assert code == 0, output
    assert data["status"] == "success"
    assert job(data, "independent")["status"] == "success"
    downstream = job(data, "independent")["downstream"]
    assert downstream["status"] == "failed"  # never hidden, although it does not count
    assert child_jobs(data, "independent")["child-test"]["status"] == "failed"
    assert "independent > child-test" in output
    assert "child pipeline" in output and "failed" in output

    code, data, output = report(repo, "mirroring")
    assert code == 1, output
    assert job(data, "mirroring")["status"] == "failed"
    assert job(data, "mirroring")["downstream"]["strategy"] == "mirror"

    code, data, output = report(repo, "dependent")
    assert code == 1, output
    assert data["status"] == "failed"
    assert job(data, "dependent")["status"] == "failed"
    assert "in the child" in Path(child_jobs(data, "dependent")["child-test"]["log"]).read_text()
    assert "Pipeline #" in output and "passed" not in output.splitlines()[-2]


def test_dynamic_child_generated_by_a_job_fails_the_run(tmp_path: Path) -> None:
    """The issue's false green: a generated child that exits 1 under strategy: depend."""
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                stages: [generate, run]
                generate:
                  stage: generate
                  script:
                    - |
                      cat > generated.yml <<'YAML'
                      generated-job:
                        script:
                          - echo "generated for $TARGET"
                          - exit 1
                      YAML
                  artifacts:
                    paths: [generated.yml]
                run-generated:
                  stage: run
                  needs: [generate]
                  variables:
                    TARGET: linux
                  trigger:
                    include:
                      - artifact: generated.yml
                        job: generate
                    strategy: depend
            """,
        },
    )
    code, data, output = report(repo)
    assert code == 1, output
    assert data["status"] == "failed"
    assert job(data, "run-generated")["status"] == "failed"
    child = child_jobs(data, "run-generated")["generated-job"]
    assert child["status"] == "failed"
    assert "generated for linux" in Path(child["log"]).read_text()
    logs = run_cli(repo, "logs")
    assert "run-generated > generated-job" in logs.stdout
    assert "generated for linux" in run_cli(repo, "logs", "run-generated > generated-job").stdout
    assert "generated for linux" in run_cli(repo, "logs", "generated-job").stdout
    # the page: `localci report` rewrites the parent's page (not the child's, numbered later),
    # with the child drawn under its trigger job and named by its number
    child_id = job(data, "run-generated")["downstream"]["pipeline"]
    page = run_cli(repo, "report")
    assert page.exit_code == 0, page.output
    assert page.stdout.strip().endswith("pipelines/1/pipeline.html")
    html = Path(page.stdout.strip()).read_text()
    assert f"pipeline #{child_id}</h3>" in html and "generated-job" in html


def test_child_variables_source_workflow_and_forwarding(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                variables:
                  GLOBAL_VAR: from-global
                default:
                  before_script: [echo parent default]
                plain:
                  variables:
                    PARENT_PIPELINE_ID: $CI_PIPELINE_ID
                    OVERRIDDEN: by-trigger
                  trigger:
                    include: [child-a.yml, child-b.yml]
                    strategy: depend
                no-yaml:
                  variables:
                    OVERRIDDEN: by-trigger
                  trigger:
                    include: child-a.yml
                    forward:
                      yaml_variables: false
                      pipeline_variables: true
                    strategy: depend
            """,
            "child-a.yml": """
                workflow:
                  rules:
                    - if: $CI_PIPELINE_SOURCE == "parent_pipeline"
                variables:
                  OVERRIDDEN: by-child-yaml
                show-a:
                  script:
                    - echo "source=$CI_PIPELINE_SOURCE parent=$PARENT_PIPELINE_ID"
                    - echo "global=$GLOBAL_VAR overridden=$OVERRIDDEN cli=$CLI_VAR"
            """,
            "child-b.yml": """
                show-b:
                  rules:
                    - if: $CI_PIPELINE_SOURCE == "push"
                      when: never
                    - when: on_success
                  script: [echo second file]
            """,
        },
    )
    code, data, output = report(repo, "--var", "CLI_VAR=from-cli")
    assert code == 0, output
    plain = child_jobs(data, "plain")
    assert set(plain) == {"show-a", "show-b"}
    log = Path(plain["show-a"]["log"]).read_text()
    assert "source=parent_pipeline parent=1" in log
    # trigger variables beat the child's YAML; --var is not forwarded by default
    assert "global=from-global overridden=by-trigger cli=\n" in log
    assert "parent default" not in log  # `default:` is not passed down
    log = Path(child_jobs(data, "no-yaml")["show-a"]["log"]).read_text()
    assert "global= overridden=by-child-yaml cli=from-cli" in log


def test_workflow_rules_filtering_the_child_fail_the_trigger(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                trigger-it:
                  trigger:
                    include: child.yml
            """,
            "child.yml": """
                workflow:
                  rules:
                    - if: $CI_PIPELINE_SOURCE == "push"
                never-here:
                  script: [echo no]
            """,
        },
    )
    code, data, output = report(repo)
    assert code == 1, output
    assert job(data, "trigger-it")["status"] == "failed"
    assert "could not be created" in job(data, "trigger-it")["reason"]


def test_needs_pipeline_artifacts_come_from_the_parent(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                stages: [build, deploy]
                build:
                  stage: build
                  script:
                    - mkdir -p dist && echo "built in the parent" > dist/app.txt
                    - echo "BUILD_VERSION=1.2.3" > build.env
                  artifacts:
                    paths: [dist/]
                    reports:
                      dotenv: build.env
                deploy:
                  stage: deploy
                  variables:
                    PARENT_PIPELINE_ID: $CI_PIPELINE_ID
                  trigger:
                    include: deploy.yml
                    strategy: depend
            """,
            "deploy.yml": """
                use-build:
                  needs:
                    - pipeline: $PARENT_PIPELINE_ID
                      job: build
                  script:
                    - cat dist/app.txt
                    - echo "version=$BUILD_VERSION"
                    - test "$CI_PIPELINE_ID" != "$PARENT_PIPELINE_ID"
            """,
        },
    )
    code, data, output = report(repo)
    assert code == 0, output
    log = Path(child_jobs(data, "deploy")["use-build"]["log"]).read_text()
    assert "built in the parent" in log
    assert "version=1.2.3" in log


def test_nesting_stops_at_grandchildren_with_gitlabs_error(tmp_path: Path) -> None:
    def level(name: str, next_file: str) -> str:
        return f"""
            {name}:
              script: [echo at {name}]
            down-from-{name}:
              trigger:
                include: {next_file}
                strategy: depend
        """

    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": level("parent", "child.yml"),
            "child.yml": level("child", "grandchild.yml"),
            "grandchild.yml": level("grandchild", "too-deep.yml"),
            "too-deep.yml": "never:\n  script: [echo never]\n",
        },
    )
    code, data, output = report(repo)
    assert code == 1, output
    child = child_jobs(data, "down-from-parent")
    grandchild = {j["name"]: j for j in child["down-from-child"]["downstream"]["jobs"]}
    assert grandchild["grandchild"]["status"] == "success"
    deepest = grandchild["down-from-grandchild"]
    assert deepest["status"] == "failed"
    assert deepest["reason"] == "You reached the maximum depth of child pipelines"
    assert "down-from-parent > down-from-child > grandchild" in output


def test_unmapped_multi_project_trigger_is_never_reported_as_passed(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                build:
                  script: [echo build]
                deploy-other:
                  trigger:
                    project: group/other
                    strategy: depend
            """,
        },
    )
    code, data, output = report(repo)
    assert code == 1, output
    assert data["status"] == "unknown"
    assert "result unknown" in output
    assert "passed in" not in output
    assert "not run: downstream project pipeline" in job(data, "deploy-other")["reason"]

    (repo / ".gitlab-ci.yml").write_text(
        "build:\n  script: [echo build]\nnotify:\n  trigger: group/other\n"
    )
    code, data, output = report(repo)
    assert code == 0, output
    assert "not run" in output


def test_list_json_explain_and_graph_show_child_pipelines(tmp_path: Path) -> None:
    shared = make_repo(
        tmp_path / "shared",
        {
            "templates/child.yml": """
                spec:
                  inputs:
                    target:
                      default: nowhere
                ---
                deploy-$[[ inputs.target ]]:
                  script:
                    - echo deploy to $[[ inputs.target ]]
            """,
        },
        remote=None,
    )
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                stages: [build, deploy]
                gen:
                  stage: build
                  script:
                    - |
                      printf 'x:\\n  script: [exit 0]\\n' > gen.yml
                  artifacts: {paths: [gen.yml]}
                from-project:
                  stage: deploy
                  trigger:
                    include:
                      - project: group/shared
                        file: templates/child.yml
                        inputs:
                          target: staging
                    strategy: depend
                dynamic:
                  stage: deploy
                  trigger:
                    include:
                      - artifact: gen.yml
                        job: gen
                other-project:
                  stage: deploy
                  trigger:
                    project: group/other
                    branch: main
            """,
        },
    )
    mapping = ("--include-map", f"group/shared={shared}")
    listed = run_cli(repo, "list", "--json", *mapping)
    assert listed.exit_code == 0, listed.output
    jobs = {j["name"]: j for j in json.loads(listed.stdout)}
    assert "child" not in jobs["gen"]
    child = jobs["from-project"]["child"]
    assert child["planned"] is True and child["strategy"] == "depend"
    assert [j["name"] for j in child["jobs"]] == ["deploy-staging"]
    assert jobs["dynamic"]["child"]["planned"] is False
    assert "dynamic child pipeline, generated by gen" in jobs["dynamic"]["child"]["reason"]
    assert jobs["other-project"]["child"]["kind"] == "project"

    explained = run_cli(repo, "explain", "from-project", *mapping)
    assert "child pipeline of 1 job(s): deploy-staging" in explained.stdout
    graph = run_cli(repo, "graph", *mapping)
    assert "dynamic triggers artifact gen.yml of job gen" in graph.stdout
    mermaid = run_cli(repo, "graph", "--format", "mermaid", *mapping).stdout
    assert 'subgraph c0["child pipeline of from-project"]' in mermaid
    assert 'c0j0["deploy-staging"]' in mermaid
    dot = run_cli(repo, "graph", "--format", "dot", *mapping).stdout
    assert 'c0j0 [label="deploy-staging"];' in dot and dot.rstrip().endswith("}")
    config = run_cli(repo, "config", "--child", "from-project", *mapping)
    assert config.exit_code == 0, config.output
    assert "deploy-staging:" in config.stdout and "echo deploy to staging" in config.stdout
    assert run_cli(repo, "config", "--child", "dynamic").exit_code == 2

    code, data, output = report(repo, *mapping)
    assert code == 0, output
    log = Path(child_jobs(data, "from-project")["deploy-staging"]["log"]).read_text()
    assert "deploy to staging" in log
    assert child_jobs(data, "dynamic")["x"]["status"] == "success"
    assert "not run: downstream project pipeline" in job(data, "other-project")["reason"]


def test_mapped_multi_project_pipeline_runs_from_the_local_checkout(tmp_path: Path) -> None:
    other = make_repo(
        tmp_path / "other",
        {
            ".gitlab-ci.yml": """
                workflow:
                  rules:
                    - if: $CI_PIPELINE_SOURCE == "pipeline"
                downstream-test:
                  script:
                    - echo "other project on $CI_COMMIT_REF_NAME with $UPSTREAM_VERSION"
                    - test -f other-only.txt
                    - exit 3
            """,
            "other-only.txt": "mine\n",
        },
        remote=None,
    )
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                deploy-other:
                  variables:
                    UPSTREAM_VERSION: "2.0"
                  trigger:
                    project: group/other
                    branch: release
                    strategy: depend
            """,
        },
    )
    code, data, output = report(repo, "--include-map", f"group/other={other}")
    assert code == 1, output
    downstream = job(data, "deploy-other")["downstream"]
    assert downstream["kind"] == "project" and downstream["status"] == "failed"
    log = Path(downstream["jobs"][0]["log"]).read_text()
    assert "other project on release with 2.0" in log
    assert str(other / ".localci") in downstream["jobs"][0]["log"]
    assert "deploy-other > downstream-test" in output


def test_ctrl_c_stops_child_pipelines_too(tmp_path: Path) -> None:
    marker = f"localci-child-sleep-{os.getpid()}"
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                background:
                  trigger:
                    include: child.yml
                depending:
                  trigger:
                    include: child.yml
                    strategy: depend
            """,
            "child.yml": f"""
                sleeper:
                  script: ["exec -a {marker} sleep 300"]
            """,
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "localci", "run", "--no-tty"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(processes_with(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(processes_with(marker)) == 2, "the child jobs did not start"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    time.sleep(0.5)
    assert processes_with(marker) == []
    records = [
        json.loads(path.read_text())
        for path in (repo / ".localci" / "pipelines").glob("*/pipeline.json")
    ]
    assert sorted(r["status"] for r in records) == ["canceled", "canceled", "canceled"], out
    assert "Traceback" not in out


def test_the_live_board_shows_a_childs_jobs_right_after_their_trigger() -> None:
    from rich.console import Console

    from localci.events import JobStarted, PipelineStarted
    from localci.report.live import LiveReporter

    reporter = LiveReporter(Console(file=io.StringIO(), width=100), verbosity=0)
    reporter(
        PipelineStarted(
            1,
            (("a", "s", "on_success"), ("trig", "s", "on_success"), ("b", "s", "on_success")),
            "/tmp",
        )
    )
    reporter(JobStarted("trig > one", "s"))
    reporter(JobStarted("trig > two", "s"))
    assert [view.name for view in reporter.snapshot().jobs] == [
        "a",
        "trig",
        "trig > one",
        "trig > two",
        "b",
    ]


def test_parallel_matrix_trigger_jobs_create_one_child_each(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                deploy:
                  parallel:
                    matrix:
                      - REGION: [eu, us]
                  trigger:
                    include: child.yml
                    strategy: depend
            """,
            "child.yml": 'region-job:\n  script: [echo "deploying to $REGION"]\n',
        },
    )
    code, data, output = report(repo)
    assert code == 0, output
    for region in ("eu", "us"):
        child = child_jobs(data, f"deploy: [{region}]")["region-job"]
        assert f"deploying to {region}" in Path(child["log"]).read_text()


def test_lint_rejects_what_gitlab_rejects_in_trigger(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                t:
                  trigger:
                    include:
                      - artifact: x.yml
                    strategy: wait
                    forward: {yaml_variables: maybe}
            """,
        },
    )
    result = run_cli(repo, "lint")
    assert result.exit_code == 3, result.output
    assert "strategy should be depend or mirror, not 'wait'" in result.output
    assert "must specify the job where to fetch the artifact from" in result.output
    assert "forward should map" in result.output


def test_trigger_include_template_uses_the_include_cache(
    server: Server,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.serve(
        "/raw/master/lib/gitlab/ci/templates/Child.gitlab-ci.yml",
        "from-template:\n  script: [echo built by the template]\n",
    )
    monkeypatch.setenv("LOCALCI_TEMPLATES_URL", f"{server.base}/raw")
    repo = make_repo(
        tmp_path / "repo",
        {
            ".gitlab-ci.yml": """
                t:
                  trigger:
                    include:
                      - template: Child.gitlab-ci.yml
                    strategy: depend
            """,
        },
    )
    code, data, output = report(repo)
    assert code == 0, output
    assert "fetching template Child.gitlab-ci.yml" in output
    log = Path(child_jobs(data, "t")["from-template"]["log"]).read_text()
    assert "built by the template" in log
    server.routes.clear()
    code, data, output = report(repo, "--offline")
    assert code == 0, output
    assert child_jobs(data, "t")["from-template"]["status"] == "success"
