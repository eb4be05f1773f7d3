"""Includes from outside the repository: remote URLs, GitLab's templates, other projects and
components, fetched once into the user cache (`<cache>/includes/`) or read from local mappings.

The loader only sees the `ExternalSource` protocol (include_sources.py); HTTP (external_http.py),
git and the cache live here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from localci.config.component_versions import Refs, Resolved, parse_ls_remote, resolve_version
from localci.config.external_http import HTTP_TIMEOUT_S, check_url, http_get, masked_url
from localci.config.external_settings import parse_mapping, read_config
from localci.config.include_sources import (
    DirectorySource,
    ExternalIncludeError,
    IncludeOptions,
    ProjectTree,
    integrity_of,
)
from localci.errors import GitError, Problem, UsageError
from localci.files import atomic_write_bytes, atomic_write_json, user_cache_dir
from localci.git import run_git

DEFAULT_TEMPLATES_URL = "https://gitlab.com/gitlab-org/gitlab/-/raw"
DEFAULT_TEMPLATES_REF = "master"
TEMPLATES_DIR = "lib/gitlab/ci/templates"
TEMPLATES_URL_ENV = "LOCALCI_TEMPLATES_URL"
TEMPLATES_REF_ENV = "LOCALCI_TEMPLATES_REF"
GIT_TIMEOUT_S = 300.0
VERSIONS_FILE = "localci-versions.json"
NO_NETWORK_HINT = (
    "run once without --offline to fetch it into the cache, or map the project to a local "
    "directory (--include-map or .localci/includes.yml)"
)
_REF = re.compile(r"[^\s~^:?*\[\\\x00-\x1f-][^\s~^:?*\[\\\x00-\x1f]*")
_SCP = re.compile(r"^(?P<user>[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")
# A git run by localci must work on the cache repository, not on whatever an outer git says.

Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Everything a `Fetcher` needs; `external_source` builds it from options, file and env.

    `mapping` keys are `group/project`, `host/group/project` or a bare `host` (then the
    directory holds that host's projects as DIR/group/project). `git_urls` maps a host to a
    clone URL with a `{project}` placeholder. `server` is the host of `include: project:`.
    """

    cache_dir: Path
    offline: bool = False
    refresh: bool = False
    mapping: Mapping[str, Path] = field(default_factory=dict)
    templates_url: str = DEFAULT_TEMPLATES_URL
    templates_ref: str = DEFAULT_TEMPLATES_REF
    server: str | None = None
    git_urls: Mapping[str, str] = field(default_factory=dict)
    origin_url: str | None = None
    timeout_s: float = HTTP_TIMEOUT_S


def external_source(
    project_dir: Path, options: IncludeOptions, *, notify: Notify | None = None
) -> Fetcher:
    """The fetcher `localci` uses: settings from options, `.localci/includes.yml` and env."""
    if options.offline and options.refresh:
        raise UsageError("--refresh-includes needs the network; it cannot go with --offline")
    config = read_config(project_dir)
    mapping = {**config.get("map", {}), **parse_mapping(options.mapping, Path.cwd())}
    templates = config.get("templates", {})
    origin = _origin_url(project_dir)
    settings = FetchSettings(
        cache_dir=user_cache_dir() / "includes",
        offline=options.offline,
        refresh=options.refresh,
        mapping=mapping,
        templates_url=os.environ.get(TEMPLATES_URL_ENV)
        or templates.get("url", DEFAULT_TEMPLATES_URL),
        templates_ref=os.environ.get(TEMPLATES_REF_ENV)
        or templates.get("ref", DEFAULT_TEMPLATES_REF),
        server=config.get("server") or (_url_host(origin) if origin else None),
        git_urls=config.get("git_urls", {}),
        origin_url=origin,
    )
    return Fetcher(settings, notify)


# ---------------------------------------------------------------------------- configuration


# ---------------------------------------------------------------------------- the fetcher


class Fetcher:
    """An `ExternalSource` over HTTP(S), git and the user cache; tells `notify` every fetch."""

    def __init__(self, settings: FetchSettings, notify: Notify | None = None) -> None:
        self.settings = settings
        self.notices: list[str] = []
        self._notify = notify
        self._texts: dict[str, str] = {}
        self._http_failures: dict[str, ExternalIncludeError] = {}
        self._trees: dict[tuple[str, ...], ProjectTree | ExternalIncludeError] = {}

    def notify(self, message: str) -> None:
        self.notices.append(message)
        if self._notify is not None:
            self._notify(message)

    def remote(self, url: str, integrity: str | None) -> str:
        check_url(url)
        return self._http_text(url, f"remote include {url}", integrity)

    def template(self, name: str) -> str:
        s = self.settings
        url = "/".join(
            (
                s.templates_url.rstrip("/"),
                quote(s.templates_ref, safe="/"),
                TEMPLATES_DIR,
                quote(name, safe="/"),
            )
        )
        return self._http_text(url, f"template {name}", None)

    def project(self, project: str, ref: str | None) -> ProjectTree:
        server = self.settings.server
        key = ("project", server or "", project.lower(), ref or "")
        return self._tree(key, lambda: self._project(server, project, ref))

    def component(self, host: str, project: str, version: str) -> ProjectTree:
        key = ("component", host, project.lower(), version)
        return self._tree(key, lambda: self._component(host, project, version))

    def _tree(self, key: tuple[str, ...], obtain: Callable[[], ProjectTree]) -> ProjectTree:
        # A failure is remembered too: nine includes of one unreachable project try it once.
        if key not in self._trees:
            try:
                self._trees[key] = obtain()
            except ExternalIncludeError as exc:
                self._trees[key] = exc
        found = self._trees[key]
        if isinstance(found, ExternalIncludeError):
            raise found
        return found

    # -- HTTP files (remote includes and templates)

    def _http_text(self, url: str, what: str, integrity: str | None) -> str:
        if url in self._texts:
            return self._texts[url]
        if url in self._http_failures:
            raise self._http_failures[url]
        try:
            return self._fetch_text(url, what, integrity)
        except ExternalIncludeError as exc:
            self._http_failures[url] = exc
            raise

    def _fetch_text(self, url: str, what: str, integrity: str | None) -> str:
        cached = _cache_path(self.settings.cache_dir, url)
        data = _read_bytes(cached)
        stale = data is not None and integrity is not None and integrity_of(data) != integrity
        if data is None or ((self.settings.refresh or stale) and not self.settings.offline):
            if self.settings.offline:
                raise _error(
                    f"{what} is not in the include cache and --offline forbids fetching it",
                    "run once without --offline to fetch it into the cache",
                )
            self.notify(f"fetching {what} from {masked_url(url)}")
            data = http_get(url, what, self.settings.timeout_s)
            atomic_write_bytes(_mkparent(cached), data)
            atomic_write_json(
                cached.with_suffix(".json"), {"url": masked_url(url), "fetched": _now()}
            )
        text = _decode(data, what)
        self._texts[url] = text
        return text

    # -- projects and components

    def _project(self, server: str | None, project: str, ref: str | None) -> ProjectTree:
        what = f"project {project}" + (f" (ref {ref})" if ref else "")
        if ref is not None:
            _check_ref(ref, what)
        mapped = self._mapped(server, project)
        if mapped is not None:
            return _mapped_project(mapped, project, ref, what, self.notify)
        if server is None:
            raise _error(
                f"{what}: cannot tell which GitLab server hosts it "
                f"({_origin_finding(self.settings.origin_url)})",
                "set `server:` (and `git_urls:`) in .localci/includes.yml, or map the project "
                "with --include-map",
            )
        repo = _CacheRepo(self._repo_path(server, project), self._git_url(server, project), what)
        sha = repo.commit(ref or "HEAD", self.settings, self.notify)
        return ProjectTree(GitTree(repo.path, sha), f"{project}@{ref or 'HEAD'}", sha)

    def _component(self, host: str, project: str, version: str) -> ProjectTree:
        what = f"component {host}/{project}@{version}"
        mapped = self._mapped(host, project)
        if mapped is not None:
            return _mapped_component(mapped, host, project, version, what, self.notify)
        repo = _CacheRepo(self._repo_path(host, project), self._git_url(host, project), what)
        chosen = repo.version(version, self.settings, self.notify)
        label = f"{host}/{project}@{chosen.label}"
        return ProjectTree(GitTree(repo.path, chosen.sha), label, chosen.sha, chosen.version)

    def mapped_checkout(self, project: str) -> Path | None:
        """The local checkout `--include-map` / includes.yml gives for `project`, if any."""
        return self._mapped(self.settings.server, project)

    def _mapped(self, host: str | None, project: str) -> Path | None:
        mapping = self.settings.mapping
        key = project.lower()
        for candidate in (f"{host}/{key}" if host else None, key):
            if candidate is not None and candidate in mapping:
                return mapping[candidate]
        if host is not None and host in mapping:
            return mapping[host] / project
        return None

    def _repo_path(self, host: str, project: str) -> Path:
        return self.settings.cache_dir / "git" / host.replace(":", "_") / f"{project.lower()}.git"

    def _git_url(self, host: str, project: str) -> str:
        template = self.settings.git_urls.get(host)
        if template is not None:
            return template.replace("{project}", project)
        origin = self.settings.origin_url
        if origin and _url_host(origin) == host:
            derived = _sibling_url(origin, project)
            if derived:
                return derived
        return f"https://{host}/{project}.git"


# ---------------------------------------------------------------------------- HTTP


# ---------------------------------------------------------------------------- git


@dataclass
class GitTree:
    """The files of one commit of a git repository (a `FileSource`)."""

    repo: Path
    commit: str
    _files: list[str] | None = None

    def read(self, path: str) -> str | None:
        proc = _git(["cat-file", "blob", f"{self.commit}:{path}"], self.repo)
        if proc.returncode != 0:
            return None
        return _decode(proc.stdout, path)

    def list_files(self) -> Sequence[str]:
        if self._files is None:
            proc = _git(["ls-tree", "-r", "-z", "--name-only", self.commit], self.repo)
            names = proc.stdout.decode("utf-8", "replace").split("\0")
            self._files = sorted(n for n in names if n)
        return self._files


@dataclass(frozen=True, slots=True)
class _CacheRepo:
    """A bare repository in the cache holding shallow fetches of one project's refs."""

    path: Path
    url: str
    what: str

    def commit(self, ref: str, settings: FetchSettings, notify: Notify) -> str:
        """The commit of `ref`: from the cache, else fetched (unless offline)."""
        with self._locked():
            cached = self._cached(ref)
            if cached is not None and not settings.refresh:
                return cached
            if settings.offline:
                if cached is not None:
                    return cached
                raise _error(
                    f"{self.what} is not in the include cache and --offline forbids fetching it",
                    NO_NETWORK_HINT,
                )
            notify(f"fetching {self.what} from {masked_url(self.url)}")
            return self._fetch(ref)

    def version(self, spec: str, settings: FetchSettings, notify: Notify) -> Resolved:
        """The component version `spec` stands for (resolved once, then from the cache)."""
        with self._locked():
            known = self._resolutions().get(spec)
            if known is not None and not settings.refresh and self._cached(known.ref) == known.sha:
                return known
            if settings.offline:
                raise _error(
                    f"{self.what} is not in the include cache and --offline forbids fetching it",
                    NO_NETWORK_HINT,
                )
            notify(f"resolving {self.what}: listing the tags of {masked_url(self.url)}")
            resolved = self._resolve(spec)
            notify(f"fetching {self.what} ({resolved.label}) from {masked_url(self.url)}")
            sha = self._fetch(resolved.ref)
            resolved = Resolved(resolved.ref, sha, resolved.version, resolved.label)
            self._save_resolution(spec, resolved)
            return resolved

    def _resolve(self, spec: str) -> Resolved:
        proc = _network_git(["ls-remote", "--", self.url, "refs/tags/*", "refs/heads/*"], None)
        if proc.returncode != 0:
            raise _git_failure(self.what, "list the versions of", self.url, proc)
        resolved = resolve_version(spec, parse_ls_remote(proc.stdout.decode("utf-8", "replace")))
        if resolved is None:
            raise _error(
                f"{self.what}: no version matches {spec!r}",
                "use ~latest, a release like 1.2.3 (or 1 / 1.2 for the newest match), "
                "a tag, a branch or a full commit SHA",
            )
        return resolved

    def _fetch(self, ref: str) -> str:
        self._init()
        target = _cache_ref(ref)
        proc = _network_git(
            ["fetch", "--quiet", "--no-tags", "--depth=1", "--", self.url, f"+{ref}:{target}"],
            self.path,
        )
        if proc.returncode != 0:
            raise _git_failure(self.what, "fetch", self.url, proc)
        sha = self._cached(ref)
        if sha is None:
            raise _error(f"{self.what}: git fetched nothing for {ref}")
        return sha

    def _cached(self, ref: str) -> str | None:
        if not (self.path / "HEAD").is_file():
            return None
        proc = _git(
            ["rev-parse", "--verify", "--quiet", f"{_cache_ref(ref)}^{{commit}}"], self.path
        )
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip() or None

    def _init(self) -> None:
        if (self.path / "HEAD").is_file():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        proc = _git(["init", "--bare", "--quiet", str(self.path)], self.path)
        if proc.returncode != 0:
            raise _error(f"cannot create the include cache {self.path}: {_stderr(proc)}")

    def _resolutions(self) -> dict[str, Resolved]:
        data = _read_bytes(self.path / VERSIONS_FILE)
        try:
            table = json.loads(data) if data else {}
            return {spec: Resolved(**entry) for spec, entry in table.items()}
        except (ValueError, TypeError, AttributeError):
            return {}  # a damaged table only costs a new resolution

    def _save_resolution(self, spec: str, resolved: Resolved) -> None:
        table = {k: dataclasses.asdict(v) for k, v in self._resolutions().items()}
        table[spec] = dataclasses.asdict(resolved)
        atomic_write_json(self.path / VERSIONS_FILE, table)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = _mkparent(self.path.with_name(self.path.name + ".lock"))
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _cache_ref(ref: str) -> str:
    # Hex keeps any ref name (even `..` or `@{`) a valid, unique ref below refs/localci/.
    return "refs/localci/" + ref.encode().hex()


def _git(
    args: list[str], cwd: Path | None, timeout: float = 60.0
) -> subprocess.CompletedProcess[bytes]:
    try:
        return run_git(cwd, *args, timeout=timeout)
    except GitError as exc:
        raise _error(f"{exc} (git is needed for project and component includes)") from None


def _network_git(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess[bytes]:
    # Abort transfers that stall: under 1 KB/s for 10 s, like the HTTP time-out.
    low_speed = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=10"]
    return _git([*low_speed, *args], cwd, GIT_TIMEOUT_S)


def _git_failure(
    what: str, action: str, url: str, proc: subprocess.CompletedProcess[bytes]
) -> ExternalIncludeError:
    detail = _stderr(proc)
    hint = (
        "localci uses your own git credentials (ssh agent or credential helper); check that "
        f"`git ls-remote {masked_url(url)}` works, or map the project to a local checkout "
        "with --include-map"
    )
    if "couldn't find remote ref" in detail:
        hint = "check `ref:` (a branch, tag or full commit SHA of that project)"
    return _error(f"{what}: cannot {action} {masked_url(url)}: {detail}", hint)


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1].removeprefix("fatal: ") if lines else f"git exited with {proc.returncode}"


def _origin_url(project_dir: Path) -> str | None:
    proc = _git(["config", "--get", "remote.origin.url"], project_dir)
    url = proc.stdout.decode("utf-8", "replace").strip()
    return url if proc.returncode == 0 and url else None


def _origin_finding(origin: str | None) -> str:
    """What `origin` is, when it names no server, and what would."""
    expected = "expected a URL like https://HOST/GROUP/PROJECT.git or git@HOST:GROUP/PROJECT.git"
    if origin is None:
        return f"there is no `origin` remote; {expected}"
    if origin.startswith("file:") or ("://" not in origin and _SCP.match(origin) is None):
        return f"`origin` is {origin!r}, a local path that names no server; {expected}"
    return (
        f"`origin` is {masked_url(origin)!r}, a URL form localci cannot read a host from; "
        f"{expected}"
    )


def _url_host(url: str) -> str | None:
    if "://" in url:
        parts = urlsplit(url)
        return parts.hostname.lower() if parts.scheme != "file" and parts.hostname else None
    match = _SCP.match(url)
    return match["host"].lower() if match else None


def _sibling_url(origin: str, project: str) -> str | None:
    """The clone URL of `project` in the same form (ssh or https, same user) as `origin`."""
    if "://" in origin:
        parts = urlsplit(origin)
        if parts.scheme == "file":
            return None
        return urlunsplit((parts.scheme, parts.netloc, f"/{project}.git", "", ""))
    match = _SCP.match(origin)
    if match is None:
        return None
    return f"{match['user'] or ''}{match['host']}:{project}.git"


def _check_ref(ref: str, what: str) -> None:
    if not _REF.fullmatch(ref) or ".." in ref:
        raise _error(f"{what}: {ref!r} is not a valid git ref")


# ---------------------------------------------------------------------------- local mappings


def _mapped_project(
    directory: Path, project: str, ref: str | None, what: str, notify: Notify
) -> ProjectTree:
    _check_mapped_dir(directory, what)
    if ref is None or not _is_git_repo(directory):
        note = "" if ref is None else f" (not a git repository: ref {ref} ignored)"
        notify(f"reading {what} from the working tree of {directory} (include map){note}")
        return ProjectTree(DirectorySource(directory), f"{project}@worktree")
    sha = _local_commit(directory, ref)
    if sha is None:
        raise _error(
            f"{what}: ref {ref} is not in {directory} (include map)",
            f"fetch it there (git -C {directory} fetch origin {ref}), or drop `ref:` to read "
            "the working tree",
        )
    notify(f"reading {what} from {directory} at {ref} (include map)")
    return ProjectTree(GitTree(directory, sha), f"{project}@{ref}", sha)


def _mapped_component(
    directory: Path, host: str, project: str, version: str, what: str, notify: Notify
) -> ProjectTree:
    _check_mapped_dir(directory, what)
    if not _is_git_repo(directory):
        notify(f"reading {what} from the working tree of {directory} (include map)")
        return ProjectTree(DirectorySource(directory), f"{host}/{project}@worktree")
    resolved = resolve_version(version, _local_refs(directory))
    sha = _local_commit(directory, resolved.ref) if resolved else None
    if resolved is None or sha is None:
        raise _error(f"{what}: no version matches {version!r} in {directory} (include map)")
    notify(f"reading {what} from {directory} at {resolved.label} (include map)")
    label = f"{host}/{project}@{resolved.label}"
    return ProjectTree(GitTree(directory, sha), label, sha, resolved.version)


def _check_mapped_dir(directory: Path, what: str) -> None:
    if not directory.is_dir():
        raise _error(
            f"{what} is mapped to {directory}, which is not a directory",
            "fix the path in --include-map or .localci/includes.yml",
        )


def _is_git_repo(directory: Path) -> bool:
    return _git(["rev-parse", "--git-dir"], directory).returncode == 0


def _local_commit(directory: Path, ref: str) -> str | None:
    for name in (ref, f"refs/remotes/origin/{ref}", f"refs/tags/{ref}"):
        proc = _git(["rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], directory)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
    return None


def _local_refs(directory: Path) -> Refs:
    fmt = "%(refname)%00%(objectname)%00%(*objectname)"
    proc = _git(["for-each-ref", f"--format={fmt}", "refs/tags", "refs/heads"], directory)
    tags: dict[str, str] = {}
    heads: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        name, sha, peeled = ([*line.split("\x00"), "", ""])[:3]
        if name.startswith("refs/tags/"):
            tags[name.removeprefix("refs/tags/")] = peeled or sha
        elif name.startswith("refs/heads/"):
            heads[name.removeprefix("refs/heads/")] = sha
    return Refs(tags, heads)


# ---------------------------------------------------------------------------- small helpers


def _error(message: str, hint: str | None = None) -> ExternalIncludeError:
    return ExternalIncludeError(Problem(message, hint=hint))


def _cache_path(cache_dir: Path, url: str) -> Path:
    return cache_dir / "http" / (sha256(url.encode()).hexdigest() + ".yml")


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExternalIncludeError(
            Problem(f"{what} is not valid UTF-8 (byte {exc.start})")
        ) from None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "DEFAULT_TEMPLATES_REF",
    "DEFAULT_TEMPLATES_URL",
    "FetchSettings",
    "Fetcher",
    "GitTree",
    "IncludeOptions",
    "Refs",
    "Resolved",
    "external_source",
    "http_get",
    "parse_ls_remote",
    "parse_mapping",
    "read_config",
    "resolve_version",
]
