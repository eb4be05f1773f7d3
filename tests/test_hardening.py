"""Issue 20 hardening: each test is built from the issue's reproduction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from localci import interrupts
from localci.config.model import Artifacts, Cache
from localci.execute.artifacts import artifacts_root, job_dir_name
from localci.execute.git_isolation import (
    KNOWN_LOCAL_ENV_VARS,
    local_env_vars,
    without_user_repository,
)
from localci.execute.snapshot_cleanup import remove_stale
from localci.execute.stored_trees import read_manifest, verify_tree
from localci.execute.transfer import TransferHooks
from localci.state import Store, project_builds_root
from tests.helpers import git, make_repo, run_cli, run_localci
from tests.test_cache import Project, planned

MISTAGGED = [
    ("timeout: !!int soon", "'soon' cannot be read as !!int", 3),
    ("timeout: !!float x", "'x' cannot be read as !!float", 3),
    ("timeout: !!bool x", "'x' cannot be read as !!bool", 3),
    ("timeout: !!seq b", "'b' cannot be read as !!seq", 3),
    ("timeout: !!map x", "'x' cannot be read as !!map", 3),
    ("timeout: !!map [1]", "a list cannot be read as !!map", 3),
    ("timeout: !!seq {a: 1}", "a mapping cannot be read as !!seq", 3),
]


@pytest.mark.parametrize("command", ["lint", "list", "config"])
@pytest.mark.parametrize(("line", "message", "line_no"), MISTAGGED)
def test_mistagged_yaml_is_a_located_config_error(
    tmp_path: Path, command: str, line: str, message: str, line_no: int
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": f"job:\n  script: [echo hi]\n  {line}\n"})
    result = run_cli(repo, command)
    assert result.exit_code == 3, result.output
    assert f".gitlab-ci.yml:{line_no}" in result.output
    assert "invalid YAML" in result.output and message in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize("command", ["lint", "list", "config"])
def test_map_tag_over_a_list_document_is_a_located_config_error(
    tmp_path: Path, command: str
) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": "--- !!map\n- a\n- b\n"})
    result = run_cli(repo, command)
    assert result.exit_code == 3, result.output
    assert ".gitlab-ci.yml:1" in result.output
    assert "invalid YAML: a list cannot be read as !!map" in result.output


# ---- item 2: git variables of the caller's shell --------------------------------------------


def test_without_user_repository_drops_every_local_git_variable() -> None:
    inherited = {
        "GIT_DIR": "/u/.git",
        "GIT_INDEX_FILE": "/u/.git/index",
        "GIT_WORK_TREE": "/u",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.hooksPath",
        "GIT_CONFIG_VALUE_0": "/u/hooks",
        "GIT_AUTHOR_NAME": "me",
        "GIT_CEILING_DIRECTORIES": "/home",
        "PATH": "/bin",
    }
    env = without_user_repository(inherited, Path("/b/0"), local_env_vars())
    assert env == {
        "GIT_AUTHOR_NAME": "me",
        "GIT_CEILING_DIRECTORIES": "/b/0:/home",
        "PATH": "/bin",
    }
    assert local_env_vars() >= set(KNOWN_LOCAL_ENV_VARS)


def test_git_variables_of_a_hook_never_reach_the_users_repository(tmp_path: Path) -> None:
    user = make_repo(
        tmp_path / "user",
        {
            "README": "hello\n",
            ".gitlab-ci.yml": """\
                job:
                  script:
                    - echo job-file > job-file
                    - git add -A
                    - git -c user.name=j -c user.email=j@x commit -qm job-commit
                    - git checkout -q -b job-branch
                    - rm -rf .git ../../.git ../.git
                    - if git rev-parse --git-dir; then echo "FOUND-$((40 + 2))"; fi
            """,
        },
    )
    (user / "staged.txt").write_text("the user's staged work\n")
    git(user, "add", "staged.txt")
    before = (git(user, "rev-parse", "HEAD"), git(user, "status", "--porcelain"))
    hook_env = {
        "GIT_DIR": str(user / ".git"),
        "GIT_WORK_TREE": str(user),
        "GIT_INDEX_FILE": str(user / ".git" / "index"),
    }
    result = run_localci(user, "run", env=hook_env)
    assert result.exit_code == 0, result.output
    assert "FOUND-42" not in result.output
    assert (git(user, "rev-parse", "HEAD"), git(user, "status", "--porcelain")) == before
    assert git(user, "branch", "--list", "job-branch") == ""
    assert git(user, "symbolic-ref", "HEAD") == "refs/heads/main"


# ---- item 1: concurrent jobs never share a restored cache file --------------------------------

SHARED_CACHE_PIPELINE = """\
    stages: [seed, use]
    seed:
      stage: seed
      script: [mkdir -p c, echo original > c/f]
      cache: {key: shared, paths: [c]}
    writer:
      stage: use
      cache: {key: shared, paths: [c], policy: pull}
      script:
        - echo CHANGED > c/f
        - touch "$SYNC/written"
    reader:
      stage: use
      cache: {key: shared, paths: [c], policy: pull}
      script:
        - for i in $(seq 200); do [ -e "$SYNC/written" ] && break; sleep 0.05; done
        - test -e "$SYNC/written"
        - echo "reader sees $(cat c/f)"
"""


def _entry_file(repo: Path, key: str, rel: str) -> Path:
    return repo / ".localci" / "cache" / key / "data" / rel


def test_two_jobs_on_one_cache_key_at_j2_never_share_a_write(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": SHARED_CACHE_PIPELINE})
    sync = tmp_path / "sync"
    sync.mkdir()
    result = run_cli(repo, "run", "-j", "2", "--var", f"SYNC={sync}")
    assert result.exit_code == 0, result.output
    assert "reader sees original" in result.output
    assert "reader sees CHANGED" not in result.output
    assert _entry_file(repo, "shared", "c/f").read_text() == "original\n"


TWO_RUNS_PIPELINE = """\
    job:
      cache: {key: shared, paths: [c]}
      script:
        - test -e c/f || { mkdir -p c; echo original > c/f; }
        - echo "$NAME restored $(cat c/f | tr '\\n' ' ')"
        - touch "$SYNC/$NAME-restored"
        - for i in $(seq 200); do [ -e "$SYNC/$OTHER-restored" ] && break; sleep 0.05; done
        - echo "$NAME" >> c/f
        - touch "$SYNC/$NAME-wrote"
        - for i in $(seq 200); do [ -e "$SYNC/$OTHER-wrote" ] && break; sleep 0.05; done
        - echo "$NAME finally sees $(cat c/f | tr '\\n' ' ')"
"""


def test_two_pipelines_in_one_repository_never_share_a_write(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {".gitlab-ci.yml": TWO_RUNS_PIPELINE})
    sync = tmp_path / "sync"
    sync.mkdir()
    (sync / "A-restored").touch()  # the seeding run waits for nobody
    (sync / "A-wrote").touch()
    seeded = run_localci(
        repo, "run", "--var", "NAME=seed", "--var", "OTHER=A", "--var", f"SYNC={sync}"
    )
    assert seeded.exit_code == 0, seeded.output
    for stale in sync.iterdir():
        stale.unlink()
    runs = [
        _start_localci(
            repo, "--var", f"NAME={me}", "--var", f"OTHER={other}", "--var", f"SYNC={sync}"
        )
        for me, other in (("A", "B"), ("B", "A"))
    ]
    outputs = [_finish(proc) for proc in runs]
    for name, (code, output) in zip("AB", outputs, strict=True):
        assert code == 0, output
        assert f"{name} restored original seed" in output
        assert f"{name} finally sees original seed {name} " in output
    entry = _entry_file(repo, "shared", "c/f").read_text()
    assert entry in ("original\nseed\nA\n", "original\nseed\nB\n")
    listed = run_cli(repo, "cache", "list")
    assert "shared" in listed.output


def _start_localci(repo: Path, *args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("localci")
    return subprocess.Popen(
        [str(exe), "run", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=120)
    return proc.returncode, output


TRIALS = 20


def _restore_write_read(project: Project, hooks: tuple[TransferHooks, TransferHooks]) -> str:
    """Job 0 restores and rewrites c/f in place while job 1 (another slot) restores and reads
    it; both have restored before either acts. What job 1 read."""
    job = planned("user", cache=[Cache(key="k", paths=("c",), policy="pull")])
    both_restored, written = threading.Barrier(2, timeout=30), threading.Event()
    seen: list[str] = []

    def writer(root: Path) -> None:
        both_restored.wait()
        with (root / "c" / "f").open("r+") as handle:  # in place, same inode
            handle.write("CHANGED!")
        written.set()

    def reader(root: Path) -> None:
        both_restored.wait()
        assert written.wait(30)
        seen.append((root / "c" / "f").read_text())

    def run(slot: int, action: Callable[[Path], None]) -> None:
        project.hooks = hooks[slot]
        project.run(job, action, slot=slot)

    threads = [threading.Thread(target=run, args=args) for args in ((0, writer), (1, reader))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return seen[0] if seen else "<reader did not finish>"


@pytest.mark.parametrize("pipelines", ["one pipeline at -j 2", "two pipelines"])
def test_restored_cache_files_are_private_in_every_trial(tmp_path: Path, pipelines: str) -> None:
    project = Project.make(tmp_path)
    project.run(planned("seed", cache=[Cache(key="k", paths=("c",))]), _seed_cache)
    entry = project.entry("k")
    sealed = read_manifest(entry)
    for trial in range(TRIALS):
        first = project.hooks
        if pipelines == "two pipelines":
            project.new_pipeline()
        seen = _restore_write_read(project, (first, project.hooks))
        assert seen == "original\n", f"trial {trial}: the reader saw {seen!r}"
        assert read_manifest(entry) == sealed and verify_tree(entry, sealed) is None  # type: ignore[arg-type]
        assert (entry / "data" / "c" / "f").read_text() == "original\n"


def _seed_cache(root: Path) -> None:
    (root / "c").mkdir()
    (root / "c" / "f").write_text("original\n")


# ---- item 3: build directories live outside the user's tree ---------------------------------

ESCAPE_PIPELINE = """\
    job:
      script:
        - echo "builds at $CI_BUILDS_DIR"
        - touch "$CI_PROJECT_DIR/../../../../escaped-by-path" || true
        - touch up/escaped-by-symlink || true
        - rm -rf .git ../.git ../../.git ../../../.git
        - git stash -u || true
        - git checkout -- . || true
        - git clean -ffdx || true
        - if git rev-parse --git-dir 2>/dev/null; then echo "FOUND-$((40 + 2))"; fi
"""


def _tree_digest(root: Path) -> dict[str, bytes]:
    """Every path below `root` with its bytes (or link target), `.localci` left out."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if ".localci" in rel.parts:
            continue
        if path.is_symlink():
            found[str(rel)] = str(path.readlink()).encode()
        elif path.is_file():
            found[str(rel)] = path.read_bytes()
        else:
            found[str(rel)] = b"<dir>"
    return found


def test_a_job_cannot_reach_the_users_tree_by_path_symlink_or_git(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "deep" / "er" / "user", {".gitlab-ci.yml": ESCAPE_PIPELINE})
    (user / "up").symlink_to("../../../..")
    git(user, "add", "up")
    git(user, "commit", "-qm", "a committed symlink up the tree")
    (user / "uncommitted.txt").write_text("the user's work\n")
    (user / ".gitlab-ci.yml").write_text(
        (user / ".gitlab-ci.yml").read_text() + "# an uncommitted edit\n"
    )
    before = _tree_digest(tmp_path)
    result = run_localci(user, "run")
    assert result.exit_code == 0, result.output
    assert "FOUND-42" not in result.output
    builds = project_builds_root(user)
    assert f"builds at {builds}/0" in result.output
    assert user.resolve() not in builds.parents
    assert _tree_digest(tmp_path) == before
    assert not list(tmp_path.rglob("escaped-by-*"))
    assert (user / "uncommitted.txt").read_text() == "the user's work\n"
    assert not (user / ".localci" / "builds").exists()


# ---- item 4: masking ----------------------------------------------------------------------------

RAW_SECRET = "Raw$HOME-s3cret!x"  # `$` and `!`: allowed only with `expand: false`
FILE_SECRET = "file-s3cret-Value42"
MASKING_PIPELINE = """\
    job:
      script:
        - head -c 65530 /dev/zero | tr '\\000' x; echo "$RAW"
        - echo "raw seen as $RAW"
        - cat "$KEYFILE"; echo
        - mkdir -p out && echo x > out/f
      cache: {key: "k-$RAW", paths: [out]}
"""


def _masking_repo(tmp_path: Path, variables: str) -> Path:
    return make_repo(
        tmp_path / "p",
        {".gitlab-ci.yml": MASKING_PIPELINE, ".localci/variables.yml": variables},
    )


def test_masked_values_stay_masked_across_the_line_cut_in_keys_and_on_disk(
    tmp_path: Path,
) -> None:
    variables = (
        f"RAW: {{value: '{RAW_SECRET}', masked: true, expand: false}}\n"
        f"KEYFILE: {{value: {FILE_SECRET}, masked: true, file: true}}\n"
    )
    repo = _masking_repo(tmp_path, variables)
    report = tmp_path / "report.json"
    result = run_localci(repo, "run", "--json-report", str(report))
    assert result.exit_code == 0, result.output
    everything = result.output + report.read_text() + _logs(repo)
    for secret in (RAW_SECRET, FILE_SECRET):
        assert secret not in everything
    assert "raw seen as [MASKED]" in result.output  # (d): the job sees the raw value, masked
    # (a) the 64 KiB cut falls inside the value: the piece ends before it, the value is masked
    leaked = everything.find(RAW_SECRET[:6])
    assert leaked < 0, everything[max(0, leaked - 300) : leaked + 100]
    assert "x\n[MASKED]" in _logs(repo)
    listed = run_cli(repo, "cache", "list")
    assert RAW_SECRET not in listed.output and "k-[MASKED]" in listed.output  # (e)
    builds = project_builds_root(repo)
    on_disk = [p for p in builds.rglob("*") if p.is_file() and FILE_SECRET.encode() in _bytes(p)]
    assert on_disk == []  # (f): file variables are removed when the job ends


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _logs(repo: Path) -> str:
    return "".join(p.read_text() for p in (repo / ".localci").rglob("*.log"))


def test_an_invalid_cache_key_from_a_masked_value_is_masked_everywhere(tmp_path: Path) -> None:
    secret = "abcd-s3cret-1234"
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": "job:\n  script: [true]\n  cache: {key: 'a/$TOKEN', paths: [x]}\n",
        },
    )
    report = tmp_path / "report.json"
    result = run_localci(
        repo, "run", "--masked-var", f"TOKEN={secret}", "--json-report", str(report)
    )
    assert result.exit_code == 1, result.output
    assert "a/[MASKED]" in result.output
    for text in (
        result.output,
        report.read_text(),
        _logs(repo),
        run_cli(repo, "cache", "list").output,
    ):
        assert secret not in text


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ('{value: "line-one\\nline-two", masked: true}', "spans several lines"),
        ("{value: short, masked: true}", "is shorter than 8 characters"),
        (
            "{value: 'abc$HOME-xyz', masked: true}",
            "contains '$', which an expanded masked variable cannot hold",
        ),
        ("{value: 'with space-x', masked: true, expand: false}", "contains whitespace"),
    ],
)
def test_values_gitlab_cannot_mask_are_refused_with_their_line(
    tmp_path: Path, entry: str, reason: str
) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": "job:\n  script: [true]\n",
            ".localci/variables.yml": f"A: 1\nTOKEN: {entry}\n",
        },
    )
    result = run_cli(repo, "list")
    assert result.exit_code == 3, result.output
    assert "variables.yml:2" in result.output
    assert f"TOKEN cannot be masked: it {reason}" in result.output


def test_masked_var_and_the_dotenv_convention_mask_values(tmp_path: Path) -> None:
    from_option, from_dotenv = "opt-s3cret-Value", "env-s3cret-Value"
    repo = make_repo(
        tmp_path / "p",
        {".gitlab-ci.yml": 'job:\n  script:\n    - echo "$A $B"\n'},
    )
    env_file = tmp_path / "vars.env"
    env_file.write_text(f"B={from_dotenv}  # masked\n")
    result = run_localci(
        repo, "run", "--masked-var", f"A={from_option}", "--variables-file", str(env_file)
    )
    assert result.exit_code == 0, result.output
    assert "[MASKED] [MASKED]" in result.output
    assert from_option not in result.output + _logs(repo)
    assert from_dotenv not in result.output + _logs(repo)
    refused = run_cli(repo, "list", "--masked-var", "A=short")
    assert refused.exit_code == 2
    assert "A cannot be masked: it is shorter than 8 characters" in refused.output


def test_artifacts_are_stored_as_copies_sharing_no_inode(tmp_path: Path) -> None:
    project = Project.make(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's file\n")
    inodes: dict[str, int] = {}

    def produce(root: Path) -> None:
        (root / "out").mkdir()
        (root / "out" / "model.bin").write_text("weights\n")
        os.link(outside, root / "out" / "linked.txt")  # a job hard-linking an outside file
        inodes.update({p.name: p.stat().st_ino for p in (root / "out").iterdir()})

    project.run(planned("build", artifacts=Artifacts(paths=("out",))), produce)
    stored = artifacts_root(project.store, project.pipeline_id) / job_dir_name("build") / "data"
    for name, ino in inodes.items():
        kept = stored / "out" / name
        assert kept.stat().st_ino != ino and kept.stat().st_nlink == 1
    assert (stored / "out" / "linked.txt").read_text() == "the user's file\n"
    assert outside.stat().st_nlink == 2  # the job's link only, none from the store


# ---- item 7: an interrupt that Python swallowed is not lost ---------------------------------


class _SignalsItselfWhenCollected:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside __del__, where Python drops exceptions


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallow
def test_an_interrupt_swallowed_inside_del_is_raised_again() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    interrupts.reset()
    interrupts.install()
    try:
        _SignalsItselfWhenCollected()  # collected at once; "Exception ignored in ..."
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_requested()
    finally:
        interrupts.reset()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_build_slots_an_older_version_left_in_the_project_are_removed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {"README": "x\n"})
    store = Store(repo)
    store.ensure()
    old = store.path("builds", "0", "p")
    old.mkdir(parents=True)
    (old / "f").write_text("an old workspace\n")
    with store.lock("slot-0"):
        remove_stale(store)  # an older localci is using the slot: kept
        assert (old / "f").is_file()
    remove_stale(store)
    assert not store.path("builds").exists()
