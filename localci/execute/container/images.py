"""Images: present or pulled according to `pull_policy`, and what their configuration says.

GitLab's runner defaults to `always`; localci defaults to `if-not-present` so that a pipeline
works offline once `localci pull` has fetched its images (a policy written in the
configuration is honoured). Under `--offline` an `always` policy uses the local image.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from localci.execute.container.engine import Engine, EngineError

__all__ = [
    "ImageCache",
    "ImageConfig",
    "ImageUnavailable",
    "ensure_image",
    "image_present",
    "pull",
]

POLICIES = ("always", "if-not-present", "never")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class ImageUnavailable(EngineError):
    """An image is neither present nor obtainable under its pull policy."""


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image's configuration the executor needs."""

    entrypoint: tuple[str, ...]
    exposed_tcp_ports: tuple[int, ...]


class ImageCache:
    """The configurations of the images a run found present, each inspected once: otherwise
    every job and every service pays an `image inspect`. A pull forgets the image's entry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: dict[str, ImageConfig] = {}
        self._lock = threading.Lock()

    def config(self, name: str) -> ImageConfig | None:
        """`name`'s configuration, or None when it is not present."""
        with self._lock:
            known = self._known.get(name)
        if known is not None:
            return known
        found = inspect_config(self.engine, name)
        if found is not None:
            with self._lock:
                self._known[name] = found
        return found

    def forget(self, name: str) -> None:
        with self._lock:
            self._known.pop(name, None)


def ensure_image(
    images: ImageCache,
    name: str,
    policies: Sequence[str],
    *,
    platform: str | None,
    offline: bool,
    log: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> ImageConfig:
    """Make `name` present as `policies` (GitLab's order: each tried until one succeeds) say;
    its configuration. A present image under `if-not-present` costs no registry round trip."""
    for policy in policies or ("if-not-present",):
        if policy not in POLICIES:
            raise ImageUnavailable(
                f"image {name!r}: unknown pull_policy {policy!r} (one of {', '.join(POLICIES)})"
            )
    with _lock_for(name):
        return _ensure(
            images, name, tuple(policies or ("if-not-present",)), platform, offline, log, cancel
        )


def _ensure(
    images: ImageCache,
    name: str,
    policies: tuple[str, ...],
    platform: str | None,
    offline: bool,
    log: Callable[[str], None],
    cancel: threading.Event | None,
) -> ImageConfig:
    engine = images.engine
    present = images.config(name)
    failure = ""
    for policy in policies:
        if policy == "never" or (policy == "always" and offline):
            if present is not None:
                log(f"Using locally available image {name} (pull_policy: {policy})")
                return present
            failure = f"it is not present locally and pull_policy is {policy}"
            continue
        if policy == "if-not-present" and present is not None:
            log(f"Using locally available image {name}")
            return present
        if offline:
            failure = "it is not present locally and localci runs --offline"
            continue
        try:
            pull(engine, name, platform=platform, log=log, cancel=cancel)
        except EngineError:
            failure = "pulling it failed (the engine's message is above)"
            continue
        images.forget(name)
        return images.config(name) or ImageConfig((), ())
    raise ImageUnavailable(
        f"image {name!r} is not available: {failure}. Fetch it while online with "
        f"`localci pull` or `{engine.kind} pull {name}`"
    )


def image_present(engine: Engine, name: str) -> bool:
    done = engine.command("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return done.returncode == 0


def pull(
    engine: Engine,
    name: str,
    *,
    platform: str | None,
    log: Callable[[str], None],
    cancel: threading.Event | None = None,
) -> None:
    """`<engine> pull name`, its progress streamed line by line to `log`; stopped when
    `cancel` is set (Ctrl-C, a canceled job)."""
    args = [engine.cli, "pull", *(["--platform", platform] if platform else []), name]
    log(f"Pulling image {name} with {engine.kind}...")
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise EngineError(f"cannot run {engine.cli}: {exc}") from exc
    last = ""
    assert proc.stdout is not None
    done = threading.Event()
    if cancel is not None:
        threading.Thread(target=_stop_on, args=(cancel, done, proc), daemon=True).start()
    with proc:
        for line in proc.stdout:
            last = line.rstrip() or last
            log(last)
    done.set()
    if cancel is not None and cancel.is_set():
        raise EngineError(f"pulling {name} was canceled")
    if proc.returncode != 0:
        raise EngineError(last or f"{engine.kind} pull exited with {proc.returncode}")


def _stop_on(cancel: threading.Event, done: threading.Event, proc: subprocess.Popen[str]) -> None:
    while not done.is_set():
        if cancel.wait(0.2):
            proc.terminate()
            return


def inspect_config(engine: Engine, name: str) -> ImageConfig | None:
    """`name`'s configuration, or None when the engine has no such image."""
    done = engine.command("image", "inspect", "--format", "{{json .Config}}", name, check=False)
    if done.returncode != 0:
        return None
    try:
        config = json.loads(done.stdout.strip() or "{}") or {}
    except ValueError:
        config = {}
    entrypoint = config.get("Entrypoint") or ()
    ports = []
    for spec in config.get("ExposedPorts") or {}:
        number, _, proto = str(spec).partition("/")
        if (proto or "tcp") == "tcp" and number.isdigit():
            ports.append(int(number))
    return ImageConfig(tuple(map(str, entrypoint)), tuple(sorted(ports)))


def _lock_for(name: str) -> threading.Lock:
    # Two jobs of one run needing the same image pull it once.
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())
