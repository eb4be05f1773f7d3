"""Tests for caches: keys, policies, when, fallbacks, atomic/locked entries, hard-link safety and
the relocation of virtualenvs between workspace slots (localci.execute.cache / transfer)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import git, make_repo

from localci.config.model import AllowFailure, Artifacts, Cache, CacheKeyFiles, Job
from localci.execute.cache import CacheStore, cache_key
from localci.execute.path_selection import TransferError
from localci.execute.snapshot import take_snapshot
from localci.execute.stored_trees import read_manifest, verify_tree
from localci.execute.transfer import TransferHooks, clear_caches, list_caches
from localci.execute.workspace import Workspace, WorkspacePool, prepare_workspace
from localci.plan.model import PlannedJob
from localci.plan.planner import job_spec
from localci.state import Store

Action = Callable[[Path], object]


def planned(
    name: str,
    *,
    cache: Sequence[Cache] = (),
    artifacts: Artifacts | None = None,
    sources: Sequence[str] = (),
    coverage: str | None = None,
) -> PlannedJob:
    job = Job(
        name=name,
        stage="test",
        script=("true",),
        cache=tuple(cache),
        artifacts=artifacts,
        coverage=coverage,
    )
    return PlannedJob(
        name=name,
        group_name=name,
        stage="test",
        stage_index=0,
        job=job,
        spec=job_spec(job),
        included=True,
        when="on_success",
        allow_failure=AllowFailure(),
        needs=None,
        artifact_sources=tuple(sources),
        yaml_variables={},
        predefined={},
        node_index=None,
        node_total=1,
        start_in=None,
        reason="",
    )


@dataclass
class JobRun:
    result: dict[str, object]
    notes: list[str]
    log: list[str]
    project_dir: Path


@dataclass
class Project:
    """A committed repo with a store, a pipeline snapshot, slots and the hooks of one pipeline."""

    root: Path
    store: Store
    pipeline_id: int
    hooks: TransferHooks
    snapshot: object = field(repr=False)
    pool: WorkspacePool = field(repr=False)

    @classmethod
    def make(cls, tmp_path: Path, files: Mapping[str, str] | None = None) -> Project:
        root = make_repo(tmp_path / "proj", files or {"README.md": "readme\n"}, remote=None)
        store = Store(root)
        store.ensure()
        project = cls(root, store, 0, None, None, WorkspacePool(store, "proj"))  # type: ignore[arg-type]
        project.new_pipeline()
        return project

    def new_pipeline(self, *, previous: bool = True) -> None:
        self.pipeline_id = self.store.next_pipeline_id()
        sha = git(self.root, "rev-parse", "HEAD")
        self.snapshot = take_snapshot(self.root, self.store, pipeline_id=self.pipeline_id, sha=sha)
        self.hooks = TransferHooks(self.store, self.pipeline_id, previous_pipelines=previous)

    @contextmanager
    def slot(self, number: int = 0) -> Iterator[Workspace]:
        with self.store.lock(f"slot-{number}"):
            ws = self.pool.workspace(number)
            prepare_workspace(
                ws,
                self.snapshot,  # type: ignore[arg-type]
                ref="main",
                ref_is_tag=False,
                user_git_dir=self.root / ".git",
            )
            yield ws

    def env(self, ws: Workspace, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "CI_PROJECT_DIR": str(ws.project_dir),
            "CI_BUILDS_DIR": str(ws.builds_dir),
            "CI_COMMIT_REF_SLUG": "main",
            **(extra or {}),
        }

    def run(
        self,
        job: PlannedJob,
        action: Action | None = None,
        *,
        slot: int = 0,
        succeeded: bool = True,
        env: Mapping[str, str] | None = None,
        check: Callable[[Path], object] | None = None,
    ) -> JobRun:
        """before -> action(project_dir) -> after; `check` sees the workspace after `before`."""
        with self.slot(slot) as ws:
            variables = self.env(ws, env)
            notes: list[str] = []
            log: list[str] = []
            self.hooks.before(job, ws, variables, notes, log.append)
            if check is not None:
                check(ws.project_dir)
            if action is not None:
                action(ws.project_dir)
            result = self.hooks.after(
                job, ws, variables, succeeded, lambda: "\n".join(log), notes, log.append
            )
            return JobRun(result, notes, log, ws.project_dir)

    def entry(self, key: str) -> Path:
        return CacheStore(self.store).entry_dir(key)


def write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def writer(files: Mapping[str, str]) -> Action:
    return lambda root: write(root, files)


def read_all(root: Path, base: str) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted((root / base).rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.make(tmp_path)


# ------------------------------------------------------------------------------------------ keys


def test_string_key_is_runner_expanded(project: Project) -> None:
    cache = Cache(key="deps-$CI_COMMIT_REF_SLUG-${NAME}$UNSET", paths=("deps",))
    with project.slot() as ws:
        key = cache_key(cache, ws.project_dir, project.env(ws, {"NAME": "x"}), "build")
    assert key == "deps-main-x"


@pytest.mark.parametrize("key", ["a/b", "a%2Fb", "a%2fb", ".", "..", "$SLASHED"])
def test_invalid_keys_fail_the_job_naming_job_and_key(project: Project, key: str) -> None:
    job = planned("build", cache=[Cache(key=key, paths=("deps",))])
    with pytest.raises(TransferError) as info:
        project.run(job, env={"SLASHED": "feature/x"})
    message = str(info.value)
    assert "build" in message
    assert repr(key if key != "$SLASHED" else "feature/x") in message


def git_blob(root: Path, rel: str) -> str:
    return subprocess.run(
        ["git", "hash-object", rel], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_key_files_is_gitlabs_digest(tmp_path: Path) -> None:
    files = {
        "Gemfile.lock": "gems\n",
        "package-lock.json": "{}\n",
        "sub/a.lock": "a\n",
        "sub/deep/b.lock": "b\n",
    }
    project = Project.make(tmp_path, files)
    with project.slot() as ws:
        root, env = ws.project_dir, project.env(ws, {"P": "pre"})
        blobs = sorted({git_blob(root, "Gemfile.lock"), git_blob(root, "package-lock.json")})
        digest = hashlib.sha1("-".join(blobs).encode()).hexdigest()
        key = CacheKeyFiles(("Gemfile.lock", "package-lock.json", "missing.txt"), prefix="$P")
        assert cache_key(Cache(key=key), root, env, "j") == f"pre-{digest}"
        assert cache_key(Cache(key=CacheKeyFiles(key.files)), root, env, "j") == digest
        same = CacheKeyFiles(("package-lock.json", "Gemfile.lock", "Gemfile.lock"), prefix="$P")
        assert cache_key(Cache(key=same), root, env, "j") == f"pre-{digest}"
        wild = sorted({git_blob(root, "sub/a.lock"), git_blob(root, "sub/deep/b.lock")})
        wild_digest = hashlib.sha1("-".join(wild).encode()).hexdigest()
        assert cache_key(Cache(key=CacheKeyFiles(("sub/**.lock",))), root, env, "j") == wild_digest
        one = hashlib.sha1(git_blob(root, "sub/a.lock").encode()).hexdigest()
        assert cache_key(Cache(key=CacheKeyFiles(("sub/*.lock",))), root, env, "j") == one
        none = CacheKeyFiles(("nothing.lock",), prefix="p")
        assert cache_key(Cache(key=none), root, env, "j") == "p-default"
        assert cache_key(Cache(key=CacheKeyFiles(("nothing",))), root, env, "j") == "default"


@pytest.mark.parametrize("name", ["../outside.lock", "/etc/passwd"])
def test_key_files_outside_the_project_are_refused(project: Project, name: str) -> None:
    job = planned("build", cache=[Cache(key=CacheKeyFiles((name,)), paths=("x",))])
    with pytest.raises(TransferError, match=r"build.*outside the project"):
        project.run(job)


# ---------------------------------------------------------------------------- save and restore


def test_save_then_restore_in_another_slot_as_private_copies(project: Project) -> None:
    job = planned("build", cache=[Cache(key="deps", paths=("deps", "*.bin"))])
    first = project.run(job, writer({"deps/a.txt": "A\n", "deps/sub/b.txt": "B\n", "x.bin": "X"}))
    assert any("Created cache deps" in line for line in first.log)
    entry = project.entry("deps")
    seen: dict[str, str] = {}

    def check(root: Path) -> None:
        seen.update(read_all(root, "deps"))
        stored = entry / "data" / "deps" / "a.txt"
        assert (root / "deps" / "a.txt").stat().st_ino != stored.stat().st_ino
        assert (root / "deps" / "a.txt").stat().st_nlink == 1
        assert (root / "x.bin").read_text() == "X"

    second = project.run(job, slot=1, check=check)
    assert seen == {"deps/a.txt": "A\n", "deps/sub/b.txt": "B\n"}
    assert second.notes == []
    [info] = list_caches(project.store)
    assert (info.key, info.files, info.size_bytes, info.from_job) == ("deps", 3, 5, "build")
    assert info.saved_at.endswith("Z")


def test_fallback_keys_then_cache_fallback_key(project: Project) -> None:
    seed = planned("seed", cache=[Cache(key="global", paths=("deps",))])
    project.run(seed, writer({"deps/a.txt": "from global\n"}))
    global_id = read_manifest(project.entry("global"))
    job = planned(
        "test",
        cache=[Cache(key="feature-$X", paths=("deps",), fallback_keys=("nope-$X", "also-nope"))],
    )
    seen: list[str] = []
    run = project.run(
        job,
        writer({"deps/b.txt": "new\n"}),
        env={"X": "1", "CACHE_FALLBACK_KEY": "global"},
        check=lambda root: seen.append((root / "deps/a.txt").read_text()),
    )
    assert seen == ["from global\n"]
    assert run.notes == ["cache 'feature-1' not found, fallback 'global' restored"]
    assert read_manifest(project.entry("global")) == global_id  # fallback keys are never written
    saved = read_manifest(project.entry("feature-1"))
    assert saved is not None
    assert {e.path for e in saved.entries} >= {"deps/a.txt", "deps/b.txt"}


def test_fallback_key_order_and_protected_global_is_ignored(project: Project) -> None:
    for key in ("one", "two"):
        project.run(planned(key, cache=[Cache(key=key, paths=("d",))]), writer({"d/f": key}))
    job = planned("t", cache=[Cache(key="main", paths=("d",), fallback_keys=("two", "one"))])
    run = project.run(job, env={"CACHE_FALLBACK_KEY": "one-protected"})
    assert run.notes == ["cache 'main' not found, fallback 'two' restored"]
    lone = planned("u", cache=[Cache(key="other", paths=("d",))])
    run = project.run(lone, env={"CACHE_FALLBACK_KEY": "one-protected"})
    assert run.notes == []
    assert any("cache one-protected" in line for line in run.log) is False


@pytest.mark.parametrize(
    ("policy", "restores", "saves"),
    [
        ("pull", True, False),
        ("push", False, True),
        ("pull-push", True, True),
        ("$POL", True, False),
    ],
)
def test_policies(project: Project, policy: str, restores: bool, saves: bool) -> None:
    project.run(planned("seed", cache=[Cache(key="k", paths=("d",))]), writer({"d/old": "old"}))
    job = planned("job", cache=[Cache(key="k", paths=("d",), policy=policy)])
    seen: list[bool] = []
    project.run(
        job,
        writer({"d/new": "new"}),
        env={"POL": "pull"},
        check=lambda root: seen.append((root / "d/old").exists()),
    )
    assert seen == [restores]
    manifest = read_manifest(project.entry("k"))
    assert manifest is not None
    assert ("d/new" in {e.path for e in manifest.entries}) is saves


def test_unknown_policy_is_a_job_error(project: Project) -> None:
    job = planned("job", cache=[Cache(key="k", paths=("d",), policy="sometimes")])
    with pytest.raises(TransferError, match=r"job.*unknown cache policy 'sometimes'"):
        project.run(job)


@pytest.mark.parametrize(
    ("when", "succeeded", "saves"),
    [
        ("on_success", True, True),
        ("on_success", False, False),
        ("on_failure", True, False),
        ("on_failure", False, True),
        ("always", True, True),
        ("always", False, True),
    ],
)
def test_when(project: Project, when: str, succeeded: bool, saves: bool) -> None:
    job = planned("job", cache=[Cache(key="k", paths=("d",), when=when)])
    project.run(job, writer({"d/f": "x"}), succeeded=succeeded)
    assert (read_manifest(project.entry("k")) is not None) is saves


def test_untracked_cache_takes_ignored_and_new_files(tmp_path: Path) -> None:
    project = Project.make(tmp_path, {".gitignore": "build/\n", "src/app.py": "app\n"})
    job = planned("job", cache=[Cache(key="u", untracked=True)])
    project.run(job, writer({"build/out.o": "o", "new.txt": "n"}))
    manifest = read_manifest(project.entry("u"))
    assert manifest is not None
    files = {e.path for e in manifest.entries if e.kind == "f"}
    assert files == {"build/out.o", "new.txt"}


def test_no_cache_and_cache_without_paths_do_nothing(project: Project) -> None:
    project.run(planned("a"), writer({"d/f": "x"}))
    project.run(planned("b", cache=[Cache(key="k")]), writer({"d/f": "x"}))
    assert list_caches(project.store) == []


def test_nothing_matched_keeps_the_old_entry(project: Project) -> None:
    job = planned("job", cache=[Cache(key="k", paths=("d",))])
    project.run(job, writer({"d/f": "x"}))
    before = read_manifest(project.entry("k"))
    run = project.run(job, lambda root: __import__("shutil").rmtree(root / "d"))
    assert read_manifest(project.entry("k")) == before
    assert any("d: no matching files" in line for line in run.log)


@pytest.mark.parametrize("path", ["../outside", "/etc", "$CI_PROJECT_DIR/../x", "link/file"])
def test_cache_paths_leaving_the_project_are_refused(tmp_path: Path, path: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    project = Project.make(tmp_path, {"README.md": "r\n"})
    (project.root / "link").symlink_to(tmp_path / "elsewhere")
    git(project.root, "add", "link")
    git(project.root, "commit", "-qm", "link")
    project.new_pipeline()
    job = planned("build", cache=[Cache(key="k", paths=(path,))])
    with pytest.raises(TransferError) as info:
        project.run(job)
    assert "build" in str(info.value)
    assert repr(path) in str(info.value)


# ------------------------------------------------------------------------- atomicity and locks


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_incomplete_entries_are_never_restored_and_are_cleaned(project: Project) -> None:
    job = planned("job", cache=[Cache(key="k", paths=("d",)), Cache(key="t", paths=("e",))])
    entry = project.entry("k")
    (entry / "data" / "d").mkdir(parents=True)
    (entry / "data" / "d" / "f").write_text("half written")
    torn = project.entry("t")
    (torn / "data").mkdir(parents=True)
    (torn / "manifest.json").write_text('{"format": 1, "id": "x", "entr')
    stale = project.store.path("cache", f".tmp-{dead_pid()}-abcd")
    (stale / "data").mkdir(parents=True)
    seen: list[bool] = []
    project.run(job, check=lambda root: seen.append((root / "d").exists() or (root / "e").exists()))
    assert seen == [False]
    assert not entry.exists()
    assert not torn.exists()
    project.run(job, writer({"d/f": "x"}))
    assert not stale.exists()


def test_damaged_entry_is_discarded_and_fallback_used(project: Project) -> None:
    project.run(planned("a", cache=[Cache(key="main", paths=("d",))]), writer({"d/f": "good"}))
    project.run(planned("b", cache=[Cache(key="fb", paths=("d",))]), writer({"d/f": "fallback"}))
    stored = project.entry("main") / "data" / "d" / "f"
    with stored.open("a") as handle:  # someone changed the stored file in place
        handle.write(" but changed")
    job = planned("c", cache=[Cache(key="main", paths=("d",), fallback_keys=("fb",))])
    seen: list[str] = []
    run = project.run(job, check=lambda root: seen.append((root / "d/f").read_text()))
    assert seen == ["fallback"]
    assert run.notes == ["cache 'main' not found, fallback 'fb' restored"]
    assert any("changed after it was saved (d/f)" in line for line in run.log)


SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from localci.execute.cache import CacheStore
    from localci.state import Store

    project, src, token = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    rounds, files = int(sys.argv[4]), int(sys.argv[5])
    caches = CacheStore(Store(project))
    src.mkdir(parents=True, exist_ok=True)
    number = 0
    while rounds < 0 or number < rounds:
        number += 1
        for i in range(files):  # fresh files each round, as in a freshly prepared workspace
            (src / f"f{i}").unlink(missing_ok=True)
            (src / f"f{i}").write_text(f"{token} {number}")
        paths = [f"f{i}" for i in range(files)]
        caches.save("shared", src, paths, builds_dir=None, meta={"job": token}, known={})
    """
)


def saver(
    project: Project, tmp: Path, token: str, rounds: int, files: int
) -> subprocess.Popen[bytes]:
    args = [str(project.root), str(tmp / token), token, str(rounds), str(files)]
    return subprocess.Popen([sys.executable, "-c", SAVER, *args])


def consistent_entry(project: Project) -> set[str]:
    """The distinct file contents of the entry, which must be one complete save."""
    entry = project.entry("shared")
    manifest = read_manifest(entry)
    assert manifest is not None
    assert verify_tree(entry, manifest) is None
    return {(entry / "data" / e.path).read_text() for e in manifest.entries}


def test_concurrent_saves_from_two_processes_leave_a_valid_entry(
    project: Project, tmp_path: Path
) -> None:
    procs = [saver(project, tmp_path, token, 12, 40) for token in ("alpha", "beta")]
    seen = set()
    caches = CacheStore(project.store)
    while any(p.poll() is None for p in procs):
        dest = tmp_path / "restore"
        result = caches.restore("shared", dest, relocate_to=(dest, None))
        if result.status == "restored":
            contents = {(dest / f"f{i}").read_text() for i in range(40)}
            assert len(contents) == 1, contents  # never a mix of two saves
            seen |= contents
        time.sleep(0.01)
    assert [p.wait() for p in procs] == [0, 0]
    assert seen  # restores really ran while the two processes were saving
    [content] = consistent_entry(project)
    assert content in ("alpha 12", "beta 12")
    leftovers = [p.name for p in project.store.path("cache").iterdir() if p.name[0] == "."]
    assert leftovers == []


def test_a_save_killed_midway_is_never_trusted(project: Project, tmp_path: Path) -> None:
    proc = saver(project, tmp_path, "gamma", -1, 1500)
    cache_dir = project.store.path("cache")
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if cache_dir.is_dir() and any(p.name.startswith(".tmp-") for p in cache_dir.iterdir()):
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    caches = CacheStore(project.store)
    dest = tmp_path / "restore"
    result = caches.restore("shared", dest, relocate_to=(dest, None))
    if result.status == "restored":
        assert len({(dest / f"f{i}").read_text() for i in range(1500)}) == 1
    else:
        assert result.status == "missing"
    project.run(planned("job", cache=[Cache(key="other", paths=("d",))]), writer({"d/f": "x"}))
    assert not [p for p in cache_dir.iterdir() if p.name.startswith((".tmp-", ".old-"))]


# ------------------------------------------------------------------------------ private copies


def test_in_place_change_never_reaches_the_entry(project: Project) -> None:
    seed = planned("seed", cache=[Cache(key="k", paths=("d",))])
    project.run(seed, writer({"d/lock": "v1", "d/data": "payload"}))
    before = read_manifest(project.entry("k"))
    puller = planned("puller", cache=[Cache(key="k", paths=("d",), policy="pull")])

    def append(root: Path) -> None:
        with (root / "d" / "lock").open("a") as handle:  # in place
            handle.write(" changed by a job")

    project.run(puller, append)
    assert read_manifest(project.entry("k")) == before
    assert (project.entry("k") / "data" / "d" / "lock").read_text() == "v1"
    seen: list[str] = []
    project.run(puller, check=lambda root: seen.append((root / "d" / "lock").read_text()))
    assert seen == ["v1"]


def test_saving_copies_so_the_entry_shares_no_inode_with_the_workspace(
    project: Project,
) -> None:
    inodes: dict[str, int] = {}

    def write_and_note(root: Path) -> None:
        (root / "d").mkdir()
        (root / "d" / "f").write_text("x")
        inodes["f"] = (root / "d" / "f").stat().st_ino

    project.run(planned("seed", cache=[Cache(key="k", paths=("d",))]), write_and_note)
    stored = project.entry("k") / "data" / "d" / "f"
    assert stored.stat().st_ino != inodes["f"] and stored.stat().st_nlink == 1


def test_artifacts_overwrite_cache_files_at_the_same_path(project: Project) -> None:
    producer = planned("build", artifacts=Artifacts(paths=("out",)))
    project.run(producer, writer({"out/f": "from artifacts"}))
    project.run(planned("c", cache=[Cache(key="k", paths=("out",))]), writer({"out/f": "cached"}))
    job = planned("test", cache=[Cache(key="k", paths=("out",))], sources=["build"])
    seen: list[str] = []
    project.run(job, check=lambda root: seen.append((root / "out/f").read_text()))
    assert seen == ["from artifacts"]


def test_clear_caches(project: Project) -> None:
    for key in ("a", "b"):
        project.run(planned(key, cache=[Cache(key=key, paths=("d",))]), writer({"d/f": key}))
    assert [c.key for c in list_caches(project.store)] == ["a", "b"]
    assert clear_caches(project.store, "a") == 1
    assert [c.key for c in list_caches(project.store)] == ["b"]
    assert clear_caches(project.store, "zzz") == 0
    assert clear_caches(project.store, None) == 1
    assert list_caches(project.store) == []


def test_keys_that_are_not_plain_file_names(project: Project) -> None:
    for key in (".venv", "with space", "ü-key", "%weird"):
        job = planned("j", cache=[Cache(key=key, paths=("d",))])
        project.run(job, writer({"d/f": key}))
        run = project.run(job, slot=1)
        assert (run.project_dir / "d/f").read_text() == key
    assert sorted(c.key for c in list_caches(project.store)) == sorted(
        [".venv", "with space", "ü-key", "%weird"]
    )


# ------------------------------------------------------------------------- the seed pattern


def make_venv(root: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")],
        check=True,
        capture_output=True,
    )
    script = root / ".venv" / "bin" / "hello"
    script.write_text(f"#!{root}/.venv/bin/python\nimport sys\nprint('hello from', sys.prefix)\n")
    script.chmod(0o755)


def test_venv_cached_in_one_slot_works_in_another(project: Project) -> None:
    job = planned("build", cache=[Cache(key="venv", paths=(".venv",))])
    first = project.run(job, make_venv, slot=0)
    slot0 = first.project_dir
    facts: dict[str, str] = {}

    def check(root: Path) -> None:
        venv = root / ".venv"
        prefix = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        facts["prefix"] = prefix
        facts["shebang"] = (venv / "bin" / "hello").read_text().splitlines()[0]
        facts["hello"] = subprocess.run(
            [str(venv / "bin" / "hello")], capture_output=True, text=True, check=True
        ).stdout.strip()
        facts["activate"] = (venv / "bin" / "activate").read_text()
        facts["cfg"] = (venv / "pyvenv.cfg").read_text()

    second = project.run(job, make_venv, slot=1, check=check)
    slot1 = second.project_dir
    assert slot0 != slot1
    assert facts["prefix"] == str(slot1 / ".venv")
    assert facts["shebang"] == f"#!{slot1}/.venv/bin/python"
    assert facts["hello"] == f"hello from {slot1 / '.venv'}"
    assert str(slot1 / ".venv") in facts["activate"]
    assert str(slot0) not in facts["activate"] + facts["cfg"]
    # Re-running `python -m venv` over the restored venv (the seed pattern) left the entry
    # usable: rewritten scripts were relocated copies or same-content rewrites.
    manifest = read_manifest(project.entry("venv"))
    assert manifest is not None
    assert manifest.project_dir == str(slot1)
    assert verify_tree(project.entry("venv"), manifest) is None
    json.dumps(manifest.as_json())


# ------------------------------------------------------------------- unchanged caches (runner)


def test_an_untouched_restored_cache_is_not_saved_again(project: Project) -> None:
    job = planned("deps", cache=[Cache(key="venv", paths=("venv",))])
    project.run(job, writer({"venv/lib/a.py": "a\n", "venv/bin/tool": "t\n"}))
    first = read_manifest(project.entry("venv"))
    again = project.run(job)
    assert any("Archive is up to date!" in line for line in again.log), again.log
    assert not any("Created cache venv" in line for line in again.log)
    assert read_manifest(project.entry("venv")) == first  # the same entry, not a new one


def _same_size_same_mtime(root: Path) -> None:
    target = root / "venv" / "lib" / "a.py"
    st = target.stat()
    target.write_text("b\n")  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime back


@pytest.mark.parametrize(
    "action",
    [
        writer({"venv/lib/new.py": "n\n"}),
        _same_size_same_mtime,
        lambda root: (root / "venv" / "bin" / "tool").unlink(),
        lambda root: (root / "venv" / "bin" / "tool").chmod(0o755),
    ],
    ids=["added", "rewritten-mtime-reset", "removed", "chmod"],
)
def test_any_change_to_a_restored_cache_is_saved(project: Project, action: Action) -> None:
    job = planned("deps", cache=[Cache(key="venv", paths=("venv",))])
    project.run(job, writer({"venv/lib/a.py": "a\n", "venv/bin/tool": "t\n"}))
    first = read_manifest(project.entry("venv"))
    changed = project.run(job, action)
    assert any("Created cache venv" in line for line in changed.log), changed.log
    assert read_manifest(project.entry("venv")) != first


def test_a_cache_another_job_replaced_meanwhile_is_saved(project: Project) -> None:
    job = planned("deps", cache=[Cache(key="venv", paths=("venv",))])
    other = planned("other", cache=[Cache(key="venv", paths=("venv",))])
    project.run(job, writer({"venv/lib/a.py": "a\n"}))

    def replace_entry(root: Path) -> None:  # another job saves the key while this one runs
        project.run(other, writer({"venv/lib/a.py": "other\n"}), slot=1)

    kept = project.run(job, replace_entry)
    assert any("Created cache venv" in line for line in kept.log), kept.log
    assert (project.entry("venv") / "data" / "venv" / "lib" / "a.py").read_text() == "a\n"
