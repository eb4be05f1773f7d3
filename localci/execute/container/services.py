"""A job's `services:` as GitLab's Docker executor runs them: one container each on the job's
network, reachable under GitLab's aliases, waited for on their exposed TCP ports.

"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localci.config.model import Service
from localci.config.services import host_names
from localci.execute.container.engine import Engine, EngineError, environment_args

__all__ = ["WAIT_TIMEOUT_S", "StartedService", "service_aliases", "wait_for_ports"]

# gitlab-runner's default `wait_for_services_timeout`.
WAIT_TIMEOUT_S = 30.0
_LISTEN = "0A"


def service_aliases(image_name: str, alias: str | None) -> tuple[str, ...]:
    """GitLab's host names for a service (`localci.config.services`), those a network alias
    can be."""
    return tuple(name for name in host_names(image_name, alias) if _valid_host(name))


def _valid_host(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name) is not None


@dataclass(frozen=True, slots=True)
class StartedService:
    """A running service container and the names the job reaches it by."""

    service: Service
    image: str
    container: str
    aliases: tuple[str, ...]


def start_service(
    engine: Engine,
    *,
    service: Service,
    image: str,
    container: str,
    network: str,
    labels: Sequence[str],
    variables: Mapping[str, str],
    client_env: Mapping[str, str],
) -> StartedService:
    """`<engine> run -d` one service with its aliases, entrypoint, command and variables.

    The values travel in the client's environment (`-e NAME`), never on its command line."""
    aliases = service_aliases(image, service.alias)
    args = ["run", "-d", "--name", container, "--network", network]
    for label in labels:
        args += ["--label", label]
    for alias in aliases:
        args += ["--network-alias", alias]
    client, env_args = environment_args(variables, client_env)
    args += env_args
    if service.image.user:
        args += ["--user", service.image.user]
    if service.image.platform:
        args += ["--platform", service.image.platform]
    entry = service.image.entrypoint
    if entry is not None:
        args += ["--entrypoint", entry[0] if entry else ""]
    args.append(image)
    if entry:
        args += list(entry[1:])
    if service.command is not None:
        args += list(service.command)
    engine.command(*args, env=client)
    return StartedService(service, image, container, aliases)


def wait_for_ports(
    engine: Engine,
    started: StartedService,
    ports: Sequence[int],
    log: Callable[[str], None],
    timeout_s: float = WAIT_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> bool:
    """GitLab's wait-for-service: until every port listens in the service, or `timeout_s`.

    Listening sockets are read from the service's network namespace (/proc/PID/net/tcp) on
    this machine; where the engine runs in a VM (Docker Desktop) they are read by the service's
    own shell. Returns False (after warning in the job log, as GitLab does) on timeout."""
    if not ports:
        return True
    deadline = time.monotonic() + timeout_s
    waiting = set(ports)
    sockets = _Sockets(engine, started.container)
    while True:
        listening = sockets.listening()
        if listening is None:
            break  # the service exited
        waiting -= listening
        if not waiting or time.monotonic() >= deadline:
            break
        # Reading /proc costs nothing: look often. Asking the engine costs a process each time.
        pause = 0.05 if sockets.pid else 0.2
        if cancel is not None and cancel.wait(pause):
            return True  # the job is canceled: nothing waits for the service any more
        if cancel is None:
            time.sleep(pause)
    if not waiting:
        return True
    names = ", ".join(str(p) for p in sorted(waiting))
    alias = started.aliases[0] if started.aliases else "-"
    log(
        f"*** WARNING: Service {started.image} (alias {alias}) "
        f"probably didn't start properly: no listener on port(s) {names} after "
        f"{timeout_s:.0f}s."
    )
    tail = engine.command("logs", "--tail", "20", started.container, check=False)
    for line in (tail.stdout + tail.stderr).splitlines():
        log(f"  {line}")
    log("*********")
    return False


class _Sockets:
    """A service's listening TCP ports. The engine is asked for the service's pid once; while
    that process lives its /proc tables are read directly (no engine call per look). Where they
    cannot be read (an engine in a VM) the service's own shell reads them, each time."""

    def __init__(self, engine: Engine, container: str) -> None:
        self.engine = engine
        self.container = container
        self.pid = ""  # set while the service's /proc tables are readable from here

    def listening(self) -> set[int] | None:
        """The ports listened on, or None when the service is not running."""
        if self.pid:
            tables = _proc_tables(self.pid)
            if tables is not None:
                return _parse_listeners(tables)
            self.pid = ""  # gone: the engine says whether the service stopped
        state = self.engine.command(
            "inspect", "--format", "{{.State.Running}} {{.State.Pid}}", self.container, check=False
        )
        running, _, pid = state.stdout.strip().partition(" ")
        if state.returncode != 0 or running != "true":
            return None
        tables = _proc_tables(pid) if pid.isdigit() and pid != "0" else None
        if tables is not None:
            self.pid = pid
        else:
            tables = self.engine.command(
                "exec", self.container, "sh", "-c", "cat /proc/net/tcp /proc/net/tcp6", check=False
            ).stdout
        return _parse_listeners(tables)


def _proc_tables(pid: str) -> str | None:
    try:
        return "".join(
            Path(f"/proc/{pid}/net/{name}").read_text(encoding="ascii", errors="replace")
            for name in ("tcp", "tcp6")
        )
    except OSError:
        return None


def _parse_listeners(tables: str) -> set[int]:
    ports = set()
    for line in tables.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN and ":" in fields[1]:
            try:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
            except ValueError:
                continue
    return ports


class ServiceLogs:
    """CI_DEBUG_SERVICES=true: each service's output streamed into the job log."""

    def __init__(self, engine: Engine, log: Callable[[str], None]) -> None:
        self._engine = engine
        self._log = log
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []

    def follow(self, started: StartedService) -> None:
        prefix = f"[service:{started.aliases[0] if started.aliases else started.image}]"
        try:
            proc = subprocess.Popen(
                [self._engine.cli, "logs", "-f", started.container],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise EngineError(f"cannot follow the logs of {started.image}: {exc}") from exc
        self._procs.append(proc)
        thread = threading.Thread(target=self._pump, args=(proc, prefix), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump(self, proc: subprocess.Popen[str], prefix: str) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._log(f"{prefix} {line.rstrip()}")

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        for thread in self._threads:
            thread.join(timeout=2)
