"""Run one bash program as its own process group: stream its output as lines, enforce timeout
and cancel, and leave none of its processes behind (TERM, grace, KILL; the runner's semantics).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localci.errors import LocalCIError

__all__ = ["BashNotFound", "ProcessOutcome", "run_bash"]

MAX_LINE_BYTES = 64 * 1024
_READ_SIZE = 64 * 1024
_POLL_S = 0.1
# Once the job's processes are dead, only an escaped daemon can still hold the pipe open.
_DRAIN_S = 0.5
_SCAN_S = 1.0
_TIMED_OUT = "timeout"
_CANCELED = "cancel"


class BashNotFound(LocalCIError):
    """No `bash` executable on this machine's PATH."""


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """How a bash program ended. `exit_code` is None when localci killed it (timeout/cancel);
    a death by someone else's signal N is reported as 128+N, as a shell would."""

    exit_code: int | None
    timed_out: bool
    canceled: bool
    duration_s: float


def run_bash(
    script: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_output: Callable[[str], None],
    timeout_s: float | None = None,
    cancel: threading.Event | None = None,
    term_grace_s: float = 3.0,
    on_start: Callable[[int], None] | None = None,
    unsplit: Sequence[str] = (),
) -> ProcessOutcome:
    """Run `script` with `bash --noprofile --norc` in `cwd` with exactly `env`, stdin /dev/null.

    stdout and stderr are merged and handed to `on_output` line by line (without the `\\n`;
    lines longer than 64 KiB arrive in pieces, never cut inside one of the `unsplit` texts, so
    a masked value reaches `on_output` whole and can be masked). On timeout or cancel the
    process group gets SIGTERM, then SIGKILL after `term_grace_s`. When bash exits, whatever it
    left running is ended the same way. Safe to call from several threads at once.
    """
    if cancel is not None and cancel.is_set():
        return ProcessOutcome(None, timed_out=False, canceled=True, duration_s=0.0)
    start = time.monotonic()
    deadline = None if timeout_s is None else start + timeout_s
    with _script_file(script) as path:
        splitter = _LineSplitter(on_output, tuple(t.encode() for t in unsplit if t))
        child = _Child(_spawn(path, cwd, env), splitter)
        try:
            if on_start is not None:
                on_start(child.proc.pid)
            stop = _pump(child, deadline, cancel)
        finally:
            child.shutdown(term_grace_s)
    code = child.proc.returncode
    return ProcessOutcome(
        exit_code=None if stop else (128 - code if code < 0 else code),
        timed_out=stop == _TIMED_OUT,
        canceled=stop == _CANCELED,
        duration_s=time.monotonic() - start,
    )


def _pump(child: _Child, deadline: float | None, cancel: threading.Event | None) -> str | None:
    """Forward output until bash exits (None), the deadline passes, or cancel is set."""
    while not child.exited():
        if cancel is not None and cancel.is_set():
            return _CANCELED
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return _TIMED_OUT
        child.read(_POLL_S if deadline is None else min(_POLL_S, deadline - now))
    return None


_SCRIPT_PREFIX = "localci-job-"


@contextlib.contextmanager
def _script_file(script: str) -> Iterator[Path]:
    # A file, not `bash -c`: one argument is capped at 128 KiB and stdin must stay /dev/null.
    # The pid in the name lets remove_orphaned_scripts spot the files of a SIGKILLed localci.
    fd, name = tempfile.mkstemp(prefix=f"{_SCRIPT_PREFIX}{os.getpid()}-", suffix=".sh")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(script.encode("utf-8", "surrogateescape"))
        yield path
    finally:
        path.unlink(missing_ok=True)


def remove_orphaned_scripts() -> int:
    """Delete job script files whose localci process is gone (a SIGKILL skips the cleanup of
    the `finally` above); returns how many went. Only this user's files are considered."""
    removed = 0
    uid = os.getuid()
    try:
        candidates = list(Path(tempfile.gettempdir()).glob(f"{_SCRIPT_PREFIX}*-*.sh"))
    except OSError:
        return 0
    for path in candidates:
        pid = path.name.removeprefix(_SCRIPT_PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or process_alive(int(pid)) or path.lstat().st_uid != uid:
                continue
            path.unlink()
        except OSError:
            continue
        removed += 1
    return removed


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spawn(path: Path, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_bash(), "--noprofile", "--norc", str(path)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=0,
        # Own session and process group: one killpg reaches the whole job. close_fds (the
        # default) keeps a concurrently started job from inheriting this job's pipe.
        start_new_session=True,
    )


def _bash() -> str:
    found = shutil.which("bash")
    if found is None:
        raise BashNotFound("bash is required to run job scripts and was not found on PATH")
    return found


class _LineSplitter:
    """Bytes in, decoded lines out; memory stays bounded by MAX_LINE_BYTES plus one read."""

    def __init__(self, emit: Callable[[str], None], unsplit: tuple[bytes, ...] = ()) -> None:
        self._emit = emit
        self._buffer = bytearray()
        self._unsplit = unsplit

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            self._send(buffer[start:end])
            start = end + 1
        del buffer[:start]
        while len(buffer) > MAX_LINE_BYTES:
            cut = self._cut(buffer)
            self._send(buffer[:cut])
            del buffer[:cut]

    def flush(self) -> None:
        if self._buffer:
            self._send(self._buffer)
            self._buffer.clear()

    def _send(self, line: bytes | bytearray) -> None:
        while len(line) > MAX_LINE_BYTES:
            cut = self._cut(line)
            self._emit(line[:cut].decode("utf-8", errors="replace"))
            line = line[cut:]
        self._emit(line.decode("utf-8", errors="replace"))

    def _cut(self, buffer: bytes | bytearray) -> int:
        """Where to cut a too-long line: at MAX_LINE_BYTES, moved back to the start of an
        `unsplit` text that would straddle it (and off a UTF-8 sequence)."""
        cut = _char_boundary(buffer, MAX_LINE_BYTES)
        moved = True
        while moved:  # a move can make another text straddle the new cut
            moved = False
            for text in self._unsplit:
                start = buffer.find(text, max(0, cut - len(text) + 1), cut + len(text) - 1)
                if 0 < start < cut:
                    cut, moved = start, True
        return cut


def _char_boundary(buffer: bytes | bytearray, limit: int) -> int:
    """The largest cut <= limit that does not split a UTF-8 sequence (if it is valid)."""
    cut = limit
    while cut > limit - 3 and buffer[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


class _Child:
    """The running bash: its output pipe, its exit, and the processes it started."""

    def __init__(self, proc: subprocess.Popen[bytes], lines: _LineSplitter) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self._lines = lines
        self._tree = _Tree(proc.pid)
        self._next_scan = time.monotonic() + _SCAN_S
        self._pipe = proc.stdout.fileno()
        os.set_blocking(self._pipe, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._pipe, selectors.EVENT_READ)
        self._pidfd = _pidfd(proc.pid)
        if self._pidfd is not None:
            # Wakes the reader the moment bash exits, even while a background process holds
            # the pipe open.
            self._selector.register(self._pidfd, selectors.EVENT_READ)
        self._open = True

    def exited(self) -> bool:
        """Whether bash has exited; it is not reaped, so its pid and group id stay reserved."""
        options = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            return os.waitid(os.P_PID, self.proc.pid, options) is not None
        except ChildProcessError:
            return True

    def read(self, timeout: float) -> None:
        """Wait up to `timeout` for output or bash's exit, forwarding what arrived."""
        for key, _ in self._selector.select(max(timeout, 0.0)):
            if key.fd == self._pipe:
                self._read_pipe()
            else:
                # A pidfd stays readable once bash exited; keep it from waking every select.
                self._selector.unregister(key.fd)
        if time.monotonic() >= self._next_scan:
            # Meets processes that leave the session while their parent still runs, so they
            # are still known once that parent exits and they are reparented to init.
            self._tree.scan()
            self._next_scan = time.monotonic() + _SCAN_S

    def shutdown(self, grace_s: float) -> None:
        """End every process of the job, drain the pipe, reap bash; safe after any exit."""
        try:
            if self._tree.signal(signal.SIGTERM):
                self._wait_for_tree(grace_s)
                self._tree.signal(signal.SIGKILL)
                # SIGKILL is asynchronous: wait until the processes are really gone.
                self._wait_for_tree(_DRAIN_S)
            end = time.monotonic() + _DRAIN_S
            while self._open and time.monotonic() < end:
                self.read(end - time.monotonic())
            self._lines.flush()
        finally:
            if not self.exited():
                # Only reached when on_output raised during the shutdown itself.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self._close()

    def _wait_for_tree(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and self._job_alive():
            self.read(0.05)

    def _read_pipe(self) -> None:
        try:
            data = os.read(self._pipe, _READ_SIZE)
        except BlockingIOError:
            return
        if data:
            self._lines.feed(data)
        else:
            self._selector.unregister(self._pipe)
            self._open = False

    def _job_alive(self) -> bool:
        members = self._tree.scan()
        if members is None:
            return not self.exited()
        return bool(members)

    def _close(self) -> None:
        self._selector.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    ppid: int
    pgid: int
    sid: int
    start: int


class _Tree:
    """The job's processes, found in /proc and remembered across scans.

    The process group catches `cmd &` and `nohup`; the session catches `set -m` jobs, which get
    their own group; descent from bash or from any process seen before catches `setsid`
    children, even after their parent exited, if a scan saw them first (bash is scanned while
    alive, every _SCAN_S and before each signal). A daemon that double-forks between scans is
    reparented to init and escapes, as it would under gitlab-runner. PR_SET_CHILD_SUBREAPER
    would keep those, but it applies to a whole process: localci would adopt the orphans of
    every thread's children, and setting it on bash alone needs a preexec_fn, which is unsafe
    with threads.
    """

    def __init__(self, leader: int) -> None:
        self._leader = leader
        self._known: dict[int, int] = {}  # pid -> start time, which tells a reused pid apart

    def scan(self) -> set[int] | None:
        """Live (non-zombie) processes of the job now; None where there is no /proc."""
        table = _process_table()
        if table is None:
            return None
        roots = {self._leader}
        roots.update(pid for pid, stat in table.items() if self._leader in (stat.pgid, stat.sid))
        roots.update(
            pid for pid, start in self._known.items() if pid in table and table[pid].start == start
        )
        members = {pid for pid in _descendants(roots, table) if table[pid].state != "Z"}
        members.discard(os.getpid())
        self._known.update((pid, table[pid].start) for pid in members)
        return members

    def signal(self, signum: int) -> bool:
        """Signal the job's process group and every other process of the job.

        False when nothing of the job was alive (only known where there is /proc).
        """
        # Scan before signalling: once bash dies its children are reparented and look unrelated.
        members = self.scan()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._leader, signum)
        for pid in members or ():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        return members is None or bool(members)


def _descendants(roots: set[int], table: Mapping[int, _Stat]) -> set[int]:
    """`roots` present in `table` and everything below them."""
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    pending = [pid for pid in roots if pid in table]
    found: set[int] = set()
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return found


def _process_table() -> dict[int, _Stat] | None:
    try:
        names = os.listdir("/proc")  # noqa: PTH208 (hot path)
    except OSError:
        return None
    table: dict[int, _Stat] = {}
    # Raw os calls, not pathlib: this runs at the end of every job, over every process.
    for name in names:
        if name.isdigit():
            try:
                fd = os.open(f"/proc/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                table[int(name)] = _parse_stat(os.read(fd, 4096))
            except OSError:
                continue
            finally:
                os.close(fd)
    return table


def _parse_stat(raw: bytes) -> _Stat:
    # The command name is in parentheses and may itself contain spaces or `)`; the fields after
    # it start at field 3 (state) of proc(5), so starttime (field 22) is index 19.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return _Stat(
        fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
    )


def kill_session(session_id: int, marker: str) -> int:
    """SIGKILL the processes of a session left behind by a killed localci; returns the count.

    A job's bash leads its own session (start_new_session), so its session id is its pid.
    Since that pid may have been reused, only processes whose environment contains `marker`
    (e.g. `CI_PROJECT_DIR=<workspace>`) are killed.
    """
    killed = 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[3] == str(session_id) and _has_env(entry, marker):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def _has_env(proc: Path, marker: str) -> bool:
    try:
        return marker.encode() in (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
