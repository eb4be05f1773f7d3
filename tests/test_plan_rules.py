"""Inclusion decisions: only/except, rules, workflow:rules, when and allow_failure defaults."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from planfactory import context, pipeline, plan

from localci.config.model import AllowFailure
from localci.errors import GitError, PlanError
from localci.plan import build_plan
from localci.plan.context import PipelineContext
from localci.plan.rules import ref_matches, source_names

WORKFLOW_ALWAYS = """\
workflow:
  rules:
    - when: always
"""


def config(fragment: str, top: str = "") -> str:
    """A pipeline with one job `job` whose extra keywords are `fragment`."""
    body = textwrap.indent(textwrap.dedent(fragment).strip("\n"), "  ")
    return f"{textwrap.dedent(top)}\njob:\n  script: echo hi\n{body}\n"


def decide(fragment: str, top: str = "", **kwargs: Any) -> tuple[bool, str, AllowFailure]:
    job = plan(config(fragment, top), **kwargs).job("job")
    assert job is not None
    return job.included, job.when, job.allow_failure


# ---- only / except -----------------------------------------------------------------------------

MR: dict[str, Any] = {"source": "merge_request_event", "ref": "feature/x"}
ONLY_EXCEPT: list[tuple[str, str, str, dict[str, Any], bool]] = [
    ("default-branch-push", "", "", {}, True),
    ("default-tag", "", "", {"ref": "v1.0", "tag": True}, True),
    ("default-schedule", "", "", {"source": "schedule"}, True),
    ("default-not-in-mr", "", "", MR, False),
    ("workflow-rules-drop-default", "", WORKFLOW_ALWAYS, MR, True),
    ("only-name-match", "only: [main]", "", {}, True),
    ("only-name-other-branch", "only: [main]", "", {"ref": "feature/x"}, False),
    ("only-name-is-not-prefix", "only: [mai]", "", {}, False),
    ("only-branches-on-tag", "only: [branches]", "", {"ref": "v1", "tag": True}, False),
    ("only-branches-on-branch", "only: [branches]", "", {"ref": "dev"}, True),
    ("only-branches-not-mr", "only: [branches]", "", MR, False),
    ("only-tags-on-tag", "only: [tags]", "", {"ref": "v1", "tag": True}, True),
    ("only-tags-on-branch", "only: [tags]", "", {}, False),
    ("only-regex-match", "only: ['/^release-.*$/']", "", {"ref": "release-1.2"}, True),
    ("only-regex-no-match", "only: ['/^release-.*$/']", "", {}, False),
    ("only-regex-unanchored", "only: ['/feature/']", "", {"ref": "my-feature/x"}, True),
    ("only-regex-flags", "only: ['/^MAIN$/i']", "", {}, True),
    ("only-regex-tag", "only: ['/^v\\d+/']", "", {"ref": "v12", "tag": True}, True),
    ("only-schedules", "only: [schedules]", "", {"source": "schedule"}, True),
    ("only-schedules-on-push", "only: [schedules]", "", {}, False),
    ("only-pushes", "only: [pushes]", "", {}, True),
    ("only-push-singular", "only: [push]", "", {}, True),
    ("only-merge-requests", "only: [merge_requests]", "", MR, True),
    ("only-merge-requests-on-push", "only: [merge_requests]", "", {}, False),
    ("only-web", "only: [web]", "", {"source": "web"}, True),
    ("only-api", "only: [api]", "", {"source": "api"}, True),
    ("only-triggers", "only: [triggers]", "", {"source": "trigger"}, True),
    ("only-pipelines", "only: [pipelines]", "", {"source": "pipeline"}, True),
    ("only-chat", "only: [chat]", "", {"source": "chat"}, True),
    (
        "only-external-prs",
        "only: [external_pull_requests]",
        "",
        {"source": "external_pull_request_event"},
        True,
    ),
    ("only-project-path", "only: [main@group/project]", "", {}, True),
    ("only-other-project", "only: [main@other/project]", "", {}, False),
    ("only-branches-other-project", "only: [branches@fork/project]", "", {}, False),
    ("only-string-form", "only: main", "", {}, True),
    ("except-name-match", "except: [main]", "", {}, False),
    ("except-name-other", "except: [main]", "", {"ref": "feature/x"}, True),
    ("except-tags-on-tag", "except: [tags]", "", {"ref": "v1", "tag": True}, False),
    ("except-alone-keeps-default-only", "except: [main]", "", MR, False),
    ("except-alone-workflow-rules", "except: [main]", WORKFLOW_ALWAYS, MR, True),
    ("except-schedules", "except: [schedules]", "", {"source": "schedule"}, False),
    ("only-and-except", "only: [branches]\nexcept: ['/^wip-/']", "", {"ref": "wip-1"}, False),
    ("only-and-except-pass", "only: [branches]\nexcept: ['/^wip-/']", "", {"ref": "w-1"}, True),
    (
        "only-variables-true",
        'only:\n  variables: [$RELEASE == "yes"]',
        "variables:\n  RELEASE: 'yes'",
        {},
        True,
    ),
    ("only-variables-false", 'only:\n  variables: [$RELEASE == "yes"]', "", {}, False),
    ("only-variables-or", "only:\n  variables: [$A, $B]", "variables:\n  B: '1'", {}, True),
    (
        "only-variables-user-var",
        "only:\n  variables: [$DEPLOY]",
        "",
        {"user": {"DEPLOY": "1"}},
        True,
    ),
    (
        "only-variables-job-var",
        "variables:\n  X: go\nonly:\n  variables: [$X == 'go']",
        "",
        {},
        True,
    ),
    (
        "only-variables-predefined",
        "only:\n  variables: [$CI_COMMIT_BRANCH == 'main']",
        "",
        {},
        True,
    ),
    ("only-refs-and-variables-all", "only:\n  refs: [main]\n  variables: [$X]", "", {}, False),
    (
        "only-refs-and-variables-both",
        "only:\n  refs: [main]\n  variables: [$X]",
        "variables:\n  X: '1'",
        {},
        True,
    ),
    (
        "except-keys-any",
        "except:\n  refs: [main]\n  variables: [$X]",
        "variables:\n  X: '1'",
        {"ref": "feature/x"},
        False,
    ),
    (
        "except-keys-none",
        "except:\n  refs: [main]\n  variables: [$X]",
        "",
        {"ref": "feature/x"},
        True,
    ),
    ("only-changes-no-push-info", "only:\n  changes: ['src/**/*']", "", {"changed": None}, True),
    (
        "only-changes-no-match",
        "only:\n  changes: ['src/**/*']",
        "",
        {"changed": ["docs/a.md"]},
        False,
    ),
    (
        "only-changes-match",
        "only:\n  changes: ['src/**/*.py']",
        "",
        {"changed": ["src/a/b.py"]},
        True,
    ),
    ("only-changes-empty-diff", "only:\n  changes: ['src/**/*']", "", {"changed": []}, False),
    (
        "except-changes-no-push-info",
        "except:\n  changes: ['docs/**/*']",
        "",
        {"changed": None},
        False,
    ),
    (
        "except-changes-other-files",
        "except:\n  changes: ['docs/**/*']",
        "",
        {"changed": ["src/x.py"]},
        True,
    ),
    (
        "except-changes-matching",
        "except:\n  changes: ['docs/**/*']",
        "",
        {"changed": ["docs/x.md"]},
        False,
    ),
    ("only-kubernetes", "only:\n  kubernetes: active", "", {}, False),
    ("except-kubernetes", "except:\n  kubernetes: active", "", {}, True),
]


@pytest.mark.parametrize(
    ("fragment", "top", "kwargs", "expected"),
    [case[1:] for case in ONLY_EXCEPT],
    ids=[c[0] for c in ONLY_EXCEPT],
)
def test_only_except(fragment: str, top: str, kwargs: dict[str, Any], expected: bool) -> None:
    assert decide(fragment, top, **kwargs)[0] is expected


def test_only_except_reason_names_the_ref() -> None:
    job = plan(config("only: [main]"), "feature/x").job("job")
    assert job is not None
    assert job.reason == "only: refs [main] did not match branch 'feature/x' (source push)"
    job = plan(config(""), "feature/x").job("job")
    assert job is not None and "default only" in job.reason


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("push", {"push", "pushes"}),
        ("schedule", {"schedule", "schedules"}),
        ("merge_request_event", {"merge_request_event", "merge_request", "merge_requests"}),
    ],
)
def test_source_names(source: str, names: set[str]) -> None:
    assert names <= source_names(source)


def test_invalid_regex_ref_compares_literally() -> None:
    ctx: PipelineContext = context("main")
    assert ref_matches("/[/", ctx) is False


# ---- rules -------------------------------------------------------------------------------------

RULES: list[tuple[str, str, str, dict[str, Any], tuple[bool, str]]] = [
    (
        "if-branch-match",
        'rules:\n  - if: $CI_COMMIT_BRANCH == "main"',
        "",
        {},
        (True, "on_success"),
    ),
    (
        "if-branch-no-match",
        'rules:\n  - if: $CI_COMMIT_BRANCH == "main"',
        "",
        {"ref": "feature/x"},
        (False, "never"),
    ),
    (
        "if-tag",
        "rules:\n  - if: $CI_COMMIT_TAG",
        "",
        {"ref": "v1", "tag": True},
        (True, "on_success"),
    ),
    ("if-tag-on-branch", "rules:\n  - if: $CI_COMMIT_TAG", "", {}, (False, "never")),
    (
        "if-default-branch",
        "rules:\n  - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
        "",
        {},
        (True, "on_success"),
    ),
    (
        "if-mr-source",
        'rules:\n  - if: $CI_PIPELINE_SOURCE == "merge_request_event"',
        "",
        MR,
        (True, "on_success"),
    ),
    (
        "if-regex",
        "rules:\n  - if: $CI_COMMIT_REF_NAME =~ /^rel/",
        "",
        {"ref": "release"},
        (True, "on_success"),
    ),
    ("when-never", "rules:\n  - when: never", "", {}, (False, "never")),
    (
        "first-match-wins-never",
        "rules:\n  - if: $CI_COMMIT_BRANCH == 'main'\n    when: never\n  - when: always",
        "",
        {},
        (False, "never"),
    ),
    (
        "first-match-wins-fallthrough",
        "rules:\n  - if: $CI_COMMIT_BRANCH == 'main'\n    when: never\n  - when: always",
        "",
        {"ref": "dev"},
        (True, "always"),
    ),
    ("empty-rules", "rules: []", "", {}, (False, "never")),
    ("rules-in-mr-pipeline", "rules:\n  - when: on_success", "", MR, (True, "on_success")),
    (
        "job-when-default",
        "when: always\nrules:\n  - if: $CI_COMMIT_BRANCH",
        "",
        {},
        (True, "always"),
    ),
    (
        "rule-when-wins",
        "when: always\nrules:\n  - if: $CI_COMMIT_BRANCH\n    when: on_failure",
        "",
        {},
        (True, "on_failure"),
    ),
    (
        "changes-no-push-info",
        "rules:\n  - changes: [src/**/*]",
        "",
        {"changed": None},
        (True, "on_success"),
    ),
    (
        "changes-no-match",
        "rules:\n  - changes: [src/**/*]",
        "",
        {"changed": ["README.md"]},
        (False, "never"),
    ),
    (
        "changes-match",
        "rules:\n  - changes: ['**/*.py']",
        "",
        {"changed": ["a/b/c.py"]},
        (True, "on_success"),
    ),
    (
        "changes-star-no-slash",
        "rules:\n  - changes: ['*.py']",
        "",
        {"changed": ["a/c.py"]},
        (False, "never"),
    ),
    (
        "changes-paths-form",
        "rules:\n  - changes:\n      paths: [Dockerfile]",
        "",
        {"changed": ["Dockerfile"]},
        (True, "on_success"),
    ),
    (
        "changes-compare-to",
        "rules:\n  - changes:\n      paths: [src/*]\n      compare_to: refs/heads/main",
        "",
        {"changed": [], "compared": {"refs/heads/main": ["src/a"]}},
        (True, "on_success"),
    ),
    (
        "changes-compare-to-no-match",
        "rules:\n  - changes:\n      paths: [src/*]\n      compare_to: main",
        "",
        {"changed": ["src/a"], "compared": {"main": ["docs/b"]}},
        (False, "never"),
    ),
    (
        "changes-variable-path",
        "rules:\n  - changes: ['$DIR/**/*']",
        "variables:\n  DIR: app",
        {"changed": ["app/x/y.txt"]},
        (True, "on_success"),
    ),
    (
        "changes-braced-variable",
        "rules:\n  - changes: ['${DIR}/*']",
        "variables:\n  DIR: app",
        {"changed": ["app/y.txt"]},
        (True, "on_success"),
    ),
    (
        "changes-undefined-variable-literal",
        "rules:\n  - changes: ['$NOPE/*']",
        "",
        {"changed": ["app/y.txt"]},
        (False, "never"),
    ),
    (
        "exists-file",
        "rules:\n  - exists: [Dockerfile]",
        "",
        {"files": ["Dockerfile"]},
        (True, "on_success"),
    ),
    (
        "exists-missing",
        "rules:\n  - exists: [Dockerfile]",
        "",
        {"files": ["src/a.py"]},
        (False, "never"),
    ),
    (
        "exists-glob",
        "rules:\n  - exists: ['**/*.py']",
        "",
        {"files": ["src/pkg/a.py"]},
        (True, "on_success"),
    ),
    (
        "exists-top-level-glob",
        "rules:\n  - exists: ['*.toml']",
        "",
        {"files": ["a/b.toml"]},
        (False, "never"),
    ),
    (
        "exists-variable",
        "rules:\n  - exists: ['$APP/setup.py']",
        "variables:\n  APP: srv",
        {"files": ["srv/setup.py"]},
        (True, "on_success"),
    ),
    (
        "exists-directory",
        "rules:\n  - exists: [docs/]",
        "",
        {"files": ["docs/a/index.md"]},
        (True, "on_success"),
    ),
    (
        "if-and-changes-both-needed",
        "rules:\n  - if: $CI_COMMIT_TAG\n    changes: [src/*]",
        "",
        {"changed": None},
        (False, "never"),
    ),
    (
        "if-and-exists",
        "rules:\n  - if: $CI_COMMIT_BRANCH\n    exists: [a]",
        "",
        {"files": ["a"]},
        (True, "on_success"),
    ),
    (
        "rule-variables-not-visible-to-own-if",
        "rules:\n  - if: $X == \"1\"\n    variables:\n      X: '1'",
        "",
        {},
        (False, "never"),
    ),
    (
        "if-reads-raw-values",
        'rules:\n  - if: $A == "$B"',
        "variables:\n  A: $B\n  B: expanded",
        {},
        (True, "on_success"),
    ),
    (
        "if-sees-job-variables",
        "variables:\n  MODE: fast\nrules:\n  - if: $MODE == 'fast'",
        "",
        {},
        (True, "on_success"),
    ),
    (
        "if-sees-job-name",
        "rules:\n  - if: $CI_JOB_NAME == 'job' && $CI_JOB_STAGE == 'test'",
        "",
        {},
        (True, "on_success"),
    ),
    ("if-does-not-see-job-only", "rules:\n  - if: $CI_PIPELINE_ID", "", {}, (False, "never")),
    (
        "if-user-var-beats-yaml",
        "rules:\n  - if: $TARGET == 'prod'",
        "variables:\n  TARGET: staging",
        {"user": {"TARGET": "prod"}},
        (True, "on_success"),
    ),
    ("if-undefined-is-null", "rules:\n  - if: $NOPE == null", "", {}, (True, "on_success")),
    ("rules-manual", "rules:\n  - when: manual", "", {}, (True, "manual")),
    (
        "rules-delayed",
        "rules:\n  - when: delayed\n    start_in: 5 minutes",
        "",
        {},
        (True, "delayed"),
    ),
]


@pytest.mark.parametrize(
    ("fragment", "top", "kwargs", "expected"),
    [case[1:] for case in RULES],
    ids=[c[0] for c in RULES],
)
def test_rules(fragment: str, top: str, kwargs: dict[str, Any], expected: tuple[bool, str]) -> None:
    included, when, _ = decide(fragment, top, **kwargs)
    assert (included, when) == expected


def test_rule_reason_is_one_line() -> None:
    job = plan(
        config("rules:\n  - if: $CI_COMMIT_TAG\n  - if: $CI_COMMIT_BRANCH == 'main'"),
    ).job("job")
    assert job is not None
    assert job.reason == "rules[1]: if $CI_COMMIT_BRANCH == 'main' matched"
    job = plan(config("rules:\n  - if: $CI_COMMIT_TAG")).job("job")
    assert job is not None and job.reason.startswith("rules: none of the 1 rule")


def test_rules_evaluation_error_is_a_plan_error() -> None:
    text = config("rules:\n  - if: $VALUE =~ true")
    with pytest.raises(PlanError) as caught:
        plan(text, user={"VALUE": "x"})
    problem = caught.value.problems[0]
    assert problem.job == "job"
    assert "Failed to parse rule for job" in problem.message


# ---- when / allow_failure / start_in / needs / variables from rules ---------------------------

ALLOW: list[tuple[str, str, tuple[str, AllowFailure]]] = [
    ("default", "", ("on_success", AllowFailure(False))),
    ("job-manual", "when: manual", ("manual", AllowFailure(True))),
    (
        "job-manual-explicit-false",
        "when: manual\nallow_failure: false",
        ("manual", AllowFailure(False)),
    ),
    ("rules-manual", "rules:\n  - when: manual", ("manual", AllowFailure(False))),
    (
        "rules-manual-allowed",
        "rules:\n  - when: manual\n    allow_failure: true",
        ("manual", AllowFailure(True)),
    ),
    (
        "job-manual-rule-inherits",
        "when: manual\nrules:\n  - if: $CI_COMMIT_BRANCH",
        ("manual", AllowFailure(True)),
    ),
    ("job-allow", "allow_failure: true", ("on_success", AllowFailure(True))),
    (
        "job-exit-codes",
        "allow_failure:\n  exit_codes: [3, 4]",
        ("on_success", AllowFailure(False, (3, 4))),
    ),
    (
        "rule-overrides-exit-codes",
        "allow_failure:\n  exit_codes: [3]\nrules:\n  - allow_failure: true",
        ("on_success", AllowFailure(True)),
    ),
    (
        "rule-false-overrides-job-true",
        "allow_failure: true\nrules:\n  - allow_failure: false",
        ("on_success", AllowFailure(False)),
    ),
    (
        "rule-without-allow-keeps-job",
        "allow_failure: true\nrules:\n  - when: always",
        ("always", AllowFailure(True)),
    ),
    ("only-manual", "only: [main]\nwhen: manual", ("manual", AllowFailure(True))),
]


@pytest.mark.parametrize(
    ("fragment", "expected"), [c[1:] for c in ALLOW], ids=[c[0] for c in ALLOW]
)
def test_when_and_allow_failure(fragment: str, expected: tuple[str, AllowFailure]) -> None:
    included, when, allow = decide(fragment)
    assert included
    assert (when, allow) == expected


def test_start_in_only_for_delayed() -> None:
    p = plan("""
        a:
          script: x
          when: delayed
          start_in: 10 seconds
        b:
          script: x
          rules:
            - when: delayed
              start_in: 1 hour
        c:
          script: x
          rules:
            - when: on_success
              start_in: 1 hour
        """)
    assert [(j.name, j.start_in) for j in p.jobs] == [
        ("a", "10 seconds"),
        ("b", "1 hour"),
        ("c", None),
    ]


def test_rule_delayed_without_start_in_is_an_error() -> None:
    with pytest.raises(PlanError, match="start_in should be specified"):
        plan(config("rules:\n  - when: delayed"))


NEEDS_BASE = """
stages: [build, test]
build:
  stage: build
  script: x
other:
  stage: build
  script: x
"""


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("needs: [build]\nrules:\n  - needs: [other]", ("other",)),
        (
            "needs: [build]\nrules:\n  - if: $CI_COMMIT_TAG\n    needs: [other]\n  - when: always",
            ("build",),
        ),
        ("rules:\n  - needs: [build, other]", ("build", "other")),
        ("needs: [build]\nrules:\n  - needs: []", ()),
        ("rules:\n  - needs: []", None),  # GitLab keeps the stage scheduling of a stage job
        ("rules:\n  - when: always", None),
    ],
)
def test_rule_needs_replace_job_needs(fragment: str, expected: tuple[str, ...] | None) -> None:
    job = plan(NEEDS_BASE + config(fragment)).job("job")
    assert job is not None
    got = None if job.needs is None else tuple(n.job for n in job.needs)
    assert got == expected


def test_rule_variables_override_job_and_globals() -> None:
    p = plan(
        config(
            """
        variables:
          A: job
          B: job
        rules:
          - if: $A == "job"
            variables:
              B: rule
              C: rule
        """,
            "variables:\n  A: global\n  B: global\n  D: global",
        )
    )
    job = p.job("job")
    assert job is not None
    assert {k: v.value for k, v in job.yaml_variables.items()} == {
        "A": "job",
        "B": "rule",
        "C": "rule",
        "D": "global",
    }


# ---- workflow ----------------------------------------------------------------------------------

WORKFLOW_MAIN = """
workflow:
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - if: $CI_COMMIT_BRANCH == "main"
      variables:
        DEPLOY: "yes"
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
variables:
  DEPLOY: "no"
"""


@pytest.mark.parametrize(
    ("kwargs", "created"),
    [
        ({}, True),
        ({"ref": "feature/x"}, False),
        ({"ref": "v1", "tag": True}, False),
        (MR, True),
    ],
)
def test_workflow_rules_decide_creation(kwargs: dict[str, Any], created: bool) -> None:
    p = plan(WORKFLOW_MAIN + config(""), **kwargs)
    assert p.created is created
    assert all(job.included is created for job in p.jobs)
    if not created:
        assert p.stages == ()
        assert "pipeline not created" in p.jobs[0].reason


def test_workflow_reason_texts() -> None:
    assert plan(WORKFLOW_MAIN + config(""), "feature/x").workflow_reason == (
        "workflow:rules: none of the 3 rule(s) matched"
    )
    tag = plan(WORKFLOW_MAIN + config(""), "v1", tag=True).workflow_reason
    assert tag == "workflow:rules[0]: if $CI_COMMIT_TAG, when: never matched: when: never"
    assert plan(config(""), "x").workflow_reason == "no workflow:rules"


def test_workflow_variables_override_globals_and_reach_job_rules() -> None:
    text = WORKFLOW_MAIN + config('rules:\n  - if: $DEPLOY == "yes"')
    job = plan(text).job("job")
    assert job is not None and job.included
    assert job.yaml_variables["DEPLOY"].value == "yes"
    mr_job = plan(text, **MR).job("job")
    assert mr_job is not None and not mr_job.included


def test_workflow_name_is_expanded() -> None:
    p = plan(
        """
        variables:
          KIND: nightly
        workflow:
          name: "  $KIND for $CI_COMMIT_REF_NAME  "
          rules:
            - when: always
        job:
          script: x
        """,
        "dev",
    )
    assert p.name == "nightly for dev"
    job = p.job("job")
    assert job is not None and job.predefined["CI_PIPELINE_NAME"] == "nightly for dev"


def test_rule_error_names_the_rule() -> None:
    text = config("rules:\n  - if: $CI_COMMIT_TAG\n  - if: $VALUE =~ true")
    with pytest.raises(PlanError) as caught:
        plan(text, user={"VALUE": "x"})
    problem = caught.value.problems[0]
    assert problem.path == "rules[1]"
    assert problem.message.startswith("Failed to parse rule for job: `$VALUE =~ true`")
    assert problem.location is not None and problem.location.line == 6


def test_only_variables_syntax_error_is_reported() -> None:
    with pytest.raises(PlanError) as caught:
        plan(config("only:\n  variables: ['$A = \"x\"']"))
    problem = caught.value.problems[0]
    assert problem.path == "only:variables"
    assert "Invalid CI expression" in problem.message


def test_only_variables_evaluation_error_counts_as_false() -> None:
    assert decide("only:\n  variables: ['$A =~ true', '$B']", "variables:\n  B: '1'")[0]
    assert not decide("only:\n  variables: ['$A =~ true']", "variables:\n  A: x")[0]


def test_workflow_rule_error() -> None:
    with pytest.raises(PlanError) as caught:
        plan("workflow:\n  rules:\n    - if: $A =~ true\n" + config(""), user={"A": "x"})
    problem = caught.value.problems[0]
    assert problem.path == "workflow:rules[0]"
    assert problem.message.startswith("Failed to parse workflow rule: `$A =~ true`")


class _NoRefFacts:
    def changed_paths(self, compare_to: str | None) -> frozenset[str] | None:
        raise GitError(f"rules:changes:compare_to {compare_to!r} is not a branch, tag or commit")

    def files(self) -> list[str]:
        return []


def test_unknown_compare_to_is_a_rule_error_with_a_hint() -> None:
    config_text = config("rules:\n  - changes:\n      paths: [a]\n      compare_to: develop")
    with pytest.raises(PlanError) as caught:
        build_plan(pipeline(config_text), context(), facts=_NoRefFacts())
    problem = caught.value.problems[0]
    assert "compare_to 'develop'" in problem.message
    assert problem.hint is not None and "--changes-since" in problem.hint
