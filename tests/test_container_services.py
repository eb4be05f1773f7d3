"""`services:` and image pulls with real containers and a real local registry."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from localci.execute.container.engine import Engine
from tests.container_support import (
    BUSYBOX,
    ENTRY,
    HTTPD,
    SLOW_HTTPD,
    ensure_images,
    free_port,
    insecure_registries_conf,
    job_log,
    local_registry,
    localci_objects,
    require_engine,
    run_json,
)
from tests.helpers import make_repo, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    found = require_engine()
    ensure_images(found, tmp_path_factory.mktemp("images"))
    yield found


def test_services_reachable_by_every_alias_form(engine: Engine, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            variables:
              FROM_JOB: job-value
            job:
              image: {BUSYBOX}
              services:
                - {HTTPD}
                - name: {HTTPD}
                  alias: web, second-name
                - name: {BUSYBOX}
                  alias: greeter
                  variables: {{GREETING: hi-from-service}}
                  command:
                    - sh
                    - -c
                    - echo "$GREETING $FROM_JOB" > /www/index.html; exec httpd -f -p 81 -h /www
                - name: {ENTRY}
                  alias: entry
                  entrypoint: [sh, -c]
                  command: ["echo via-entrypoint > /www/index.html; exec httpd -f -p 82 -h /www"]
              script:
                - wget -q -O- http://localhost__localci-test__httpd/
                - wget -q -O- http://localhost-localci-test-httpd/
                - wget -q -O- http://web/ && wget -q -O- http://second-name/
                - sleep 1; wget -q -O- http://greeter:81/
                - sleep 1; wget -q -O- http://entry:82/
            """
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 0, output + log
    assert log.count("hello from the service") == 4
    assert "hi-from-service job-value" in log
    assert "via-entrypoint" in log
    assert "services: not emulated" not in output
    assert "not started" not in output + log  # they were started, in the job's network
    assert localci_objects(engine, repo) == ([], [])


def test_slow_service_is_waited_for_and_debug_logs_stream(engine: Engine, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            job:
              image: {BUSYBOX}
              variables: {{CI_DEBUG_SERVICES: "true"}}
              services:
                - name: {SLOW_HTTPD}
                  alias: slow
                  entrypoint: [sh, -c]
                  command: ["echo slow service starting; sleep 3; exec httpd -f -v -p 8080 -h /www"]
              script:
                - wget -q -O- http://slow:8080/
            """
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 0, output + log
    assert "hello from the service" in log
    assert "[service:localhost__localci-test__slow-httpd] slow service starting" in log


def test_a_service_that_never_listens_warns_and_the_job_still_runs(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALCI_WAIT_FOR_SERVICES_TIMEOUT", "3")
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            job:
              image: {BUSYBOX}
              services:
                - name: {HTTPD}
                  alias: mute
                  command: [sh, -c, "echo never listening; sleep 60"]
                  variables: {{HEALTHCHECK_TCP_PORT: "80"}}
              script: [echo script ran]
            """
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 0, output + log
    assert "*** WARNING: Service" in log and "probably didn't start properly" in log
    assert "after 3s" in log
    assert "never listening" in log
    assert "script ran" in log


def test_a_service_that_exits_is_not_waited_for(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALCI_WAIT_FOR_SERVICES_TIMEOUT", "120")
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            job:
              image: {BUSYBOX}
              services:
                - name: {HTTPD}
                  alias: gone
                  command: [sh, -c, "echo exiting at once; sleep 1"]
                  variables: {{HEALTHCHECK_TCP_PORT: "80"}}
              script: [echo script ran]
            """
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 0, output + log
    assert "probably didn't start properly" in log and "script ran" in log
    assert data["jobs"][0]["duration_s"] < 60  # not the 120 s timeout


def test_present_images_cost_no_registry_round_trip_under_if_not_present(
    engine: Engine, tmp_path: Path
) -> None:
    # The images' registry is down (nothing listens there): `always` shows that a pull fails.
    down = f"127.0.0.1:{free_port()}"
    image, service = f"{down}/localci-test/job:1", f"{down}/localci-test/web:1"
    for source, name in ((BUSYBOX, image), (HTTPD, service)):
        subprocess.run([engine.cli, "tag", source, name], check=True, capture_output=True)
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            stages: [present, always]
            present:
              stage: present
              image: {{name: {image}, pull_policy: if-not-present}}
              services: [{{name: {service}, alias: web}}]
              script: [wget -q -O- http://web/]
            default-policy:
              stage: present
              image: {image}
              script: [echo default policy]
            always:
              stage: always
              image: {{name: {image}, pull_policy: always}}
              allow_failure: true
              script: [echo not reached]
            """
        },
    )
    try:
        code, data, output = run_json(repo)
    finally:
        subprocess.run([engine.cli, "rmi", image, service], check=False, capture_output=True)
    assert code == 0, output
    present = job_log(data, "present")
    assert f"Using locally available image {image}" in present
    assert f"Using locally available image {service}" in present
    assert "hello from the service" in present
    assert "Pulling image" not in present + job_log(data, "default-policy")
    always = job_log(data, "always")
    assert f"Pulling image {image}" in always and f"image {image!r} is not available" in always
    assert localci_objects(engine, repo) == ([], [])


def test_a_missing_service_image_fails_the_job_and_leaves_no_network(
    engine: Engine, tmp_path: Path
) -> None:
    # The network is made while the services' images are looked at: it must still go away.
    missing = "localhost/localci-test/never-built:1"
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            job:
              image: {BUSYBOX}
              services:
                - {HTTPD}
                - name: {missing}
                  pull_policy: never
              script: [echo not reached]
            """
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 1, output
    assert f"image {missing!r} is not available" in log and "not reached" not in log
    assert localci_objects(engine, repo) == ([], [])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[str]:
    scratch = tmp_path_factory.mktemp("registry")
    for address in local_registry(scratch):
        conf = insecure_registries_conf(scratch, address)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
            yield address


def _push(engine: Engine, address: str, name: str) -> str:
    remote = f"{address}/localci-test/pulled-{name}:1"
    subprocess.run([engine.cli, "tag", BUSYBOX, remote], check=True, capture_output=True)
    push = [engine.cli, "push", remote]
    if engine.kind == "podman":
        push.insert(2, "--tls-verify=false")
    subprocess.run(push, check=True, capture_output=True)
    subprocess.run([engine.cli, "rmi", remote], check=True, capture_output=True)
    return remote


def test_pull_policies_against_a_local_registry(
    engine: Engine, registry: str, tmp_path: Path
) -> None:
    image = _push(engine, registry, "policy")
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            stages: [one, two, three, four]
            never:
              stage: one
              image: {{name: {image}, pull_policy: never}}
              allow_failure: true
              script: [echo never]
            first:
              stage: two
              image: {{name: {image}, pull_policy: [if-not-present]}}
              script: [echo ran in the pulled image]
            present:
              stage: three
              image: {{name: {image}, pull_policy: if-not-present}}
              script: [echo present]
            always:
              stage: four
              image: {{name: {image}, pull_policy: always}}
              script: [echo always]
            """
        },
    )
    code, data, output = run_json(repo)
    assert code == 0, output
    never = job_log(data, "never")
    assert f"image {image!r} is not available" in never and "pull_policy is never" in never
    assert f"`localci pull` or `{engine.kind} pull {image}`" in never
    first = job_log(data, "first")
    assert f"Pulling image {image}" in first and "ran in the pulled image" in first
    assert "Pulling image" not in job_log(data, "present")
    assert f"Pulling image {image}" in job_log(data, "always")


def test_offline_and_missing_names_the_image_and_localci_pull_fetches_it(
    engine: Engine, registry: str, tmp_path: Path
) -> None:
    image = _push(engine, registry, "offline")
    service = _push(engine, registry, "offline-service")
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            job:
              image: {image}
              services: [{{name: {service}, alias: svc, command: [sleep, "30"]}}]
              script: [echo offline works]
            """
        },
    )
    code, data, output = run_json(repo, "--offline")
    log = job_log(data, "job")
    assert code == 1
    assert f"image {image!r} is not available" in log and "--offline" in log
    pulled = run_cli(repo, "pull")
    assert pulled.exit_code == 0, pulled.output
    assert image in pulled.output and service in pulled.output
    code, data, output = run_json(repo, "--offline")
    assert code == 0, output + job_log(data, "job")
    assert "offline works" in job_log(data, "job")


def test_python_images_run_in_venvs_unless_they_have_services_or_executor_container(
    engine: Engine, tmp_path: Path
) -> None:
    python_image = "localhost/localci-test/python:3.12"  # a stand-in: busybox under that name
    subprocess.run([engine.cli, "tag", BUSYBOX, python_image], check=True, capture_output=True)
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            plain:
              image: {python_image}
              script: [echo "where=$CI_PROJECT_DIR"]
            with-service:
              image: {python_image}
              services: [{{name: {HTTPD}, alias: web}}]
              script: [echo "where=$CI_PROJECT_DIR", wget -q -O- http://web/]
            """
        },
    )
    code, data, output = run_json(repo)
    assert code == 0, output
    assert "virtualenv" in job_log(data, "plain")
    assert "where=/builds/group/project" not in job_log(data, "plain")
    assert "where=/builds/group/project" in job_log(data, "with-service")
    assert "hello from the service" in job_log(data, "with-service")
    code, data, output = run_json(repo, "--executor", "container", "plain")
    assert code == 0, output
    assert "where=/builds/group/project" in job_log(data, "plain")


def test_a_masked_value_straddling_the_long_line_cut_stays_masked_in_a_container(
    engine: Engine, tmp_path: Path
) -> None:
    secret = "ctr-s3cret-Value42"
    repo = make_repo(
        tmp_path / "p",
        {
            ".gitlab-ci.yml": f"""
            job:
              image: {BUSYBOX}
              script:
                - head -c 65530 /dev/zero | tr '\\000' x; echo "$TOKEN"
            """,
            ".localci/variables.yml": f"TOKEN: {{value: {secret}, masked: true}}\n",
        },
    )
    code, data, output = run_json(repo)
    log = job_log(data, "job")
    assert code == 0, output
    for text in (output, log):
        assert secret[:6] not in text  # the 64 KiB cut moved before the value: never half shown
    assert "x\n[MASKED]" in log
