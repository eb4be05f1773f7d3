"""Jobs in containers, as GitLab's Docker executor runs them.

The workspace slot is bind-mounted at `/builds/<namespace>/<project>` and file variables at
`<that>.tmp`; before_script+script and after_script each run in a fresh container of the job's
image, in bash when the image has it and sh otherwise (GitLab's shell detection), with the
programs `localci.execute.script` writes for every executor and the environment
`localci.execute.environment` builds for every executor. Services get a network per job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import re
import shlex
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from localci.config.model import Service
from localci.execute import script as scripts
from localci.execute.container.cleanup import labels, remove_objects
from localci.execute.container.engine import Engine, EngineError, environment_args
from localci.execute.container.images import ImageCache, ImageConfig, ensure_image
from localci.execute.container.services import (
    WAIT_TIMEOUT_S,
    ServiceLogs,
    StartedService,
    start_service,
    wait_for_ports,
)
from localci.execute.environment import JobPaths, RuntimeFacts, host_base, job_environment
from localci.execute.executors import executor_for, expand_name, job_image
from localci.execute.process import ProcessOutcome, run_bash
from localci.execute.workspace import Workspace
from localci.plan.model import PlannedJob
from localci.plan.variables import VarValue

__all__ = ["ContainerRunner", "engine_name", "qualified_image"]

BUILDS_DIR = PurePosixPath("/builds")
_DETECT = " ".join(
    [
        "if [ -x /usr/local/bin/bash ]; then exec /usr/local/bin/bash {bash};",
        "elif [ -x /usr/bin/bash ]; then exec /usr/bin/bash {bash};",
        "elif [ -x /bin/bash ]; then exec /bin/bash {bash};",
        "elif [ -x /usr/local/bin/sh ]; then exec /usr/local/bin/sh {sh};",
        "elif [ -x /usr/bin/sh ]; then exec /usr/bin/sh {sh};",
        "elif [ -x /bin/sh ]; then exec /bin/sh {sh};",
        "elif [ -x /busybox/sh ]; then exec /busybox/sh {sh};",
        "else echo 'shell not found' >&2; exit 1; fi",
    ]
)


def engine_name(engine: Engine | None) -> str:
    return engine.describe() if engine else "none"


class ContainerRunner:
    """The container executor the job runner hands container jobs to (one per pipeline run)."""

    def __init__(
        self,
        engine: Engine,
        *,
        mode: str,
        project_dir: Path,
        user_variables: Mapping[str, VarValue],
        color: bool,
        offline: bool,
    ) -> None:
        self.engine = engine
        self.mode = mode
        self.project_dir = project_dir
        self.user_variables = user_variables
        self.color = color
        self.offline = offline
        self.images = ImageCache(engine)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def wants(self, job: PlannedJob) -> bool:
        return executor_for(job, self.mode, True, self.user_variables) == "container"

    @contextlib.contextmanager
    def session(
        self,
        job: PlannedJob,
        ws: Workspace,
        facts: RuntimeFacts,
        dotenv: Mapping[str, VarValue],
        log: Callable[[str], None],
        notes: list[str],
        cancel: threading.Event,
    ) -> Iterator[_ContainerSession]:
        image = job_image(job, self.user_variables)
        assert image is not None  # wants() only accepts jobs with an image
        prefix = self._prefix(job)
        spec = job.spec.image
        assert spec is not None
        engine = self.engine
        log(f"Using {engine.kind} {engine.version} with image {image} ...")
        try:
            ensure_image(
                self.images,
                qualified_image(engine, image),
                spec.pull_policy,
                platform=spec.platform,
                offline=self.offline,
                log=log,
                cancel=cancel,
            )
        except EngineError:
            if not cancel.is_set():
                raise  # else the session's programs report the job canceled
        inside = _inside_paths(job, ws)
        env = job_environment(
            job,
            dataclasses.replace(facts, paths=inside, pip_cache_dir=None, disposable=True),
            dotenv,
            self.user_variables,
            {},
        )
        host_env = job_environment(job, facts, dotenv, self.user_variables, host_base())
        created: list[str] = []
        network = f"{prefix}-net" if job.spec.services else None
        debug_logs = ServiceLogs(engine, log) if env.get("CI_DEBUG_SERVICES") == "true" else None
        try:
            if network is not None:
                self._start_services(
                    job, env, network, prefix, created, debug_logs, log, notes, cancel
                )
            yield _ContainerSession(
                runner=self,
                job=job,
                ws=ws,
                image=qualified_image(engine, image),
                inside=inside,
                env=env,
                host_env=host_env,
                network=network,
                name_prefix=prefix,
                log=log,
            )
        finally:
            if debug_logs is not None:
                debug_logs.stop()
            remove_objects(engine, created, network)
            reclaim_files(engine, qualified_image(engine, image), ws, log)

    def _start_services(
        self,
        job: PlannedJob,
        env: Mapping[str, str],
        network: str,
        prefix: str,
        created: list[str],
        debug_logs: ServiceLogs | None,
        log: Callable[[str], None],
        notes: list[str],
        cancel: threading.Event,
    ) -> None:
        """As GitLab's runner: every service started, then every one waited for."""
        label_args = _label_args(job.name, self.project_dir)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The network is made while the services' images are looked at (or pulled); leaving
            # this block waits for it, so that the session's cleanup never races its creation.
            made = pool.submit(self.engine.command, "network", "create", *label_args, network)
            wanted = self._service_images(job, log, cancel)
            made.result()
        if cancel.is_set():
            return
        containers = [f"{prefix}-svc{index}" for index in range(len(wanted))]
        created.extend(containers)  # removed afterwards whichever of them started
        start = functools.partial(self._start_one, job=job, env=env, network=network)
        # Each `run -d` takes most of a second, mostly waiting on the engine: side by side.
        with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
            started = list(pool.map(start, wanted, containers))
        for one in started:
            log(f"Starting service {one.image} as {', '.join(one.aliases)} ...")
            if debug_logs is not None:
                debug_logs.follow(one)
        configs = [config for _, _, config in wanted]
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            wait = functools.partial(self._wait, env=env, cancel=cancel)
            waited = list(pool.map(wait, started, configs))
        for lines, note in waited:
            for line in lines:
                log(line)
            if note:
                notes.append(note)

    def _service_images(
        self, job: PlannedJob, log: Callable[[str], None], cancel: threading.Event
    ) -> list[tuple[Service, str, ImageConfig]]:
        wanted: list[tuple[Service, str, ImageConfig]] = []
        for service in job.spec.services:
            if cancel.is_set():
                break
            name = expand_name(service.name, job, self.user_variables)
            image = qualified_image(self.engine, name)
            config = ensure_image(
                self.images,
                image,
                service.image.pull_policy,
                platform=service.image.platform,
                offline=self.offline,
                log=log,
                cancel=cancel,
            )
            wanted.append((service, image, config))
        return wanted

    def _start_one(
        self,
        wanted: tuple[Service, str, ImageConfig],
        container: str,
        *,
        job: PlannedJob,
        env: Mapping[str, str],
        network: str,
    ) -> StartedService:
        service, image, _ = wanted
        return start_service(
            self.engine,
            service=service,
            image=image,
            container=container,
            network=network,
            labels=labels(job.name, self.project_dir),
            variables={**env, **dict(service.variables)},
            client_env=host_base(),
        )

    def _wait(
        self,
        started: StartedService,
        config: ImageConfig,
        *,
        env: Mapping[str, str],
        cancel: threading.Event,
    ) -> tuple[list[str], str]:
        """Wait for a service's ports: the lines for the job log (kept together although the
        services are waited for side by side), and a note when it did not open them in time."""
        health = {**env, **dict(started.service.variables)}.get("HEALTHCHECK_TCP_PORT", "")
        ports: Sequence[int] = (int(health),) if health.isdigit() else config.exposed_tcp_ports
        lines: list[str] = []
        if not ports:
            return lines, ""
        if wait_for_ports(self.engine, started, ports, lines.append, _wait_timeout(), cancel):
            return lines, ""
        return lines, f"service {started.image} did not open port(s) {list(ports)} in time"

    def _prefix(self, job: PlannedJob) -> str:
        with self._lock:
            number = next(self._ids)
        slug = re.sub(r"[^a-z0-9]+", "-", job.name.lower()).strip("-")[:30] or "job"
        return f"localci-{os.getpid()}-{number}-{slug}"


class _ContainerSession:
    """One job attempt's container programs (script, then after_script in a new container)."""

    def __init__(
        self,
        *,
        runner: ContainerRunner,
        job: PlannedJob,
        ws: Workspace,
        image: str,
        inside: JobPaths,
        env: dict[str, str],
        host_env: dict[str, str],
        network: str | None,
        name_prefix: str,
        log: Callable[[str], None],
    ) -> None:
        self.runner = runner
        self.job = job
        self.ws = ws
        self.image = image
        self.inside = inside
        self.env = env
        self.host_env = host_env
        self.network = network
        self.name_prefix = name_prefix
        self.log = log
        self._steps = itertools.count(1)
        self._secrets = tuple(
            var.value for var in runner.user_variables.values() if var.masked and var.value
        )

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
        step = "after" if after else "script"
        make = scripts.after_script if after else scripts.main_script
        programs = self.ws.builds_dir / "tmp"
        for shell in scripts.SHELLS:
            text = make(commands, trace=trace, color=self.runner.color, shell=shell)
            (programs / f"step-{step}.{shell}").write_text(text, encoding="utf-8")
        name = f"{self.name_prefix}-{step}{next(self._steps)}"
        env = {**self.env, **(extra_env or {})}
        client_env, argv = self._command(name, step, env)
        outcome = None
        try:
            outcome = run_bash(
                f"exec {shlex.join(argv)}\n",
                cwd=self.ws.builds_dir,
                env=client_env,
                on_output=self.log,
                timeout_s=timeout_s,
                cancel=cancel,
                unsplit=self._secrets,  # a long line is never cut inside a masked value
            )
            return outcome
        finally:
            if not _removed_by_engine(outcome):
                remove_objects(self.runner.engine, [name], None)

    def _command(
        self, name: str, step: str, env: Mapping[str, str]
    ) -> tuple[dict[str, str], list[str]]:
        engine = self.runner.engine
        spec = self.job.spec.image
        assert spec is not None
        project, files = self.inside.project_dir, self.inside.visible_file_dir
        # The pull policy was applied before: an image gone since then is an error, not a pull.
        argv = [engine.cli, "run", "--rm", "--pull", "never", "--name", name]
        argv += _label_args(self.job.name, self.runner.project_dir)
        argv += ["-v", _mount(self.ws.project_dir, project)]
        argv += ["-v", _mount(self.ws.builds_dir / "tmp", files)]
        argv += ["-w", str(project)]
        if self.network:
            argv += ["--network", self.network]
        if spec.user:
            argv += ["--user", spec.user]
        if spec.platform:
            argv += ["--platform", spec.platform]
        client_env, env_args = environment_args(env)
        argv += env_args
        entry = spec.entrypoint
        if entry is not None:
            argv += ["--entrypoint", entry[0] if entry else ""]
        argv.append(self.image)
        if entry:
            argv += list(entry[1:])
        detect = _DETECT.format(bash=f"{files}/step-{step}.bash", sh=f"{files}/step-{step}.sh")
        argv += ["sh", "-c", detect]
        return client_env, argv


def reclaim_files(engine: Engine, image: str, ws: Workspace, log: Callable[[str], None]) -> None:
    """Give back to the user what a container made in the workspace as another user (root
    under rootful Docker): cleaning, caching and the next job need to own it."""
    if os.geteuid() == 0:
        return  # root owns everything it needs to
    dirs = [ws.project_dir, ws.builds_dir / "tmp"]
    if not any(_has_foreign_entry(path) for path in dirs):
        return
    # In a rootless engine the container's root is this user; in a rootful one it is not.
    owner = "0:0" if engine.rootless else f"{os.geteuid()}:{os.getegid()}"
    args = [
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "",
        *_label_args("reclaim", ws.project_dir),
    ]
    for index, path in enumerate(dirs):
        args += ["-v", _mount(path, PurePosixPath(f"/reclaim/{index}"))]
    done = engine.command(*args, image, "chown", "-R", owner, "/reclaim", check=False)
    if done.returncode != 0:
        log(f"WARNING: could not take back files the container made: {done.stderr.strip()}")


def _has_foreign_entry(root: Path) -> bool:
    uid = os.geteuid()
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            return True  # unreadable: most likely made by another user
    return False


def _wait_timeout() -> float:
    """The runner's `wait_for_services_timeout`: $LOCALCI_WAIT_FOR_SERVICES_TIMEOUT seconds,
    else GitLab's default (30)."""
    text = os.environ.get("LOCALCI_WAIT_FOR_SERVICES_TIMEOUT", "")
    try:
        return max(0.0, float(text))
    except ValueError:
        return WAIT_TIMEOUT_S


def _removed_by_engine(outcome: ProcessOutcome | None) -> bool:
    """Whether `run --rm` ended by itself, so that the engine removed the container: when
    localci stopped it (timeout, cancel, Ctrl-C) or the CLI failed (125), localci removes it."""
    if outcome is None or outcome.exit_code is None:
        return False
    return outcome.exit_code < 125 and not (outcome.timed_out or outcome.canceled)


def _inside_paths(job: PlannedJob, ws: Workspace) -> JobPaths:
    project_path = job.predefined.get("CI_PROJECT_PATH") or ws.project_dir.name
    project = BUILDS_DIR / project_path
    return JobPaths(
        project_dir=Path(str(project)),
        builds_dir=Path(str(BUILDS_DIR)),
        file_dir=ws.builds_dir / "tmp",
        visible_file_dir=Path(f"{project}.tmp"),
    )


def _mount(source: Path, target: PurePosixPath | Path) -> str:
    # SELinux hosts (Fedora, RHEL) refuse a container access to an unlabelled bind mount.
    relabel = ":z" if Path("/sys/fs/selinux/enforce").exists() else ""
    return f"{source}:{target}{relabel}"


def _label_args(job_name: str, project_dir: Path) -> list[str]:
    out = []
    for label in labels(job_name, project_dir):
        out += ["--label", label]
    return out


def qualified_image(engine: Engine, image: str) -> str:
    """Podman asks which registry a short name means (and cannot ask without a terminal);
    GitLab's images are Docker Hub's, so say so, as Docker does implicitly."""
    if engine.kind != "podman":
        return image
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if slash else f"docker.io/library/{image}"
