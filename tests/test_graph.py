"""`localci graph`: golden text, Mermaid and DOT outputs; safe ids for awkward job names."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from planfactory import plan
from rich.console import Console

from localci.errors import UsageError
from localci.plan.model import Plan
from localci.report.graph import build_graph, graph_source, mermaid_label, render_graph

PIPELINE = """
stages: [build, test, deploy]
build:
  stage: build
  script: make
lint:
  stage: build
  script: ruff
test:
  stage: test
  parallel: 2
  needs: [build]
  script: pytest
job:
  stage: test
  parallel:
    matrix:
      - X: [a]
        Y: [b, c]
  script: echo
'weird "name" <x> #1 & `y`':
  stage: deploy
  needs: [{job: "test 1/2"}, {job: lint, optional: true}]
  script: echo
deploy:
  stage: deploy
  script: echo
  when: manual
early:
  stage: deploy
  needs: []
  allow_failure: true
  script: echo
left out:
  stage: deploy
  script: echo
  rules: [{when: never}]
"""


@pytest.fixture(scope="module")
def sample() -> Plan:
    return plan(PIPELINE)


def rendered(p: Plan, fmt: str, width: int = 100, **kwargs: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, highlight=False)
    render_graph(p, fmt, console, **kwargs)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


MERMAID = """\
flowchart LR
    subgraph s0["build"]
        direction TB
        j0["build"]
        j1["lint"]
    end
    subgraph s1["test"]
        direction TB
        j2["test 1/2"]
        j3["test 2/2"]
        j4["job: [a, b]"]
        j5["job: [a, c]"]
    end
    subgraph s2["deploy"]
        direction TB
        j6["weird #quot;name#quot; #60;x#62; #35;1 #38; #96;y#96;"]
        j7["deploy"]:::manual
        j8["early"]
    end
    j0 --> j2
    j0 --> j3
    j2 --> j6
    j1 -.-> j6
    classDef manual stroke-dasharray: 5 5
"""


def test_mermaid_golden_needs_edges_only_by_default(sample: Plan) -> None:
    assert rendered(sample, "mermaid") == MERMAID
    assert graph_source(sample, "mermaid") == MERMAID


def test_mermaid_stage_edges_link_stage_mode_jobs_to_the_previous_stage(sample: Plan) -> None:
    edges = [
        line.strip()
        for line in graph_source(sample, "mermaid", stage_edges=True).splitlines()
        if "->" in line
    ]
    assert edges == [
        "j0 --> j2",
        "j0 --> j3",  # needs: [build] only, not lint
        "j0 --> j4",
        "j1 --> j4",
        "j0 --> j5",
        "j1 --> j5",  # stage mode: all of build
        "j2 --> j6",
        "j1 -.-> j6",
        "j2 --> j7",
        "j3 --> j7",
        "j4 --> j7",
        "j5 --> j7",  # deploy: all of test
    ]  # early has `needs: []`: no edge at all


DOT = """\
digraph pipeline {
    rankdir=LR;
    node [shape=box, style="rounded"];
    subgraph cluster_s0 {
        label="build";
        j0 [label="build"];
        j1 [label="lint"];
    }
    subgraph cluster_s1 {
        label="test";
        j2 [label="test 1/2"];
        j3 [label="test 2/2"];
        j4 [label="job: [a, b]"];
        j5 [label="job: [a, c]"];
    }
    subgraph cluster_s2 {
        label="deploy";
        j6 [label="weird \\"name\\" <x> #1 & `y`"];
        j7 [label="deploy", style="rounded,dashed"];
        j8 [label="early"];
    }
    j0 -> j2;
    j0 -> j3;
    j2 -> j6;
    j1 -> j6 [style=dashed];
}
"""


def test_dot_golden(sample: Plan) -> None:
    assert rendered(sample, "dot") == DOT


TEXT = """\
build   test               deploy
──────────────────────────────────────────────────────────────
build   test 1/2           weird "name" <x> #1 & `y`
lint      ← needs: build     ← needs: test 1/2, lint?
        test 2/2           deploy (manual)
          ← needs: build   early (allow failure)
        job: [a, b]          ← needs: nothing (starts at once)
        job: [a, c]
"""

TEXT_NARROW = """\
build
  build
  lint
test
  test 1/2
    ← needs: build
  test 2/2
    ← needs: build
  job: [a, b]
  job: [a, c]
deploy
  weird "name" <x> #1 & `y`
    ← needs: test 1/2, lint?
  deploy (manual)
  early (allow failure)
    ← needs: nothing (starts at once)
"""


def test_text_golden_stages_as_columns(sample: Plan) -> None:
    assert rendered(sample, "text", width=100) == TEXT


def test_text_golden_narrow_terminal_lists_stages_as_sections(sample: Plan) -> None:
    assert rendered(sample, "text", width=50) == TEXT_NARROW


def test_excluded_jobs_and_empty_stages_are_omitted(sample: Plan) -> None:
    for fmt in ("text", "mermaid", "dot"):
        assert "left out" not in rendered(sample, fmt)
    only_test = plan("""
        stages: [build, test, deploy]
        a:
          stage: test
          script: echo
    """)
    assert [stage for stage, _ in build_graph(only_test).stages] == ["test"]
    assert "build" not in rendered(only_test, "mermaid")


def test_special_characters_never_reach_node_ids() -> None:
    p = plan("""
        "a]b|c;d %% e --> f:::g {h} (i)":
          stage: test
          script: echo
        "end":
          stage: test
          needs: ["a]b|c;d %% e --> f:::g {h} (i)"]
          script: echo
        'x\\y "z"':
          stage: deploy
          script: echo
    """)
    mermaid = graph_source(p, "mermaid")
    assert 'j0["a]b|c;d %% e --#62; f:::g {h} (i)"]' in mermaid
    assert 'j1["end"]' in mermaid
    assert 'j2["x\\y #quot;z#quot;"]' in mermaid
    assert "    j0 --> j1\n" in mermaid
    dot = graph_source(p, "dot")
    assert 'j2 [label="x\\\\y \\"z\\""];' in dot
    assert set(build_graph(p).ids.values()) == {"j0", "j1", "j2"}


def test_mermaid_label_escapes() -> None:
    assert mermaid_label('a "b" <c> & #d `e`\nf') == (
        "a #quot;b#quot; #60;c#62; #38; #35;d #96;e#96; f"
    )


def test_no_pipeline_created() -> None:
    p = plan("""
        workflow:
          rules: [{if: '$CI_COMMIT_BRANCH == "nope"'}]
        a:
          script: echo
    """)
    assert "No pipeline is created" in rendered(p, "text")
    assert graph_source(p, "mermaid").startswith("flowchart LR\n    %% no pipeline is created")
    assert "j0" not in graph_source(p, "dot")


def test_unknown_format_is_a_usage_error(sample: Plan) -> None:
    with pytest.raises(UsageError, match="svg"):
        graph_source(sample, "svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_accepts_the_dot_output(sample: Plan) -> None:
    out = subprocess.run(
        ["dot", "-Tplain"],
        input=graph_source(sample, "dot", stage_edges=True),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "node j6 " in out
    assert '"weird \\"name\\" <x> #1 & `y`"' in out
    assert out.count("\nedge ") == 12
