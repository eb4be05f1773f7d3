"""External includes: remote, template, project, component; the cache, --offline, mappings."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from localci.config.external import (
    Fetcher,
    FetchSettings,
    IncludeOptions,
    Refs,
    external_source,
    parse_ls_remote,
    parse_mapping,
    read_config,
    resolve_version,
)
from localci.config.include_external import parse_component
from localci.config.include_sources import (
    ExternalSource,
    IncludeContext,
    MemorySource,
    integrity_of,
)
from localci.config.includes import key_origins, load_file
from localci.config.model import Pipeline
from localci.config.model_builder import build_pipeline
from localci.errors import ConfigError, UsageError
from tests.helpers import git, make_repo, write_files

# ---------------------------------------------------------------------------- fixtures


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    delay_s: float = 0.0
    location: str | None = None


@dataclass
class Server:
    base: str
    routes: dict[str, Route]
    hits: list[str] = field(default_factory=list)

    def serve(self, path: str, text: str) -> None:
        self.routes[path] = Route(textwrap.dedent(text).encode())


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_GET(self) -> None:
        state = self.server.state
        state.hits.append(self.path)
        route = state.routes.get(self.path, Route(b"not found", 404))
        if route.delay_s:
            time.sleep(route.delay_s)
        self.send_response(route.status)
        if route.location:
            self.send_header("Location", route.location)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: Server


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = Server(f"http://127.0.0.1:{httpd.server_address[1]}", {})
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def fetcher(cache: Path, **settings: Any) -> Fetcher:
    return Fetcher(FetchSettings(cache_dir=cache, **settings))


def load(
    text: str,
    external: ExternalSource | None,
    files: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
) -> Pipeline:
    return load_ctx(text, external, files, variables)[0]


def load_ctx(
    text: str,
    external: ExternalSource | None,
    files: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
) -> tuple[Pipeline, IncludeContext]:
    """What `localci.config._load` does, with an external source."""
    source = MemorySource({**(files or {}), ".gitlab-ci.yml": textwrap.dedent(text)})
    ctx = IncludeContext(source=source, variables=dict(variables or {}), external=external)
    try:
        merged = load_file(ctx, ".gitlab-ci.yml")
    except ConfigError as exc:
        raise ConfigError([*ctx.problems, *exc.problems]) from None
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return build_pipeline(merged, tuple(ctx.files), ctx.warnings), ctx


def error_of(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(*args, **kwargs)
    assert info.value.exit_code == 3
    return info.value.render()


def scripts(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
    return {job.name: job.script for job in pipeline.jobs}


# ---------------------------------------------------------------------------- remote


def test_remote_is_fetched_once_then_read_offline(server: Server, cache: Path) -> None:
    server.serve("/ci/build.yml", "build: {script: [echo remote]}\n")
    url = f"{server.base}/ci/build.yml"
    first = fetcher(cache)
    p = load(f"include: {url}\ntest: {{script: [echo t]}}\n", first)
    assert scripts(p) == {"build": ("echo remote",), "test": ("echo t",)}
    assert first.notices == [f"fetching remote include {url} from {url}"]
    assert url in p.files
    server.routes.clear()  # the server forgets everything: only the cache can answer now
    offline = fetcher(cache, offline=True)
    again = load(f"include:\n  - remote: {url}\ntest: {{script: [t]}}\n", offline)
    assert scripts(again)["build"] == ("echo remote",)
    online = fetcher(cache)
    load(f"include: {url}\ntest: {{script: [t]}}\n", online)
    assert server.hits == ["/ci/build.yml"] and online.notices == []


def test_offline_without_cache_names_the_include(cache: Path) -> None:
    message = error_of(
        "include: http://127.0.0.1:9/never.yml\nt: {script: [x]}\n",
        fetcher(cache, offline=True),
    )
    assert "remote include http://127.0.0.1:9/never.yml is not in the include cache" in message
    assert ".gitlab-ci.yml:1" in message


def test_refresh_fetches_again(server: Server, cache: Path) -> None:
    server.serve("/a.yml", "a: {script: [one]}\n")
    text = f"include: {server.base}/a.yml\n"
    load(text, fetcher(cache))
    server.serve("/a.yml", "a: {script: [two]}\n")
    assert scripts(load(text, fetcher(cache)))["a"] == ("one",)
    assert scripts(load(text, fetcher(cache, refresh=True)))["a"] == ("two",)
    assert scripts(load(text, fetcher(cache, offline=True)))["a"] == ("two",)


def test_integrity_is_checked(server: Server, cache: Path) -> None:
    body = "a: {script: [x]}\n"
    server.serve("/a.yml", body)
    good = integrity_of(body.encode())
    text = "include:\n  - remote: {url}\n    integrity: {hash}\n"
    url = f"{server.base}/a.yml"
    assert load(text.format(url=url, hash=good), fetcher(cache)).jobs[0].name == "a"
    bad = integrity_of(b"something else")
    message = error_of(text.format(url=url, hash=bad), fetcher(cache))
    assert "integrity check failed" in message and bad in message and good in message


def test_changed_integrity_refetches_a_stale_cache(server: Server, cache: Path) -> None:
    server.serve("/a.yml", "a: {script: [old]}\n")
    url = f"{server.base}/a.yml"
    load(f"include: {url}\n", fetcher(cache))
    new = "a: {script: [new]}\n"
    server.serve("/a.yml", new)
    text = f"include:\n  - remote: {url}\n    integrity: {integrity_of(new.encode())}\n"
    assert scripts(load(text, fetcher(cache)))["a"] == ("new",)


def test_http_404_names_the_include(server: Server, cache: Path) -> None:
    message = error_of(f"include: {server.base}/missing.yml\n", fetcher(cache))
    assert f"remote include {server.base}/missing.yml could not be fetched: HTTP 404" in message
    assert "hint: check the URL" in message


def test_timeout_names_the_include(server: Server, cache: Path) -> None:
    server.routes["/slow.yml"] = Route(b"a: {script: [x]}\n", delay_s=2.0)
    message = error_of(f"include: {server.base}/slow.yml\n", fetcher(cache, timeout_s=0.2))
    assert "slow.yml could not be fetched" in message and "no answer within 0.2 s" in message


def test_plain_http_is_only_for_this_machine(server: Server, cache: Path) -> None:
    message = error_of("include: http://example.com/ci.yml\n", fetcher(cache))
    assert "only https URLs can be included" in message
    server.routes["/jump.yml"] = Route(status=302, location="http://example.com/ci.yml")
    message = error_of(f"include: {server.base}/jump.yml\n", fetcher(cache))
    assert "only https URLs can be included" in message


def test_remote_include_must_be_yaml(cache: Path) -> None:
    assert "must end in .yml" in error_of("include: https://x.test/ci.txt\n", fetcher(cache))


def test_include_rules_apply_before_fetching(server: Server, cache: Path) -> None:
    server.serve("/a.yml", "a: {script: [a]}\n")
    text = f"""
        include:
          - remote: {server.base}/a.yml
            rules:
              - if: $CI_COMMIT_REF_NAME == "main"
        job: {{script: [x]}}
    """
    skipped = load(text, fetcher(cache), variables={"CI_COMMIT_REF_NAME": "dev"})
    assert [j.name for j in skipped.jobs] == ["job"] and server.hits == []
    taken = load(text, fetcher(cache), variables={"CI_COMMIT_REF_NAME": "main"})
    assert [j.name for j in taken.jobs] == ["a", "job"]


def test_nested_includes_of_a_remote_file_see_no_variables(server: Server, cache: Path) -> None:
    server.serve(
        "/outer.yml",
        """
        include:
          - local: local.yml
            rules:
              - if: $CI_COMMIT_REF_NAME == "main"
        outer: {script: [o]}
        """,
    )
    files = {"local.yml": "from-local: {script: [l]}\n"}
    text = f"include: {server.base}/outer.yml\n"
    p = load(text, fetcher(cache), files, {"CI_COMMIT_REF_NAME": "main"})
    assert [j.name for j in p.jobs] == ["outer"]


def test_local_include_in_a_remote_file_reads_the_project(server: Server, cache: Path) -> None:
    server.serve("/outer.yml", "include: [local.yml]\nouter: {script: [o]}\n")
    files = {"local.yml": "from-local: {script: [l]}\n"}
    p = load(f"include: {server.base}/outer.yml\n", fetcher(cache), files)
    assert sorted(j.name for j in p.jobs) == ["from-local", "outer"]


def test_without_an_external_source_the_error_says_so() -> None:
    message = error_of("include: {template: Python.gitlab-ci.yml}\nt: {script: [x]}\n", None)
    assert "`include: template: Python.gitlab-ci.yml` cannot be read" in message


# ---------------------------------------------------------------------------- templates


def test_template_from_the_configured_base_and_ref(server: Server, cache: Path) -> None:
    base = "/raw/v17.0/lib/gitlab/ci/templates"
    server.serve(
        f"{base}/Python.gitlab-ci.yml",
        """
        include:
          - template: Jobs/Lint.gitlab-ci.yml
            rules:
              - if: $CI_COMMIT_REF_NAME
                when: never
              - when: always
        py-test: {script: [pytest]}
        """,
    )
    server.serve(f"{base}/Jobs/Lint.gitlab-ci.yml", "lint: {script: [ruff]}\n")
    f = fetcher(cache, templates_url=f"{server.base}/raw", templates_ref="v17.0")
    p = load(
        "include: {template: Python.gitlab-ci.yml}\n", f, variables={"CI_COMMIT_REF_NAME": "x"}
    )
    assert sorted(j.name for j in p.jobs) == ["lint", "py-test"]
    assert "template:Python.gitlab-ci.yml" in p.files
    assert f.notices[0] == (
        f"fetching template Python.gitlab-ci.yml from {server.base}{base}/Python.gitlab-ci.yml"
    )
    offline = fetcher(
        cache, templates_url=f"{server.base}/raw", templates_ref="v17.0", offline=True
    )
    server.routes.clear()
    assert len(load("include: {template: Python.gitlab-ci.yml}\n", offline).jobs) == 2


def test_unknown_template(server: Server, cache: Path) -> None:
    f = fetcher(cache, templates_url=f"{server.base}/raw")
    message = error_of("include: {template: Nope.gitlab-ci.yml}\n", f)
    assert "template Nope.gitlab-ci.yml could not be fetched: HTTP 404" in message
    assert "check the template name" in message
    assert "not a valid template name" in error_of("include: {template: x.yml}\n", f)


# ---------------------------------------------------------------------------- projects


def bare_from(work: Path, bare: Path) -> Path:
    bare.parent.mkdir(parents=True, exist_ok=True)
    git(work.parent, "clone", "--bare", "--quiet", str(work), str(bare))
    return bare


@pytest.fixture
def ci_project(tmp_path: Path) -> Path:
    """team/ci-templates: main has v2 content, tag v1 the older one; bare at remotes/."""
    work = make_repo(
        tmp_path / "work" / "ci-templates",
        {
            "build.yml": "include: [common/base.yml]\nbuild: {extends: .base, script: [v1]}\n",
            "common/base.yml": ".base: {stage: build}\n",
        },
        remote=None,
    )
    git(work, "tag", "v1")
    write_files(
        work,
        {
            "build.yml": """
                include:
                  - local: common/base.yml
                  - local: extra.yml
                    rules: [{exists: [marker.txt]}]
                build: {extends: .base, script: [v2]}
            """,
            "extra.yml": "extra: {script: [extra]}\n",
            "marker.txt": "x",
            "test.yml": "unit: {script: [pytest]}\n",
        },
    )
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "v2")
    return bare_from(work, tmp_path / "remotes" / "team" / "ci-templates.git")


def project_fetcher(cache: Path, remotes: Path, **settings: Any) -> Fetcher:
    urls = {"gitlab.test": f"file://{remotes}/{{project}}.git"}
    return fetcher(cache, server="gitlab.test", git_urls=urls, **settings)


def test_project_include_at_ref_with_nested_local_includes(ci_project: Path, cache: Path) -> None:
    remotes = ci_project.parent.parent
    text = """
        include:
          - project: team/ci-templates
            ref: {ref}
            file: [/build.yml{more}]
    """
    f = project_fetcher(cache, remotes)
    old = load(text.format(ref="v1", more=""), f)
    assert scripts(old) == {"build": ("v1",)} and old.jobs[0].stage == "build"
    new = load(text.format(ref="main", more=", test.yml"), f)
    assert scripts(new) == {"build": ("v2",), "extra": ("extra",), "unit": ("pytest",)}
    assert "team/ci-templates@main:common/base.yml" in new.files
    assert any("fetching project team/ci-templates (ref v1) from file://" in n for n in f.notices)


def test_project_include_is_cached_per_ref_and_read_offline(ci_project: Path, cache: Path) -> None:
    remotes = ci_project.parent.parent
    text = "include: {project: team/ci-templates, ref: v1, file: build.yml}\n"
    load(text, project_fetcher(cache, remotes))
    default = "include: {project: team/ci-templates, file: build.yml}\n"
    load(default, project_fetcher(cache, remotes))
    renamed = ci_project.with_name("gone.git")
    ci_project.rename(renamed)  # the "server" is unreachable from now on
    offline = project_fetcher(cache, remotes, offline=True)
    assert scripts(load(text, offline))["build"] == ("v1",)
    assert scripts(load(default, offline))["build"] == ("v2",)
    message = error_of(text.replace("v1", "main"), offline)
    assert "project team/ci-templates (ref main) is not in the include cache" in message
    assert "--offline" in message


def test_project_errors_name_the_include(ci_project: Path, cache: Path) -> None:
    f = project_fetcher(cache, ci_project.parent.parent)
    message = error_of("include: {project: team/ci-templates, ref: nope, file: a.yml}\n", f)
    assert "project team/ci-templates (ref nope): cannot fetch" in message
    message = error_of("include: {project: team/ci-templates, file: missing.yml}\n", f)
    assert "project team/ci-templates file missing.yml does not exist" in message
    message = error_of("include: {project: team/other, file: a.yml}\n", f)
    assert "project team/other: cannot fetch" in message and "--include-map" in message
    assert "needs `file:`" in error_of("include: {project: team/ci-templates}\n", f)


def test_project_include_without_a_server(cache: Path) -> None:
    message = error_of("include: {project: team/ci, file: a.yml}\n", fetcher(cache))
    assert "cannot tell which GitLab server hosts it" in message


def test_key_origins_trace_jobs_to_their_include(ci_project: Path, cache: Path) -> None:
    text = "stages: [build, test]\ninclude:\n  - project: team/ci-templates\n    file: build.yml\n"
    _, ctx = load_ctx(text, project_fetcher(cache, ci_project.parent.parent))
    merged = load_file(ctx, ".gitlab-ci.yml")
    origins = key_origins(ctx, merged)
    build = [str(loc) for loc in origins["build"]]
    assert build == ["team/ci-templates@HEAD:build.yml:6", ".gitlab-ci.yml:3"]
    base = [str(loc) for loc in origins[".base"]]
    assert base[0] == "team/ci-templates@HEAD:common/base.yml:1" and len(base) == 3
    assert [str(loc) for loc in origins["stages"]] == [".gitlab-ci.yml:1"]


# ---------------------------------------------------------------------------- mappings


def test_mapped_sibling_checkout_at_ref_and_working_tree(tmp_path: Path, cache: Path) -> None:
    sibling = make_repo(
        tmp_path / "ci-templates", {"build.yml": "build: {script: [committed]}\n"}, remote=None
    )
    (sibling / "build.yml").write_text("build: {script: [edited]}\n")
    f = fetcher(cache, mapping={"team/ci-templates": sibling})
    at_ref = "include: {project: team/ci-templates, ref: main, file: build.yml}\n"
    assert scripts(load(at_ref, f))["build"] == ("committed",)
    worktree = "include: {project: Team/CI-Templates, file: build.yml}\n"
    assert scripts(load(worktree, f))["build"] == ("edited",)
    assert "include map" in f.notices[0]
    assert not (cache / "git").exists()
    message = error_of(at_ref.replace("main", "v9"), f)
    assert "ref v9 is not in" in message


def test_host_mapping_and_plain_directory(tmp_path: Path, cache: Path) -> None:
    write_files(tmp_path / "src" / "team" / "ci", {"a.yml": "a: {script: [plain]}\n"})
    f = fetcher(cache, server="gitlab.test", mapping={"gitlab.test": tmp_path / "src"})
    text = "include: {project: team/ci, ref: main, file: a.yml}\n"
    assert scripts(load(text, f))["a"] == ("plain",)
    assert "not a git repository" in f.notices[0]
    missing = fetcher(cache, mapping={"team/ci": tmp_path / "nowhere"})
    assert "which is not a directory" in error_of(text, missing)


def test_mapping_options_and_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_mapping(["team/ci/=../ci"], tmp_path) == {"team/ci": tmp_path / "../ci"}
    with pytest.raises(UsageError, match="expected PROJECT=DIR"):
        parse_mapping(["team/ci"], tmp_path)
    write_files(
        tmp_path,
        {
            ".localci/includes.yml": """
                map: {Team/CI: ../ci, gitlab.test: /srv/src}
                server: GitLab.Test
                git_urls: {gitlab.test: "ssh://git@gitlab.test:2222/{project}.git"}
                templates: {ref: v17.0}
            """
        },
    )
    config = read_config(tmp_path)
    assert config["map"] == {"team/ci": tmp_path / "../ci", "gitlab.test": Path("/srv/src")}
    assert config["server"] == "gitlab.test"
    monkeypatch.setenv("LOCALCI_TEMPLATES_URL", "http://127.0.0.1:1/raw")
    source = external_source(tmp_path, IncludeOptions(mapping=("other/x=y",)))
    s = source.settings
    assert s.templates_url == "http://127.0.0.1:1/raw" and s.templates_ref == "v17.0"
    assert s.mapping["other/x"] == tmp_path / "y" and s.server == "gitlab.test"
    assert s.cache_dir.name == "includes"
    with pytest.raises(UsageError, match="cannot go with --offline"):
        external_source(tmp_path, IncludeOptions(offline=True, refresh=True))
    (tmp_path / ".localci/includes.yml").write_text("git_urls: {h: 'https://h/x.git'}\n")
    with pytest.raises(UsageError, match="placeholder"):
        read_config(tmp_path)


def test_project_url_follows_the_origin_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {"a": "x"}, remote="git@gitlab.example.com:g/app.git")
    s = external_source(repo, IncludeOptions()).settings
    assert s.server == "gitlab.example.com"
    f = Fetcher(s)
    assert f._git_url("gitlab.example.com", "team/ci") == "git@gitlab.example.com:team/ci.git"
    assert f._git_url("gitlab.com", "components/x") == "https://gitlab.com/components/x.git"
    https = Fetcher(FetchSettings(tmp_path, origin_url="https://me:tok@gl.test:8443/g/app"))
    assert https._git_url("gl.test", "team/ci") == "https://me:tok@gl.test:8443/team/ci.git"


# ---------------------------------------------------------------------------- components

COMPONENT = """\
spec:
  component: [name, sha, version, reference]
  inputs:
    stage: {{default: test}}
---
deploy-$[[ component.name ]]:
  stage: $[[ inputs.stage ]]
  script:
    - echo {release} $[[ component.version ]] ref=$[[ component.reference ]]
    - echo sha=$[[ component.sha ]]
"""


@pytest.fixture
def component_repo(tmp_path: Path) -> Path:
    work = make_repo(tmp_path / "work" / "deploy", {"README.md": "x"}, remote=None)
    for release in ("1.0.0", "1.1.0", "1.2.0", "1.2.1", "2.0.0", "2.1.0-rc1"):
        files = {
            "templates/deploy.yml": COMPONENT.format(release=release),
            "templates/multi/template.yml": f"multi: {{script: [echo {release}]}}\n",
        }
        write_files(work, files)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", release)
        git(work, "tag", "-a", "-m", release, release)
    write_files(work, {"templates/deploy.yml": COMPONENT.format(release="main")})
    git(work, "commit", "-q", "-am", "unreleased")
    return bare_from(work, tmp_path / "remotes" / "components" / "deploy.git")


def component_fetcher(cache: Path, repo: Path, **settings: Any) -> Fetcher:
    urls = {"gitlab.test": f"file://{repo.parent.parent}/{{project}}.git"}
    return fetcher(cache, git_urls=urls, **settings)


@pytest.mark.parametrize(
    ("version", "ref", "semver"),
    [
        ("~latest", "2.0.0", "2.0.0"),
        ("1", "1.2.1", "1.2.1"),
        ("1.2", "1.2.1", "1.2.1"),
        ("1.1.0", "1.1.0", "1.1.0"),
        ("2.1.0-rc1", "2.1.0-rc1", "2.1.0-rc1"),
        ("main", "main", ""),
    ],
)
def test_component_versions(
    component_repo: Path, cache: Path, version: str, ref: str, semver: str
) -> None:
    text = f"include:\n  - component: gitlab.test/components/deploy/deploy@{version}\n"
    job = load(text, component_fetcher(cache, component_repo)).jobs[0]
    assert job.name == "deploy-deploy" and job.stage == "test"
    assert job.script[0] == f"echo {ref} {semver} ref={version}"
    sha = git(component_repo, "rev-parse", f"{ref}^{{commit}}")
    assert job.script[1] == f"echo sha={sha}"


def test_component_by_sha_and_directory_form(component_repo: Path, cache: Path) -> None:
    sha = git(component_repo, "rev-parse", "1.0.0^{commit}")
    f = component_fetcher(cache, component_repo)
    text = f"include:\n  - component: gitlab.test/components/deploy/multi@{sha}\n"
    p = load(text, f)
    assert scripts(p) == {"multi": ("echo 1.0.0",)}
    assert f"gitlab.test/components/deploy@{sha}:templates/multi/template.yml" in p.files


def test_component_inputs_and_offline_resolution(component_repo: Path, cache: Path) -> None:
    text = """
        include:
          - component: gitlab.test/components/deploy/deploy@1.2
            inputs: {stage: deploy}
        stages: [deploy]
    """
    online = component_fetcher(cache, component_repo)
    assert load(text, online).jobs[0].stage == "deploy"
    assert any("listing the tags of" in n for n in online.notices)
    component_repo.rename(component_repo.with_name("gone.git"))
    offline = component_fetcher(cache, component_repo, offline=True)
    assert load(text, offline).jobs[0].script[0].startswith("echo 1.2.1 1.2.1")
    message = error_of(text.replace("@1.2", "@~latest"), offline)
    assert "component gitlab.test/components/deploy@~latest is not in the include cache" in message


def test_component_errors(component_repo: Path, cache: Path) -> None:
    f = component_fetcher(cache, component_repo)
    base = "include:\n  - component: gitlab.test/components/deploy/"
    assert "no version matches '3'" in error_of(base + "deploy@3\n", f)
    assert "no templates/nope.yml or templates/nope/template.yml" in error_of(base + "nope@1\n", f)
    assert "HOST/GROUP/PROJECT/NAME@VERSION" in error_of("include: {component: a/b@1}\n", f)


def test_component_field_must_be_declared(tmp_path: Path, cache: Path) -> None:
    write_files(
        tmp_path / "comp",
        {
            "templates/c.yml": "spec:\n  inputs: {}\n---\n"
            "c: {script: ['echo $[[ component.sha ]]']}\n"
        },
    )
    f = fetcher(cache, mapping={"gitlab.test/g/comp": tmp_path / "comp"})
    message = error_of("include: {component: gitlab.test/g/comp/c@1.0.0}\n", f)
    assert "needs `sha` declared in the header's `spec:component`" in message


def test_mapped_component_resolves_local_tags(
    component_repo: Path, cache: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "deploy-checkout"
    git(tmp_path, "clone", "--quiet", str(component_repo), str(clone))
    f = fetcher(cache, mapping={"gitlab.test/components/deploy": clone})
    text = "include:\n  - component: gitlab.test/components/deploy/deploy@~latest\n"
    assert load(text, f).jobs[0].script[0] == "echo 2.0.0 2.0.0 ref=~latest"
    assert not (cache / "git").exists()


# ---------------------------------------------------------------------------- pure parts


def test_resolve_version_order() -> None:
    refs = Refs(
        tags={"1.0.0": "a" * 40, "v1.3.0": "b" * 40, "1.10.0": "c" * 40, "2.0.0-rc": "d" * 40},
        heads={"main": "e" * 40, "1": "f" * 40},
    )
    pick = {
        s: r.label if (r := resolve_version(s, refs)) else None
        for s in ("~latest", "1", "1.3", "2", "main", "x")
    }
    assert pick == {
        "~latest": "1.10.0",
        "1": "1.10.0",
        "1.3": "v1.3.0",
        "2": None,
        "main": "main",
        "x": None,
    }
    assert resolve_version("0" * 40, refs) is not None
    assert resolve_version("~latest", Refs()) is None


def test_parse_ls_remote_prefers_peeled_tags() -> None:
    refs = parse_ls_remote(
        "1111\trefs/heads/main\n2222\trefs/tags/1.0.0\n3333\trefs/tags/1.0.0^{}\n4444\tHEAD\n"
    )
    assert refs.tags == {"1.0.0": "3333"} and refs.heads == {"main": "1111"}


def test_parse_component_address() -> None:
    assert parse_component("GitLab.com/g/sub/proj/name@~latest") == (
        "gitlab.com",
        "g/sub/proj",
        "name",
        "~latest",
    )
    for bad in ("gitlab.com/g/name@1", "gitlab.com/g/p/name", "gitlab.com/g/p/a.b@1"):
        with pytest.raises(ConfigError):
            parse_component(bad)
