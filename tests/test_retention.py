"""Pruning .localci/pipelines/: the newest runs, their children and the newest artifacts of
every job survive; runs in use are left alone; nothing outside the removed runs changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localci.execute.retention import prune_pipelines
from localci.state import Store
from tests.helpers import make_repo, run_cli


def _pipeline(store: Store, pid: int, *, parent: int | None = None, jobs: tuple[str, ...] = ()):
    directory = store.pipeline_dir(pid)
    (directory / "jobs").mkdir(parents=True)
    record: dict[str, object] = {"id": pid, "status": "success"}
    if parent is not None:
        record["parent"] = {"pipeline": parent, "job": "trigger"}
    (directory / "pipeline.json").write_text(json.dumps(record))
    (directory / "jobs" / "job.log").write_text("x" * 5000)
    for job in jobs:
        (directory / "artifacts" / job).mkdir(parents=True)
        (directory / "artifacts" / job / "manifest.json").write_text("{}")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    found = Store(tmp_path)
    found.ensure()
    (found.path("pipelines") / "counter").write_text("60\n")
    for pid in range(1, 61):
        parent = {5: 4, 59: 58}.get(pid)
        jobs = {3: ("build", "test"), 58: ("test",)}.get(pid, ())
        _pipeline(found, pid, parent=parent, jobs=jobs)
    return found


def _left(store: Store) -> set[int]:
    return {int(p.name) for p in store.path("pipelines").iterdir() if p.name.isdigit()}


def test_keeps_newest_runs_their_children_and_each_jobs_newest_artifacts(store: Store) -> None:
    outcome = prune_pipelines(store, keep=10)
    # top-level: 1..60 without the children 5 and 59; the newest ten are 50..58 and 60
    expected = {*range(50, 61), 3}  # 59 is 58's child; 3 holds the only `build` artifacts
    assert _left(store) == expected
    assert set(outcome.kept) == expected
    assert set(outcome.removed) == set(range(1, 61)) - expected
    assert outcome.freed_bytes > 0 and outcome.busy == ()
    assert (store.path("pipelines") / "counter").read_text() == "60\n"
    assert store.next_pipeline_id() == 61  # ids are never reused
    assert not [p for p in store.path("pipelines").iterdir() if p.name.startswith(".")]


def test_a_run_in_use_is_left_alone_and_reported(store: Store) -> None:
    with store.lock("pipeline-7"), store.lock("artifacts-8", shared=True):
        outcome = prune_pipelines(store, keep=10)
    assert {7, 8} <= _left(store)
    assert set(outcome.busy) == {7, 8}
    assert 7 not in outcome.removed and 6 in outcome.removed


def test_dry_run_changes_nothing(store: Store) -> None:
    outcome = prune_pipelines(store, keep=10, dry_run=True)
    assert _left(store) == set(range(1, 61))
    assert len(outcome.removed) == 60 - 12


def test_leftovers_of_a_stopped_pruning_are_removed(store: Store) -> None:
    aside = store.path("pipelines") / ".pruned-999999999-abcd"
    (aside / "jobs").mkdir(parents=True)
    prune_pipelines(store, keep=100)
    assert not aside.exists()
    assert _left(store) == set(range(1, 61))


def test_keep_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one"):
        prune_pipelines(store, keep=0)


ARTIFACT_PIPELINE = """
stages: [build, test]
build:
  stage: build
  script: [echo model > model.txt]
  artifacts: {paths: [model.txt]}
test:
  stage: test
  script: [grep -q model model.txt]
"""


def test_prune_keeps_the_artifacts_a_later_stage_run_needs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": ARTIFACT_PIPELINE})
    assert run_cli(repo, "run", "--no-tty").exit_code == 0  # #1: build's artifacts
    for _ in range(3):  # #2-#4: the test stage alone, build's artifacts from #1
        assert run_cli(repo, "run", "--no-tty", "--stage", "test").exit_code == 0
    dry = run_cli(repo, "prune", "--keep", "1", "--dry-run")
    assert dry.exit_code == 0 and "would remove 2 run(s)" in dry.output
    assert _left(Store(repo)) == {1, 2, 3, 4}
    pruned = run_cli(repo, "prune", "--keep", "1")
    assert pruned.exit_code == 0 and "removed 2 run(s)" in pruned.output, pruned.output
    assert _left(Store(repo)) == {1, 4}  # the newest run, and the one holding build's artifacts
    again = run_cli(repo, "run", "--no-tty", "--stage", "test")
    assert again.exit_code == 0, again.output


def test_a_run_prunes_old_runs_beyond_keep_pipelines(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {".gitlab-ci.yml": "job:\n  script: [echo hi]\n"},
    )
    (repo / ".localci").mkdir(exist_ok=True)
    (repo / ".localci" / "config.yml").write_text("keep_pipelines: 2\n")
    store = Store(repo)
    store.ensure()
    for pid in range(1, 13):
        _pipeline(store, pid)
    (store.path("pipelines") / "counter").write_text("12\n")
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 0, result.output
    assert "Removed 11 old run(s) from .localci/pipelines (keep_pipelines: 2" in result.output
    assert _left(store) == {12, 13}
    quiet = run_cli(repo, "run", "--no-tty")  # below the margin: nothing to do, nothing said
    assert "old run(s)" not in quiet.output and _left(store) == {12, 13, 14}


def test_keep_pipelines_is_checked(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "job:\n  script: [echo hi]\n"})
    (repo / ".localci").mkdir(exist_ok=True)
    (repo / ".localci" / "config.yml").write_text("keep_pipelines: 0\n")
    result = run_cli(repo, "run", "--no-tty")
    assert result.exit_code == 3
    assert "keep_pipelines should be a number of runs (1 or more) or false" in result.output
