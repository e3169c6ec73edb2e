"""The HTML pages in a real browser: Debian's headless chromium driven by chromedriver.

Pages render, their links lead where they say, and the job page follows a running job to
``successful`` without a reload. Screenshots go to ``test-output/screenshots/`` (git-ignored);
the Prefect UI's page of a job's flow run is photographed too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import Engine
from tests.support import (
    ECHO_CWL,
    deploy_cwl,
    execute_async,
    flow_run_id,
    sleep_cwl,
    wait_for_status,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(f"{missing} not installed: `./dev test` installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-proxy-server",
    ):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager (which downloads drivers) never runs.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _wait(driver, check, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: check(d), message=f"{what} not reached within {timeout:.0f} s"
    )


def _click(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.LINK_TEXT, text).click()


def _body(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def test_pages_render_and_links_work(browser, api: str, engine: Engine):
    deploy_cwl(api, ECHO_CWL)
    job_url = execute_async(api, "echo", {"message": "browsed"}).headers["Location"]
    job = wait_for_status(job_url, timeout=90)
    assert job["status"] == "successful"

    browser.get(f"{api}/?f=html")
    assert "OGC API - Processes on Prefect" in _body(browser)
    _shot(browser, "landing")
    _click(browser, "Processes")
    _wait(browser, lambda d: "echo" in _body(d), 30, "the process list")
    _shot(browser, "processes")
    _click(browser, "echo")
    _wait(browser, lambda d: "Inputs" in _body(d) and "message" in _body(d), 30, "the process")
    _shot(browser, "process")
    _click(browser, "jobs of this process")
    _wait(browser, lambda d: job["jobID"] in _body(d), 30, "the job list")
    _shot(browser, "jobs")
    _click(browser, job["jobID"])
    _wait(browser, lambda d: "successful" in _body(d), 30, "the job page")
    _shot(browser, "job-successful")
    _click(browser, "logs")
    _wait(browser, lambda d: "Logs of job" in _body(d) and "execute" in _body(d), 30, "logs")
    _shot(browser, "logs")
    browser.back()
    _click(browser, "results")
    _wait(browser, lambda d: "said" in _body(d), 30, "the results page")
    _shot(browser, "results")
    browser.back()
    prefect = browser.find_element("id", "prefect-link").get_attribute("href")
    run_id = flow_run_id(engine.prefect_api_url, job["jobID"], engine.prefect_auth)
    assert prefect.endswith(f"/runs/flow-run/{run_id}")


def test_job_page_follows_the_job_without_reload(browser, api: str):
    deploy_cwl(api, sleep_cwl("napper", "4"))
    job_url = execute_async(api, "napper", {}).headers["Location"]
    browser.get(f"{job_url}?f=html")
    browser.execute_script("window.__samePage = 'yes';")  # gone if the page reloads
    status = lambda d: d.find_element("id", "status").text  # noqa: E731
    _wait(browser, lambda d: status(d) == "running", 60, "status running on the page")
    _shot(browser, "job-running")
    width = browser.find_element("id", "progress").value_of_css_property("width")
    assert not browser.find_element("id", "results-link").is_displayed()
    _wait(browser, lambda d: status(d) == "successful", 90, "status successful on the page")
    assert browser.execute_script("return window.__samePage;") == "yes"
    assert browser.find_element("id", "percent").text == "100"
    assert browser.find_element("id", "results-link").is_displayed()
    assert browser.find_element("id", "progress").value_of_css_property("width") != width
    _shot(browser, "job-finished")


def _log_in_to_prefect(driver, engine: Engine) -> None:
    """What the Prefect UI's login form does with the stack's credentials
    (``OAPIP_HOME/prefect-auth``, README, Security): keep them, base64, in the page's
    local storage under ``prefect-password``."""
    from stack.prefect_auth import auth_string

    script = "localStorage.setItem('prefect-password', btoa(arguments[0]))"
    driver.execute_script(script, auth_string(engine.home))


def test_prefect_ui_shows_the_jobs_flow_run(browser, api: str, engine: Engine):
    deploy_cwl(api, sleep_cwl("two-phase", "1"))
    job_url = execute_async(api, "two-phase", {}).headers["Location"]
    job = wait_for_status(job_url, timeout=90)
    assert job["status"] == "successful"
    monitor = next(link["href"] for link in job["links"] if link["rel"] == "prefect-ui")
    assert requests.get(monitor, headers={"Accept": "text/html"}, timeout=30).status_code == 200
    browser.get(monitor)
    _log_in_to_prefect(browser, engine)
    browser.get(monitor)
    _wait(
        browser,
        lambda d: "two-phase" in _body(d) and "Completed" in _body(d),
        60,
        "the flow run in the Prefect UI",
    )
    # The run graph is drawn on a canvas: wait for its task-run labels' layer to settle.
    _wait(browser, lambda d: "3 Task runs" in _body(d), 30, "the task-run count")
    _shot(browser, "prefect-flow-run")
    tab = "//*[self::button or self::a or self::li][normalize-space(.)='Artifacts']"
    browser.find_element("xpath", tab).click()
    _wait(browser, lambda d: "results" in _body(d).lower(), 30, "the artifacts tab")
    _shot(browser, "prefect-flow-run-artifacts")

    # What the pages show, read from Prefect's API: three named task runs, the progress
    # artifact and the link artifact to the results.
    run_filter = {
        "flow_runs": {
            "id": {"any_": [flow_run_id(engine.prefect_api_url, job["jobID"], engine.prefect_auth)]}
        }
    }
    tasks = requests.post(
        f"{engine.prefect_api_url}/task_runs/filter",
        json=run_filter,
        auth=engine.prefect_auth,
        timeout=30,
    ).json()
    assert sorted(t["name"].rsplit("-", 1)[0] for t in tasks) == [
        "execute",
        "stage-in",
        "stage-out",
    ]
    assert all(t["state_type"] == "COMPLETED" for t in tasks)
    artifacts = requests.post(
        f"{engine.prefect_api_url}/artifacts/filter",
        auth=engine.prefect_auth,
        json={
            "artifacts": {
                "flow_run_id": {
                    "any_": [flow_run_id(engine.prefect_api_url, job["jobID"], engine.prefect_auth)]
                }
            }
        },
        timeout=30,
    ).json()
    kinds = {a["type"]: a for a in artifacts}
    assert kinds["progress"]["data"] == 100
    assert "processing-results/" + job["jobID"] in kinds["markdown"]["data"]
    run_id = flow_run_id(engine.prefect_api_url, job["jobID"], engine.prefect_auth)
    flow_run = requests.get(
        f"{engine.prefect_api_url}/flow_runs/{run_id}", auth=engine.prefect_auth, timeout=30
    )
    assert flow_run.json()["name"] == "two-phase"
