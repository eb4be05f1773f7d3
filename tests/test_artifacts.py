"""Tests for artifacts: selection (paths, exclude, untracked), when, hand-over per artifact_sources,
dotenv, reports, expiry, earlier pipelines and the CLI helpers (localci.execute.artifacts,
path_selection, stored_trees and transfer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cache import Project, git, planned, read_all, writer

from localci import results
from localci.config.model import Artifacts
from localci.errors import UsageError
from localci.execute import artifacts as artifacts_mod
from localci.execute.artifacts import read_record
from localci.execute.path_selection import TransferError
from localci.execute.transfer import copy_artifacts, download_artifacts, list_artifacts
from localci.plan.variables import VarValue

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_bad"><failure message="x">boom</failure></testcase>
<testcase classname="tests.test_a" name="test_skip"><skipped/></testcase>
</testsuite></testsuites>
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.make(tmp_path, {".gitignore": "*.log\n", "src/app.py": "app\n"})


def stored_files(project: Project, job: str) -> dict[str, str]:
    record = read_record(project.store, project.pipeline_id, job)
    assert record is not None
    return read_all(record.path / "data", "")


def test_paths_are_recursive_and_exclude_is_not(project: Project) -> None:
    spec = Artifacts(
        paths=("dist/", "*.txt", "missing/"),
        exclude=("dist/skip", "dist/cache/**", "dist/keep/", "*.tmp.txt"),
    )
    run = project.run(
        planned("build", artifacts=spec),
        writer(
            {
                "dist/a.whl": "a",
                "dist/skip": "s",
                "dist/cache/x": "x",
                "dist/keep/y": "y",
                "notes.txt": "n",
                "junk.tmp.txt": "j",
            }
        ),
    )
    assert set(stored_files(project, "build")) == {"dist/a.whl", "dist/keep/y", "notes.txt"}
    assert any("missing/: no matching files" in line for line in run.log)
    assert run.notes == []


def test_untracked_artifacts(project: Project) -> None:
    spec = Artifacts(untracked=True)
    project.run(planned("build", artifacts=spec), writer({"build.log": "l", "out/o": "o"}))
    assert set(stored_files(project, "build")) == {"build.log", "out/o"}


@pytest.mark.parametrize(
    ("when", "succeeded", "stored"),
    [
        ("on_success", True, True),
        ("on_success", False, False),
        ("on_failure", False, True),
        ("on_failure", True, False),
        ("always", False, True),
    ],
)
def test_when(project: Project, when: str, succeeded: bool, stored: bool) -> None:
    spec = Artifacts(paths=("out",), when=when, reports={"junit": ("report.xml",)})
    result = project.run(
        planned("build", artifacts=spec),
        writer({"out/f": "x", "report.xml": JUNIT}),
        succeeded=succeeded,
    ).result
    record = read_record(project.store, project.pipeline_id, "build")
    assert record is not None
    assert record.has_archive is stored
    assert result["tests"] == results.TestSummary(1, 1, 1, 0, ("tests.test_a.test_bad",))


def test_sources_in_order_later_overwrites_earlier(project: Project) -> None:
    spec = Artifacts(paths=("out",))
    project.run(planned("a", artifacts=spec), writer({"out/shared": "a", "out/a": "a"}))
    project.run(planned("b", artifacts=spec), writer({"out/shared": "b", "out/b": "b"}))
    seen: dict[str, str] = {}
    project.run(
        planned("test", sources=["a", "b"]), check=lambda root: seen.update(read_all(root, "out"))
    )
    assert seen == {"out/shared": "b", "out/a": "a", "out/b": "b"}
    seen.clear()
    project.run(
        planned("test", sources=["b", "a"]), check=lambda root: seen.update(read_all(root, "out"))
    )
    assert seen["out/shared"] == "a"
    seen.clear()
    project.run(planned("none", sources=[]), check=lambda root: seen.update(read_all(root, "out")))
    assert seen == {}


def test_consumers_get_copies(project: Project) -> None:
    project.run(planned("build", artifacts=Artifacts(paths=("out",))), writer({"out/f": "v1"}))

    def scribble(root: Path) -> None:
        with (root / "out" / "f").open("a") as handle:
            handle.write(" changed")

    project.run(planned("t1", sources=["build"]), scribble)
    seen: list[str] = []
    run = project.run(
        planned("t2", sources=["build"]),
        check=lambda root: seen.append((root / "out/f").read_text()),
    )
    assert seen == ["v1"]
    assert run.notes == []


def test_dotenv_reaches_only_receiving_jobs(project: Project) -> None:
    spec = Artifacts(reports={"dotenv": ("build.env",)})
    project.run(
        planned("build", artifacts=spec), writer({"build.env": "VERSION=1.2\nQUOTED='x y'\n"})
    )
    assert project.hooks.dotenv(planned("deploy", sources=["build"])) == {
        "VERSION": VarValue("1.2"),
        "QUOTED": VarValue("'x y'"),
    }
    assert project.hooks.dotenv(planned("lint", sources=[])) == {}


def test_dotenv_later_source_wins(project: Project) -> None:
    spec = Artifacts(reports={"dotenv": ("x.env",)})
    project.run(planned("a", artifacts=spec), writer({"x.env": "V=a\nA=1\n"}))
    project.run(planned("b", artifacts=spec), writer({"x.env": "V=b\n"}))
    variables = project.hooks.dotenv(planned("c", sources=["a", "b"]))
    assert variables == {"V": VarValue("b"), "A": VarValue("1")}


def test_dotenv_of_a_failed_job_is_still_collected(project: Project) -> None:
    spec = Artifacts(paths=("out",), reports={"dotenv": ("x.env",)})
    project.run(planned("a", artifacts=spec), writer({"x.env": "V=1\n"}), succeeded=False)
    assert project.hooks.dotenv(planned("c", sources=["a"])) == {"V": VarValue("1")}


def test_invalid_dotenv_gives_a_note_and_no_variables(project: Project) -> None:
    spec = Artifacts(reports={"dotenv": ("x.env",)})
    run = project.run(planned("build", artifacts=spec), writer({"x.env": "A=1\n\nB=2\n"}))
    assert len(run.notes) == 1
    assert run.notes[0].startswith("dotenv report of 'build' is invalid")
    assert project.hooks.dotenv(planned("c", sources=["build"])) == {}


def test_junit_and_coverage(project: Project) -> None:
    spec = Artifacts(reports={"junit": ("reports/*.xml",)})

    def produce(root: Path) -> None:
        writer({"reports/one.xml": JUNIT, "reports/two.xml": JUNIT})(root)

    job = planned("test", artifacts=spec, coverage=r"/TOTAL.+ (\d+%)/")
    with project.slot() as ws:
        env = project.env(ws)
        notes: list[str] = []
        project.hooks.before(job, ws, env, notes)
        produce(ws.project_dir)
        log = "TOTAL 10 2 80%\nsomething\nTOTAL 100 3 97%\nend"
        result = project.hooks.after(job, ws, env, True, lambda: log, notes)
    assert result["coverage"] == 97.0
    tests = result["tests"]
    assert isinstance(tests, results.TestSummary)
    assert (tests.passed, tests.failed, tests.skipped, tests.errors) == (2, 2, 2, 0)
    assert notes == []
    [info] = list_artifacts(project.store, project.pipeline_id, "test")
    assert info.reports == ("junit: reports/one.xml", "junit: reports/two.xml")
    assert info.files == 0


def test_bad_junit_and_bad_coverage_regex_are_notes(project: Project) -> None:
    spec = Artifacts(reports={"junit": ("r.xml",)})
    job = planned("test", artifacts=spec, coverage="/(unclosed/")
    run = project.run(job, writer({"r.xml": "<testsuites><testsuite>"}))
    assert run.result == {"tests": None, "coverage": None}
    assert any(n.startswith("junit report not read: r.xml") for n in run.notes)
    assert any(n.startswith("coverage regex '/(unclosed/' is invalid") for n in run.notes)


@pytest.mark.parametrize("path", ["../x", "/tmp", "$CI_PROJECT_DIR/../x", "out/../../x", "ln/f"])
def test_paths_leaving_the_project_are_refused(project: Project, tmp_path: Path, path: str) -> None:
    (project.root / "ln").symlink_to(tmp_path)
    git(project.root, "add", "ln")
    git(project.root, "commit", "-qm", "ln")
    project.new_pipeline()
    with pytest.raises(TransferError) as info:
        project.run(planned("build", artifacts=Artifacts(paths=(path,))))
    assert "'build'" in str(info.value)
    assert repr(path) in str(info.value)


def test_symlinks_are_stored_as_links_and_never_followed(project: Project, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")

    def produce(root: Path) -> None:
        (root / "out").mkdir()
        (root / "out" / "to-secret").symlink_to(secret)
        (root / "out" / "rel").symlink_to("../src/app.py")

    project.run(planned("build", artifacts=Artifacts(paths=("out",))), produce)
    seen: dict[str, str] = {}

    def check(root: Path) -> None:
        seen.update({p.name: str(p.readlink()) for p in (root / "out").iterdir()})

    project.run(planned("t", sources=["build"]), check=check)
    assert seen == {"to-secret": str(secret), "rel": "../src/app.py"}


def test_earlier_pipelines_supply_missing_sources(project: Project) -> None:
    spec = Artifacts(paths=("out",), reports={"dotenv": ("x.env",)})
    project.run(planned("build", artifacts=spec), writer({"out/f": "p1", "x.env": "V=1\n"}))
    first = project.pipeline_id
    project.new_pipeline()
    job = planned("test", sources=["build"])
    seen: list[str] = []
    run = project.run(job, check=lambda root: seen.append((root / "out/f").read_text()))
    assert seen == ["p1"]
    assert run.notes == [f"artifacts of 'build' come from pipeline #{first}"]
    assert project.hooks.dotenv(job) == {"V": VarValue("1")}
    project.new_pipeline(previous=False)
    run = project.run(job, check=lambda root: seen.append(str((root / "out").exists())))
    assert seen[-1] == "False"
    assert run.notes == ["no artifacts of 'build' available"]
    assert project.hooks.dotenv(job) == {}


def test_a_source_that_ran_in_this_pipeline_is_not_taken_from_earlier(project: Project) -> None:
    spec = Artifacts(paths=("out",))
    project.run(planned("build", artifacts=spec), writer({"out/f": "old"}))
    project.new_pipeline()
    project.run(planned("build", artifacts=spec), succeeded=False)
    seen: list[bool] = []
    run = project.run(
        planned("t", sources=["build"]), check=lambda root: seen.append((root / "out").exists())
    )
    assert seen == [False]
    assert run.notes == []


def test_download_artifacts_takes_the_named_pipelines_record_only(project: Project) -> None:
    spec = Artifacts(paths=("out",))
    project.run(planned("build", artifacts=spec), writer({"out/f": "from the parent"}))
    parent = project.pipeline_id
    project.new_pipeline()
    notes: list[str] = []
    log: list[str] = []
    with project.slot(1) as ws:
        download_artifacts(project.store, parent, "build", ws, notes, log.append)
        assert (ws.project_dir / "out/f").read_text() == "from the parent"
        (ws.project_dir / "out/f").unlink()
        download_artifacts(project.store, project.pipeline_id, "build", ws, notes)
        assert not (ws.project_dir / "out/f").exists()
    assert log == [f"Downloading artifacts for build (pipeline #{parent})..."]
    assert notes == ["no artifacts of 'build' available"]


def test_expired_artifacts_are_not_handed_on(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = Artifacts(paths=("out",), expire_in="1 hour")
    project.run(planned("build", artifacts=spec), writer({"out/f": "x"}))
    [info] = list_artifacts(project.store, None, None)
    assert info.expire_at is not None
    assert not info.expired
    later = artifacts_mod.time.time() + 7200
    monkeypatch.setattr(artifacts_mod.time, "time", lambda: later)
    seen: list[bool] = []
    run = project.run(
        planned("t", sources=["build"]), check=lambda root: seen.append((root / "out").exists())
    )
    assert seen == [False]
    assert run.notes == [f"artifacts of 'build' (pipeline #{project.pipeline_id}) have expired"]


def test_list_and_copy_artifacts(project: Project, tmp_path: Path) -> None:
    spec = Artifacts(paths=("out",), name="bundle-$CI_COMMIT_REF_SLUG")
    project.run(planned("build 1/2", artifacts=spec), writer({"out/a": "A", "out/sub/b": "BB"}))
    project.run(planned("plain"))
    [info] = list_artifacts(project.store, None, None)
    assert (info.job, info.name, info.files, info.size_bytes) == ("build 1/2", "bundle-main", 2, 3)
    assert info.pipeline_id == project.pipeline_id
    assert list_artifacts(project.store, project.pipeline_id, "plain") == []
    dest = tmp_path / "copy"
    written = copy_artifacts(project.store, None, "build 1/2", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written if p.is_file()) == [
        "out/a",
        "out/sub/b",
    ]
    record = read_record(project.store, project.pipeline_id, "build 1/2")
    assert record is not None
    assert (dest / "out/a").stat().st_ino != (record.path / "data/out/a").stat().st_ino
    with pytest.raises(UsageError, match="no artifacts of job 'nope'"):
        copy_artifacts(project.store, None, "nope", dest)


def test_retry_replaces_the_record(project: Project) -> None:
    spec = Artifacts(paths=("out",), when="always")
    project.run(planned("build", artifacts=spec), writer({"out/one": "1"}), succeeded=False)
    project.run(planned("build", artifacts=spec), writer({"out/two": "2"}))
    assert set(stored_files(project, "build")) == {"out/two"}
    leftovers = [
        p.name for p in (project.store.pipeline_dir(project.pipeline_id) / "artifacts").iterdir()
    ]
    assert leftovers == ["build"]
