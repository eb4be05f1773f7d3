"""The pipeline page in a real browser: Debian's chromium, headless, driven by its chromedriver.

The examples/reports pipeline is run for real; its page is opened from file:// and used as a
person would: every job is in the graph, clicking the failed job shows its log's tail, the
failed test comes first, and the browser logs no error. The screenshot is kept as a test
artifact (in the test's tmp dir, and in $LOCALCI_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_repo, run_localci

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reports"
FAILED_JOB = "integration-tests"
FAILED_TEST = "tests.test_flaky.IntegrationTest.test_remote_service"
# Without the networking switches chromium's background connections are refused here, which
# it reports as errors; none of them changes what the page does.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1280,1400",
)


def _browser_available() -> bool:
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


if not _browser_available():
    if os.environ.get("CI"):
        pytest.fail("chromium and chromium-driver must be installed in CI (see .ci/run)")
    pytest.skip("chromium/chromedriver not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only where a browser exists
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver
    profile = tempfile.mkdtemp(prefix="localci-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def reports_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("page")
    repo = root / "reports"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".localci", "__pycache__"))
    make_repo(repo, {})
    # --color: the logs get the colours a terminal run gives them, as the page shows them
    result = run_localci(repo, "run", "--no-tty", "--color")
    assert result.exit_code == 0, result.output
    record_dir = repo / ".localci" / "pipelines" / "1"
    page = record_dir / "pipeline.html"
    last = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout.rstrip().splitlines()[-1])
    assert last == f"pipeline page: {page}"
    return page, json.loads((record_dir / "pipeline.json").read_text())


def _errors(driver: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_page_of_a_real_run_works_in_chromium(
    browser: WebDriver, reports_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    page, record = reports_run
    browser.get(page.as_uri())
    drawn = {n.get_attribute("data-name") for n in browser.find_elements(By.CSS_SELECTOR, ".node")}
    assert drawn == {job["name"] for job in record["jobs"]}
    assert browser.find_elements(By.CSS_SELECTOR, ".graph .edges path"), "no needs lines"

    detail = browser.find_element(By.CSS_SELECTOR, f'.job-detail[data-name="{FAILED_JOB}"]')
    assert not detail.is_displayed()
    browser.find_element(By.CSS_SELECTOR, f'.node[data-name="{FAILED_JOB}"]').click()
    assert detail.is_displayed()
    log = detail.find_element(By.CSS_SELECTOR, ".log")
    last_line = log.find_elements(By.CSS_SELECTOR, ".l")[-1]
    assert last_line.text.endswith("Coverage: 0.0% of 15 lines")
    # the tail is what shows: scrolled to the end, the last line inside the visible box
    assert browser.execute_script(
        "const log = arguments[0], line = arguments[1].getBoundingClientRect();"
        "const box = log.getBoundingClientRect();"
        "return log.scrollTop + log.clientHeight >= log.scrollHeight - 2"
        " && line.bottom <= box.bottom + 1 && line.top >= box.top;",
        log,
        last_line,
    )
    assert "AssertionError: 'reachable' != 'unreachable'" in log.text

    first_case = browser.find_element(By.CSS_SELECTOR, "#tests .case-name")
    assert first_case.text == FAILED_TEST
    first_row = browser.find_element(By.CSS_SELECTOR, "#tests tr.case")
    assert "AssertionError" in first_row.text
    assert _errors(browser) == []

    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "pipeline-page.png"
    assert browser.save_screenshot(str(shot))
    keep = os.environ.get("LOCALCI_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    assert shot.stat().st_size > 10_000


def test_sections_collapse_and_the_timeline_opens_jobs(
    browser: WebDriver, reports_run: tuple[Path, dict[str, Any]]
) -> None:
    page, _ = reports_run
    browser.get(page.as_uri())
    browser.find_element(By.CSS_SELECTOR, ".gantt .bar[data-job] rect").click()
    detail = next(
        d for d in browser.find_elements(By.CSS_SELECTOR, ".job-detail") if d.is_displayed()
    )
    sections = detail.find_elements(By.CSS_SELECTOR, ".log details.phase")
    assert [s.find_element(By.CSS_SELECTOR, "summary").text for s in sections] == [
        "Preparing the environment",
        "script",
    ]
    script_line = sections[1].find_elements(By.CSS_SELECTOR, ".l")[1]
    assert script_line.is_displayed()
    detail.find_element(By.CSS_SELECTOR, 'button[data-action="collapse"]').click()
    assert not script_line.is_displayed()
    sections[1].find_element(By.CSS_SELECTOR, "summary").click()
    assert script_line.is_displayed()
    assert _errors(browser) == []


def test_the_history_page_links_to_each_run(
    browser: WebDriver, reports_run: tuple[Path, dict[str, Any]]
) -> None:
    page, _ = reports_run
    repo = page.parents[3]
    result = run_localci(repo, "report", "--history")
    assert result.exit_code == 0, result.output
    browser.get(Path(result.stdout.strip()).as_uri())
    assert len(browser.find_elements(By.CSS_SELECTOR, ".chart svg")) == 3
    browser.find_element(By.LINK_TEXT, "#1").click()
    assert browser.current_url == page.as_uri()
    assert _errors(browser) == []


def test_a_long_log_and_a_child_pipeline_are_usable(browser: WebDriver, tmp_path: Path) -> None:
    from localci.report.html import write_pipeline_page

    record_dir = tmp_path / ".localci" / "pipelines" / "1"
    (record_dir / "jobs").mkdir(parents=True)
    lines = ["section_start:1:build[collapsed=true]\r\x1b[0KBuilding"]
    lines += [f"\x1b[3{n % 8}mline {n}\x1b[0m <b>not bold</b>" for n in range(1, 6000)]
    lines += ["section_end:9:build\r\x1b[0K", "the very end"]
    (record_dir / "jobs" / "long.log").write_text("\n".join(lines) + "\n")
    (record_dir / "jobs" / "child.log").write_text("from the child\n")
    child = {
        "id": "1/1",
        "status": "success",
        "jobs": [{"name": "child-job", "stage": "test", "status": "success",
                  "log": str(record_dir / "jobs" / "child.log")}],
    }  # fmt: skip
    jobs = [
        {"name": "long", "stage": "build", "status": "success",
         "log": str(record_dir / "jobs" / "long.log")},
        {"name": "bridge", "stage": "deploy", "status": "success", "trigger": True,
         "children": [child]},
    ]  # fmt: skip
    (record_dir / "pipeline.json").write_text(json.dumps({"id": 1, "jobs": jobs}))
    page = write_pipeline_page(record_dir)
    browser.get(page.as_uri())
    browser.find_element(By.CSS_SELECTOR, '.node[data-name="long"]').click()
    detail = browser.find_element(By.CSS_SELECTOR, '.job-detail[data-name="long"]')
    log = detail.find_element(By.CSS_SELECTOR, ".log")
    assert browser.execute_script("return arguments[0].querySelectorAll('.l').length", log) > 6000
    last = log.find_elements(By.CSS_SELECTOR, ".l")[-1]
    assert last.text.endswith("the very end") and last.is_displayed()
    collapsed = log.find_element(By.CSS_SELECTOR, "details.sec:not(.phase)")
    assert collapsed.get_attribute("open") is None
    assert "<b>not bold</b>" in collapsed.get_attribute("textContent")
    browser.find_element(By.CSS_SELECTOR, '.downstream .node[data-name="child-job"]').click()
    child_detail = browser.find_element(By.CSS_SELECTOR, '.job-detail[data-name="child-job"]')
    assert child_detail.is_displayed() and "from the child" in child_detail.text
    assert not detail.is_displayed()
    assert _errors(browser) == []
