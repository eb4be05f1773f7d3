"""run_bash: exit codes, exact env, line streaming, timeout/cancel and leftover processes."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from localci.execute.process import MAX_LINE_BYTES, ProcessOutcome, _LineSplitter, run_bash

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BASE_ENV = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"}


def run(script: str, cwd: Path, **kwargs: object) -> tuple[ProcessOutcome, list[str]]:
    lines: list[str] = []
    env = kwargs.pop("env", BASE_ENV)
    outcome = run_bash(script, cwd=cwd, env=env, on_output=lines.append, **kwargs)  # type: ignore[arg-type]
    return outcome, lines


def stat_of(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def alive(pid: int) -> bool:
    """Running, not a zombie: this sandbox's init does not reap orphans, so zombies linger."""
    fields = stat_of(pid)
    return fields is not None and fields[0] != "Z"


def session_members(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_of(int(entry.name))
            if fields and fields[0] != "Z" and sid in (int(fields[2]), int(fields[3])):
                found.append(int(entry.name))
    return found


def our_zombies() -> list[int]:
    me = os.getpid()
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_of(int(entry.name))
            if fields and fields[0] == "Z" and int(fields[1]) == me:
                zombies.append(int(entry.name))
    return zombies


@pytest.fixture
def reap_strays() -> Iterator[list[int]]:
    """Pids a test deliberately lets escape; killed afterwards so the suite leaves nothing."""
    strays: list[int] = []
    yield strays
    for pid in strays:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def pids_in(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()]


@pytest.mark.parametrize(("script", "code"), [("true", 0), ("exit 3", 3), ("false", 1)])
def test_exit_codes(tmp_path: Path, script: str, code: int) -> None:
    outcome, _ = run(script, tmp_path)
    assert outcome == ProcessOutcome(
        code, timed_out=False, canceled=False, duration_s=outcome.duration_s
    )


def test_killed_by_foreign_signal_is_128_plus_n(tmp_path: Path) -> None:
    outcome, _ = run("kill -KILL $$", tmp_path)
    assert outcome.exit_code == 128 + signal.SIGKILL
    assert not outcome.timed_out
    assert not outcome.canceled


def test_exact_env_cwd_and_merged_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCI_MUST_NOT_LEAK", "1")
    script = 'echo "${LOCALCI_MUST_NOT_LEAK:-absent} $ONLY"; pwd; echo to-stderr >&2'
    outcome, lines = run(script, tmp_path, env={**BASE_ENV, "ONLY": "given"})
    assert outcome.exit_code == 0
    assert lines == ["absent given", str(tmp_path), "to-stderr"]


def test_no_profile_or_rc_is_read(tmp_path: Path) -> None:
    (tmp_path / ".bashrc").write_text("echo rc-was-read\n")
    (tmp_path / ".bash_profile").write_text("echo profile-was-read\n")
    env = {**BASE_ENV, "HOME": str(tmp_path), "BASH_ENV": ""}
    outcome, lines = run("echo only", tmp_path, env=env)
    assert outcome.exit_code == 0
    assert lines == ["only"]


def test_partial_last_line_and_carriage_returns(tmp_path: Path) -> None:
    outcome, lines = run(r"printf 'progress 1\rprogress 2\r\ndone\nno newline'", tmp_path)
    assert outcome.exit_code == 0
    assert lines == ["progress 1\rprogress 2\r", "done", "no newline"]


def test_blank_lines_are_kept(tmp_path: Path) -> None:
    _, lines = run(r"printf 'a\n\n\nb\n'", tmp_path)
    assert lines == ["a", "", "", "b"]


def test_unicode_and_invalid_utf8(tmp_path: Path) -> None:
    outcome, lines = run(r"echo 'ünïcödé ✓ 日本語 🙂'; printf '\xff\xfe ok \xe2\x82\n'", tmp_path)
    assert outcome.exit_code == 0
    assert lines == ["ünïcödé ✓ 日本語 🙂", "\ufffd\ufffd ok \ufffd"]


def test_long_line_is_split_on_character_boundaries(tmp_path: Path) -> None:
    # 100000 two-byte characters: a cut at exactly 64 KiB would land inside one of them.
    script = "python3 -c \"import sys; sys.stdout.write('x' + 'é' * 100000 + '\\n')\""
    outcome, lines = run(script, tmp_path)
    assert outcome.exit_code == 0
    assert len(lines) > 1
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert "".join(lines) == "x" + "é" * 100000


def test_huge_output_streams_in_bounded_pieces(tmp_path: Path) -> None:
    total = 0
    longest = 0
    count = 0

    def consume(line: str) -> None:
        nonlocal total, longest, count
        total += len(line)
        longest = max(longest, len(line))
        count += 1

    script = "head -c 40000000 /dev/zero | tr '\\0' x; echo; seq 1 200000"
    outcome = run_bash(script, cwd=tmp_path, env=BASE_ENV, on_output=consume)
    assert outcome.exit_code == 0
    assert longest <= MAX_LINE_BYTES
    assert count >= 40000000 // MAX_LINE_BYTES + 200000
    assert total == 40000000 + sum(len(str(n)) for n in range(1, 200001))


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"""
        echo $$ > {pids}
        sleep 1000 & echo $! >> {pids}
        (sleep 1000; echo never) & echo $! >> {pids}
        nohup sleep 1000 > /dev/null 2>&1 & echo $! >> {pids}
        setsid sleep 1000 & echo $! >> {pids}
        set -m; sleep 1000 & echo $! >> {pids}; set +m
        echo started
        sleep 1000
    """
    outcome, lines = run(script, tmp_path, timeout_s=1.0, term_grace_s=2.0)
    assert outcome.timed_out
    assert not outcome.canceled
    assert outcome.exit_code is None
    assert "started" in lines
    assert "never" not in lines
    leader, *children = pids_in(pids)
    assert len(children) == 5
    assert [pid for pid in [leader, *children] if alive(pid)] == []
    assert session_members(leader) == []
    assert our_zombies() == []


def test_term_ignoring_process_gets_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"bash -c \"trap '' TERM; echo \\$\\$ > {pids}; sleep 1000\" & wait"
    outcome, _ = run(script, tmp_path, timeout_s=0.5, term_grace_s=0.5)
    assert outcome.timed_out
    assert not alive(pids_in(pids)[0])


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    cancel = threading.Event()
    pids = tmp_path / "pids"
    script = f"sleep 1000 & echo $! > {pids}; echo ready; sleep 1000"
    lines: list[str] = []

    def on_output(line: str) -> None:
        lines.append(line)
        if line == "ready":
            threading.Thread(target=cancel.set).start()

    outcome = run_bash(script, cwd=tmp_path, env=BASE_ENV, on_output=on_output, cancel=cancel)
    assert outcome.canceled
    assert not outcome.timed_out
    assert outcome.exit_code is None
    assert not alive(pids_in(pids)[0])


def test_cancel_before_start_runs_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    outcome, lines = run(f"touch {tmp_path}/ran", tmp_path, cancel=cancel)
    assert outcome.canceled
    assert outcome.exit_code is None
    assert lines == []
    assert not (tmp_path / "ran").exists()


def test_background_process_left_running_does_not_hang(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"""
        echo $$ > {pids}
        sleep 1000 & echo $! >> {pids}
        nohup sleep 1000 & echo $! >> {pids}
        (trap '' TERM; exec sleep 1000) & echo $! >> {pids}
        echo done
    """
    outcome, lines = run(script, tmp_path, term_grace_s=0.5)
    assert outcome.exit_code == 0
    assert not outcome.timed_out
    assert lines[-1] == "done"
    leader, *children = pids_in(pids)
    assert [pid for pid in children if alive(pid)] == []
    assert session_members(leader) == []
    assert our_zombies() == []


def test_escaped_daemon_holding_the_pipe_does_not_hang(
    tmp_path: Path, reap_strays: list[int]
) -> None:
    pids = tmp_path / "pids"
    # setsid + a parent that exits: reparented to init, out of reach (as under gitlab-runner).
    script = f"(setsid sleep 1000 & echo $! > {pids}); echo done"
    outcome, lines = run(script, tmp_path)
    reap_strays.extend(pids_in(pids))
    assert outcome.exit_code == 0
    assert lines == ["done"]


def test_output_callback_error_still_cleans_up(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    def explode(line: str) -> None:
        raise RuntimeError(line)

    script = f"sleep 1000 & echo $! > {pids}; echo boom; sleep 1000"
    with pytest.raises(RuntimeError, match="boom"):
        run_bash(script, cwd=tmp_path, env=BASE_ENV, on_output=explode, term_grace_s=0.5)
    assert not alive(pids_in(pids)[0])
    assert our_zombies() == []


def test_concurrent_runs_keep_their_output_apart(tmp_path: Path) -> None:
    results: dict[int, tuple[ProcessOutcome, list[str]]] = {}

    def worker(index: int) -> None:
        script = f"for i in $(seq 1 2000); do echo job{index}-$i; done; sleep 0.2 & exit {index}"
        results[index] = run(script, tmp_path)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, (outcome, lines) in results.items():
        assert outcome.exit_code == index
        assert lines == [f"job{index}-{i}" for i in range(1, 2001)]
    assert our_zombies() == []


def test_large_script_is_passed_as_a_file(tmp_path: Path) -> None:
    script = "".join(f"echo line{i} > /dev/null\n" for i in range(20000)) + "echo end\n"
    assert len(script) > 256 * 1024
    outcome, lines = run(script, tmp_path)
    assert outcome.exit_code == 0
    assert lines == ["end"]


@pytest.mark.parametrize("chunk", [1, 7, 4096, 60000, MAX_LINE_BYTES, 100000])
def test_line_splitter_bounds_every_piece_whatever_the_reads(chunk: int) -> None:
    lines = [b"short", b"", "é".encode() * 50000, b"x" * 200000, b"tail without newline"]
    data = b"\n".join(lines)
    pieces: list[str] = []
    splitter = _LineSplitter(pieces.append)
    for start in range(0, len(data), chunk):
        splitter.feed(data[start : start + chunk])
    splitter.flush()
    assert all(len(piece.encode()) <= MAX_LINE_BYTES for piece in pieces)
    assert "".join(pieces) == data.decode().replace("\n", "")
    assert "\ufffd" not in "".join(pieces)
    assert pieces[:2] == ["short", ""]
