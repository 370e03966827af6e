"""The dashboard (/ui) of a real `shoal serve` subprocess in real headless Chromium (Selenium with
the system chromedriver): sign in through the form, watch the run count reach 3 after three
requests, label a review item with the page's button, check the label through the API, and save
a screenshot to out/ui.png."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from shoal.models.local_server import HOST, free_port
from shoal.policies.escalation import SqliteLedger
from shoal.service import add_key
from tests.conftest import REPO

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
GRAPH_YAML = """\
shoal: 1
name: dashboard
nodes:
  triage: {agent: keyword_classifier, labels: {appointment: [visit], billing: [bill]}}
  after: {agent: noop}
edges: [triage -> after]
"""
MASKED = "can I move my visit to Friday, [NAME_1]? call [PHONE_1]"
CANARY = "Ottoline Vasquez-Brindle"
WAIT_S = 30.0


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    key: str
    entry: str
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=30.0, trust_env=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _browser_tools() -> tuple[str, str] | None:
    driver = shutil.which("chromedriver")
    binary = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    return (binary, driver) if binary and driver else None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(GRAPH_YAML)
    store = tmp_path / "outbox.sqlite"
    ledger = SqliteLedger(store)
    try:  # a review item, as the learning loop leaves one (masked text only)
        entry = ledger.append(graph="dashboard", node="triage", record_id="r1", run_id="run-1",
                              text=MASKED, local_label="billing", local_confidence=0.3,
                              p_wrong=0.6, planner_label="appointment",
                              planner_answer="appointment", planner_confidence=0.7,
                              model_version="triage@abc")
    finally:
        ledger.close()
    keys_file = tmp_path / "keys.json"
    key = add_key(keys_file, "reviewer", scopes=["run", "review"])
    port = free_port()
    env = {**os.environ, "SHOAL_OUTBOX": str(store), "SHOAL_AUDIT_LOG": str(tmp_path / "a.jsonl"),
           "NO_PROXY": "*"}
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli", "serve", str(graph_file), "--host", HOST,
             "--port", str(port), "--keys", str(keys_file)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    s = Server(proc, f"http://{HOST}:{port}", key, entry, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{s.url}/readyz", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "shoal serve never became ready"
            time.sleep(0.2)
        yield s
    finally:
        s.stop()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    tools = _browser_tools()
    if tools is None:
        if os.geteuid() == 0:
            pytest.fail("chromium and chromedriver are missing (make debian-packages installs "
                        "them)")
        pytest.skip("chromium/chromedriver absent and not root to install them")
    binary, driver_path = tools
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1100",
                "--disable-dev-shm-usage", "--no-proxy-server"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _text_is(driver: WebDriver, element_id: str, expected: str) -> bool:
    return driver.find_element(By.ID, element_id).text.strip() == expected


def test_the_dashboard_in_a_real_browser(server: Server, browser: WebDriver):
    wait = WebDriverWait(browser, WAIT_S)
    browser.get(f"{server.url}/ui")
    wait.until(expected_conditions.url_contains("/ui/login"))  # no session: the form
    browser.find_element(By.ID, "key").send_keys("sk-wrong")
    browser.find_element(By.ID, "signin").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    refused = browser.get_log("browser")  # read and cleared: the wrong key's 401
    assert [e["message"] for e in refused if "/ui/login" not in e["message"]] == []
    browser.find_element(By.ID, "key").send_keys(server.key)
    browser.find_element(By.ID, "signin").click()
    wait.until(lambda d: d.current_url.endswith("/ui"))
    cookie = browser.get_cookie("shoal_ui")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: not for scripts

    with server.api() as api:
        for text in ("I need to pay my bill", f"Hi, this is {CANARY}, move my visit", "hello"):
            assert api.post("/v1/runs", json={"text": text}).status_code == 200
    wait.until(lambda d: _text_is(d, "runs-total", "3"))
    assert browser.find_elements(By.CSS_SELECTOR, "#runs-chart svg rect")
    assert browser.find_elements(By.CSS_SELECTOR, "#share-chart svg")  # share over time

    confirm = wait.until(expected_conditions.element_to_be_clickable(
        (By.CSS_SELECTOR, "#review-table button.confirm")))
    assert "[NAME_1]" in browser.find_element(By.ID, "review-table").text
    assert confirm.text == "Confirm appointment"
    out = REPO / "out"
    out.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(out / "ui.png"))  # the queue item still on the page
    confirm.click()
    wait.until(lambda d: "Labelled appointment" in d.find_element(By.ID, "review-status").text)
    with server.api() as api:
        labelled = api.get("/v1/review", params={"all": "true"}).json()["data"]
    assert [(e["id"], e["human_label"]) for e in labelled] == [(server.entry, "appointment")]
    wait.until(lambda d: "Nothing to review" in d.find_element(By.ID, "review-table").text)

    page = browser.page_source
    assert CANARY not in page and "Vasquez" not in page
    errors = [e["message"] for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == []  # nothing blocked by the CSP, no script error

    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait.until(expected_conditions.url_contains("/ui/login"))
    browser.get(f"{server.url}/ui")
    wait.until(expected_conditions.url_contains("/ui/login"))
