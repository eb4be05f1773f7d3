"""The parts of a job's run on this machine: its log (masked lines to the file and the
reporters), its bash session in the workspace (venv or host), the venv made while the
workspace is written, and the note that lets a later run end what a killed localci left."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from localci.events import Event, JobOutput
from localci.execute import script as scripts
from localci.execute.process import ProcessOutcome, kill_session, run_bash
from localci.execute.venvs import Venv
from localci.execute.workspace import Workspace
from localci.plan.variables import mask_text

__all__ = ["SESSION_FILE", "EarlyVenv", "HostSession", "LogWriter", "end_leftovers"]

SESSION_FILE = "job-session"


class LogWriter:
    """Writes masked lines to the job log and emits them as events."""

    def __init__(
        self, log: object, name: str, emit: Callable[[Event], None], secrets: tuple[str, ...]
    ) -> None:
        self.log = log
        self.name = name
        self.emit = emit
        self.secrets = secrets
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        masked = mask_text(text, self.secrets) if self.secrets else text
        with self.lock:
            self.log.write(masked + "\n")  # type: ignore[attr-defined]
            self.log.flush()  # type: ignore[attr-defined]
            self.lines.append(masked)
        self.emit(JobOutput(self.name, masked))

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)


class HostSession:
    """Runs a job's programs with bash on this machine, in the workspace (venv or host)."""

    def __init__(
        self,
        ws: Workspace,
        env: dict[str, str],
        color: bool,
        log: Callable[[str], None],
        secrets: Sequence[str] = (),
    ) -> None:
        self.ws = ws
        self.env = env
        self.host_env = env
        self.color = color
        self.log = log
        self.secrets = secrets  # never cut inside one when a long line is split

    def run(
        self,
        commands: Sequence[str],
        *,
        after: bool,
        trace: bool,
        timeout_s: float | None,
        cancel: threading.Event | None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ProcessOutcome:
        make = scripts.after_script if after else scripts.main_script
        ws = self.ws
        return run_bash(
            make(commands, trace=trace, color=self.color),
            cwd=ws.project_dir,
            env={**self.env, **(extra_env or {})},
            on_output=self.log,
            timeout_s=timeout_s,
            cancel=cancel,
            on_start=lambda pid: remember_session(ws, pid),
            unsplit=self.secrets,
        )


def remember_session(ws: Workspace, pid: int) -> None:
    """Note the job's session so a run after a SIGKILL of localci can end what it left."""
    # A plain write: the slot is locked, and a torn or stale number is harmless because
    # end_leftovers kills only processes that carry this workspace in their environment.
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    (ws.state_dir / SESSION_FILE).write_text(str(pid))


def end_leftovers(ws: Workspace, writer: LogWriter) -> None:
    """Kill processes a killed localci left running in this slot (we hold its lock now)."""
    marker = ws.state_dir / SESSION_FILE
    try:
        session = int(marker.read_text().strip())
    except (OSError, ValueError):
        return
    killed = kill_session(session, f"CI_PROJECT_DIR={ws.project_dir}")
    if killed:
        writer.line(f"Ended {killed} process(es) an interrupted earlier run left in this workspace")
    marker.unlink(missing_ok=True)


class EarlyVenv:
    """VenvFactory.fresh running in its own thread; its log lines are kept until result()."""

    def __init__(self, make: Callable[[Callable[[str], None]], tuple[Venv, bool]]) -> None:
        self._lines: list[str] = []
        self._outcome: tuple[Venv, bool] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[Callable[[str], None]], tuple[Venv, bool]]) -> None:
        try:
            self._outcome = make(self._lines.append)
        except BaseException as exc:  # re-raised in the job's thread by result()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self, log: Callable[[str], None]) -> tuple[Venv, bool]:
        self._thread.join()
        for line in self._lines:
            log(line)
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome
