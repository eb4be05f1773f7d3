"""Tests for localci.state (layout, ids, locks) and localci.files (atomic writes, cache dir)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localci.errors import StateError
from localci.files import (
    TMP_SUFFIX,
    LockBusy,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    user_cache_dir,
)
from localci.state import Store


def test_ensure_creates_layout_ignored_by_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    store = Store(tmp_path)
    store.ensure()
    store.ensure()  # idempotent
    assert store.root == tmp_path.resolve() / ".localci"
    assert (store.root / ".gitignore").read_text() == "*\n"
    assert (
        (store.root / "CACHEDIR.TAG")
        .read_text()
        .startswith("Signature: 8a477f597d28d172789f06886806bc55")
    )
    for sub in ("locks", "pipelines", "snapshots", "objects", "slots"):
        assert (store.root / sub).is_dir()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""


def test_ensure_unwritable_gives_state_error(tmp_path: Path) -> None:
    (tmp_path / ".localci").write_text("not a directory")
    with pytest.raises(StateError) as info:
        Store(tmp_path).ensure()
    assert ".localci" in str(info.value)
    assert "hint:" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_ensure_read_only_project_gives_state_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(StateError, match="make the project directory writable"):
            Store(tmp_path).ensure()
    finally:
        tmp_path.chmod(0o755)


def test_pipeline_ids_increase_and_dirs_exist(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.latest_pipeline_id() is None
    first, second = store.next_pipeline_id(), store.next_pipeline_id()
    assert (first, second) == (1, 2)
    assert store.pipeline_dir(2).is_dir()
    assert store.latest_pipeline_id() == 2


def test_pipeline_ids_survive_a_lost_counter(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for _ in range(3):
        store.next_pipeline_id()
    (store.root / "pipelines" / "counter").write_text("garbage")
    assert store.next_pipeline_id() == 4


_ID_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from localci.state import Store
    store = Store(Path(sys.argv[1]))
    print(" ".join(str(store.next_pipeline_id()) for _ in range(25)))
    """
)


def test_next_pipeline_id_never_repeats_across_processes(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ID_WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    ids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        ids += [int(x) for x in out.split()]
    assert sorted(ids) == list(range(1, 76))


def test_lock_excludes_within_process_and_shared_locks_coexist(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ensure()
    with store.lock("a"):
        with pytest.raises(LockBusy), store.lock("a", blocking=False):
            pass
        with store.lock("b", blocking=False):
            pass
    with (
        store.lock("s", shared=True),
        store.lock("s", shared=True, blocking=False),
        pytest.raises(LockBusy),
        store.lock("s", blocking=False),
    ):
        pass
    with store.lock("a", blocking=False):
        pass


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ensure()
    holder = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from localci.state import Store
        with Store(Path(sys.argv[1])).lock("shared-thing"):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy), store.lock("shared-thing", blocking=False):
            pass
    finally:
        proc.communicate("", timeout=60)
    with store.lock("shared-thing", blocking=False):
        pass


def test_lock_file_removed_by_holder_is_not_shared(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ensure()
    with store.lock("p"):
        store.remove_lock_file("p")
        assert not store.lock_path("p").exists()
    with store.lock("p"), pytest.raises(LockBusy), store.lock("p", blocking=False):
        pass


def test_invalid_lock_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid lock name"):
        Store(tmp_path).lock_path("../x")


def test_atomic_writes_replace_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    atomic_write_text(target, "text")
    assert target.read_text() == "text"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_failed_atomic_write_keeps_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "counter"
    atomic_write_text(target, "old")

    def disk_full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(StateError, match="free some disk space") as info:
        atomic_write_text(target, "new")
    assert str(target) in str(info.value)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TMP_SUFFIX)]


def test_user_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOCALCI_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "localci"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "localci"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "localci"
    monkeypatch.setenv("LOCALCI_CACHE_DIR", str(tmp_path / "explicit"))
    assert user_cache_dir() == tmp_path / "explicit"
