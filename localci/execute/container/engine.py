"""The container engine: Docker or Podman, found once and driven through its command line.

Why the CLI and not a client library (docker-py): Podman needs no daemon and exposes an API
socket only when the user enables `podman.socket`; its CLI works rootful and rootless out of
the box. The Docker and Podman CLIs take the same arguments for everything localci does (run,
rm, network, pull, image inspect, ps, logs), so one code path serves both, adds no dependency,
and honours the user's own engine configuration (contexts, DOCKER_HOST, CONTAINER_HOST,
containers.conf) exactly as their shell does.

Detection asks the engine itself (`info`), so a Docker CLI whose daemon is unreachable is not
picked; the answer is cached on disk for a few minutes, keyed on the CLIs and the variables that
steer them, because `podman info` alone costs more than a whole cached venv job. A local Podman
(no daemon to reach) is asked `version` instead, ten times cheaper than `info`; a remote one
(`podman version` names its server) is asked `info`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from localci.errors import LocalCIError
from localci.files import atomic_write_json, user_cache_dir

__all__ = ["ENGINES", "Engine", "EngineError", "detect_engine", "environment_args"]

ENGINES = ("docker", "podman")
# One file per key: shells and tools with different PATHs would evict each other's answer.
_CACHE_DIR = "engines"
_CACHE_TTL_S = 300.0
_PROBE_TIMEOUT_S = 20.0
# The variables that change which engine a CLI talks to, hence the cache key.
_STEERING = (
    "PATH",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "XDG_RUNTIME_DIR",
)
_PODMAN_VERSION_FORMAT = "{{json .Client.Version}} {{json .Server}}"
_INFO_FORMAT = {
    "docker": "{{json .ServerVersion}} {{json .SecurityOptions}}",
    "podman": "{{json .Version.Version}} {{json .Host.Security.Rootless}}",
}


# Names the engine's CLI (or the bash that starts it) reads from its own environment: job
# variables with these names reach the container on the command line instead.
_CLIENT_NAMES = frozenset(
    {"PATH", "HOME", "TMPDIR", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "CDPATH", "IFS"}
)
_CLIENT_PREFIXES = ("DOCKER_", "CONTAINER_", "CONTAINERS_", "XDG_", "LD_", "REGISTRY_AUTH")


def environment_args(
    variables: Mapping[str, str], client_base: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The CLI's environment and its `-e` arguments that give a container `variables`.

    Values travel in the CLI's environment (`-e NAME`), so secrets never show in a process
    listing and multi-line values survive; names the CLI itself obeys go on the command line."""
    client = dict(os.environ if client_base is None else client_base)
    args: list[str] = []
    for key, value in variables.items():
        if key in _CLIENT_NAMES or key.startswith(_CLIENT_PREFIXES):
            args += ["-e", f"{key}={value}"]
        else:
            client[key] = value
            args += ["-e", key]
    return client, args


class EngineError(LocalCIError):
    """The container engine refused or failed an operation localci needed."""

    exit_code = 3  # an environment localci cannot work in, for the user to fix


@dataclass(frozen=True, slots=True)
class Engine:
    """A usable engine: `kind` is docker or podman, `cli` the executable that reaches it."""

    kind: str
    cli: str
    version: str
    rootless: bool

    def describe(self) -> str:
        mode = "rootless" if self.rootless else "rootful"
        return f"{self.kind} {self.version} ({mode}, {self.cli})"

    def command(
        self,
        *args: str,
        timeout_s: float | None = 120.0,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `<cli> args...` and capture its output; EngineError on failure when `check`."""
        try:
            done = subprocess.run(
                [self.cli, *args],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"`{self.kind} {args[0]}` did not answer in {timeout_s:.0f}s"
            ) from exc
        except OSError as exc:
            raise EngineError(f"cannot run {self.cli}: {exc}") from exc
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise EngineError(
                f"`{self.kind} {' '.join(args[:2])}` failed: {detail[-1] if detail else ''}"
            )
        return done


def detect_engine(preferred: str | None = None, *, use_cache: bool = True) -> Engine | None:
    """The first usable engine among `preferred` (docker or podman) or, when None, Docker
    then Podman; None when no engine answers."""
    kinds = (preferred,) if preferred else ENGINES
    key = _cache_key(kinds)
    if use_cache:
        cached = _read_cache(key)
        if isinstance(cached, Engine):
            return cached
        if cached is False:
            return None
    found = _probe_all(kinds)
    _write_cache(key, found)
    return found


def _probe_all(kinds: Sequence[str]) -> Engine | None:
    for kind in kinds:
        engine = _probe(kind)
        if engine is not None:
            return engine
    return None


def _probe(kind: str) -> Engine | None:
    cli = shutil.which(kind)
    if cli is None:
        return None
    if kind == "podman":
        local = _local_podman(cli)
        if local is not None:
            return local
    answer = _ask(cli, "info", _INFO_FORMAT[kind])
    return None if answer is None else _parse_info(kind, cli, answer)


def _ask(cli: str, command: str, fmt: str) -> str | None:
    """`cli command --format fmt`'s output, or None when it fails (a Docker CLI whose daemon
    is not running)."""
    try:
        done = subprocess.run(
            [cli, command, "--format", fmt],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _local_podman(cli: str) -> Engine | None:
    """The Podman engine when `cli` runs containers on this machine itself, else None."""
    answer = _ask(cli, "version", _PODMAN_VERSION_FORMAT)
    try:
        version_text, _, server_text = (answer or "").strip().partition(" ")
        version, server = json.loads(version_text), json.loads(server_text)
    except ValueError:
        return None
    if server is not None or not isinstance(version, str) or not version:
        return None  # a remote Podman: its `info` says whether it is rootless
    # Podman's own test (rootless.IsRootless): not root, or inside `podman unshare`.
    rootless = os.geteuid() != 0 or bool(os.environ.get("_CONTAINERS_USERNS_CONFIGURED"))
    return Engine("podman", cli, version, rootless)


def _parse_info(kind: str, cli: str, text: str) -> Engine | None:
    try:
        version_text, _, rest = text.strip().partition(" ")
        version = json.loads(version_text)
        extra = json.loads(rest) if rest else None
    except ValueError:
        return None
    if not isinstance(version, str) or not version:
        return None
    if kind == "podman":
        rootless = extra is True
    else:
        rootless = any("rootless" in str(option) for option in extra or ())
    return Engine(kind, cli, version, rootless)


def _cache_key(kinds: Sequence[str]) -> str:
    parts = [f"{name}={os.environ.get(name, '')}" for name in _STEERING]
    for kind in kinds:
        cli = shutil.which(kind)
        stamp = _mtime(cli) if cli else "-"
        parts.append(f"{kind}:{cli}:{stamp}")
    parts.append(f"uid={os.geteuid()}")
    return "\n".join(parts)


def _mtime(path: str) -> str:
    try:
        return str(Path(path).stat().st_mtime_ns)
    except OSError:
        return "-"


def _read_cache(key: str) -> Engine | bool | None:
    """The cached answer: an Engine, False (no engine), or None when there is none."""
    try:
        data = json.loads(_cache_path(key).read_text(encoding="utf-8"))
        if data.get("key") != key or time.time() - float(data["at"]) > _CACHE_TTL_S:
            return None
        engine = data.get("engine")
        return False if engine is None else Engine(**engine)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_cache(key: str, engine: Engine | None) -> None:
    doc = {"key": key, "at": time.time(), "engine": None if engine is None else asdict(engine)}
    # An unwritable cache only costs the next run another probe.
    with contextlib.suppress(OSError, LocalCIError):
        _cache_path(key).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(_cache_path(key), doc, durable=False)
        _forget_expired(_cache_path(key).parent)


def _cache_path(key: str) -> Path:
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return user_cache_dir() / _CACHE_DIR / f"{digest}.json"


def _forget_expired(folder: Path) -> None:
    now = time.time()
    for entry in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > _CACHE_TTL_S:
                entry.unlink()
