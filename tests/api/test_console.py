"""The web console in a real browser: headless Chromium from the OS, driven by Selenium.

The tests sign in as a person would, open every page, and check what is on the screen; they
save a screenshot of each page: in a temporary folder, or under ``BROKERFLOW_CONSOLE_SHOTS``
(``BROKERFLOW_CONSOLE_SHOTS=docs/console`` refreshes the ones the README shows; an ordinary test
run leaves the checkout clean). Forms, cookies and headers a browser hides are checked with requests.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.runtime.conftest import make_runtime, notify, webhook  # noqa: F401 - fixtures

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("BROKERFLOW_CONSOLE_SHOTS") or tempfile.mkdtemp(prefix="brokerflow-console-shots-"))
XSS = "<script>alert('x')</script> big deposit"
SECRET = "Bearer sk_live_do_not_show"


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="bf-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def console(make_runtime, browser):  # noqa: F811
    runtime = make_runtime(http="127.0.0.1:0")
    runtime.url = runtime.engine.http.url
    browser.delete_all_cookies()
    return runtime


def sign_in(browser, url: str, token: str) -> None:
    browser.get(f"{url}/console/signin")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form.signin button").click()


def shot(browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def heading(browser, text: str) -> None:
    """Wait for the page whose h1 is ``text`` (a click on a submit button returns before the next page loads)."""
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda driver: [h.text for h in driver.find_elements(By.TAG_NAME, "h1")] == [text])


def texts(browser, selector: str) -> list[str]:
    """The texts of the elements ``selector`` finds, read again if the page was re-rendered meanwhile
    (a page that refreshes itself replaces its elements between the find and the read)."""
    for _ in range(5):
        try:
            return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]
        except StaleElementReferenceException:
            continue
    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def no_alert(browser) -> bool:
    try:
        alert = browser.switch_to.alert
    except NoAlertPresentException:
        return True
    alert.dismiss()
    return False


def test_an_admin_signs_in_and_sees_rules_runs_processes_and_stats(console, browser):
    url = console.url
    rule = console.rule("deposit.created", [notify("deposit of {{amount_usd}}"), webhook(
        "http://127.0.0.1:9/hook", headers={"Authorization": SECRET}, body="<b>{{trade.login}}</b>", retries=0)],
        name=XSS)
    console.rule("deposit.created", [notify("beta")], brand="beta", name="beta rule")
    for amount in range(52):
        console.deposit(1001, 10 + amount)
    console.deposit(2001, 5)
    console.deposit(2001, 6)
    console.wait_runs(52, rule_id=rule["id"])
    console.wait_runs(2, brand="beta")
    console.call("MngAddFlow", {"flow": {"name": "signup", "initial": "personal", "states": {
        "personal": {"title": "Personal data", "on": {"next": "docs"}}, "docs": {"title": "Documents",
                                                                                 "on": {"submit": "done"}},
        "done": {"final": True}}}})
    pid = console.call("START", {"name": "signup"})["pid"]
    console.call("EVENT", {"pid": pid, "name": "next", "input": {"value": "filled"}})

    browser.get(f"{url}/console/rules")
    heading(browser, "Sign in")  # no page without sign-in
    shot(browser, "signin")
    sign_in(browser, url, "bf_not_a_token")
    WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".error"))
    assert browser.find_element(By.CSS_SELECTOR, ".error").text == "Unknown or revoked token."
    sign_in(browser, url, console.api.token)
    heading(browser, "Rules")
    assert sorted(texts(browser, "section.rule .name")) == sorted([XSS, "beta rule"])  # shown as text, not run
    assert no_alert(browser)
    page = browser.page_source
    assert "sk_live_do_not_show" not in page and '"Authorization": "***"' in browser.find_element(
        By.ID, f"rule-{rule['id']}").text
    assert console.api.token not in page
    cookie = browser.get_cookie("bf_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and console.api.token not in cookie["value"]
    shot(browser, "rules")

    browser.find_element(By.LINK_TEXT, "Run log").click()
    heading(browser, "Run log")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert len(rows) == 50 and all("deposit.created" in row.text for row in rows)
    assert any("notify.manager: success webhook.send: failed" in " ".join(row.text.split()) for row in rows)
    shot(browser, "runs")
    browser.find_element(By.LINK_TEXT, "Older runs").click()
    WebDriverWait(browser, 10).until(lambda driver: "before=" in driver.current_url)
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")) == 54 - 50  # 52 alpha + 2 beta runs
    browser.get(f"{url}/console/runs?status=success&brand=beta")
    assert {row.split()[3] for row in texts(browser, "table.runs tbody tr")} == {"beta"}

    browser.find_element(By.LINK_TEXT, "Processes").click()
    heading(browser, "Workflow Machine processes")
    WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.LINK_TEXT, pid))  # the list, as stored
    assert texts(browser, "table.processes tbody tr")[0].split()[:5] == [pid, "-", "signup", "docs", "active"]
    browser.find_element(By.LINK_TEXT, pid).click()
    WebDriverWait(browser, 10).until(lambda driver: "pid=" in driver.current_url)
    assert browser.find_element(By.CSS_SELECTOR, ".process .state").text == "docs"
    assert texts(browser, "ul.events li") == ["submit"]
    history = texts(browser, "table.history tbody tr")
    assert len(history) == 2 and "Personal data" in history[0] and "Documents" in history[1]
    shot(browser, "processes")

    browser.find_element(By.LINK_TEXT, "Stats").click()
    heading(browser, "Engine stats")
    actors = {row.split()[0] for row in texts(browser, "table.actors tbody tr")}
    assert {"router", "runlog", "webhook"} <= actors
    assert "logged" in browser.find_element(By.CSS_SELECTOR, "table.kv").text
    shot(browser, "stats")

    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    heading(browser, "Sign in")
    browser.get(f"{url}/console/stats")
    heading(browser, "Sign in")


def test_a_brand_token_sees_its_brand_only(console, browser):
    console.rule("deposit.created", [notify("alpha")], name="alpha rule")
    console.rule("deposit.created", [notify("beta")], brand="beta", name="beta rule")
    console.deposit(1001, 10)
    console.deposit(2001, 10)
    console.wait_runs(2)
    token, _ = console.engine.store.tokens.create("SESSION_MANAGER", brand="alpha", name="alpha desk")
    sign_in(browser, console.url, token)
    heading(browser, "Rules")
    assert texts(browser, "section.rule .name") == ["alpha rule"]
    assert "SESSION_MANAGER · brand alpha" in browser.find_element(By.CSS_SELECTOR, ".who").text
    browser.get(f"{console.url}/console/runs")
    assert {row.split()[3] for row in texts(browser, "table.runs tbody tr")} == {"alpha"}
    browser.get(f"{console.url}/console/runs?brand=beta")
    heading(browser, "Refused")
    assert browser.find_element(By.CSS_SELECTOR, ".error").text.startswith("ACCESS_DENIED")
    assert texts(browser, "table.runs tbody tr") == []


def _form_csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_forms_need_their_csrf_value_and_every_page_sends_a_strict_csp(make_runtime):  # noqa: F811
    runtime = make_runtime(world=False, http="127.0.0.1:0")
    url = f"{runtime.engine.http.url}/console"
    http = requests.Session()
    form = http.get(f"{url}/signin", timeout=5)
    csp = form.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    refused = http.post(f"{url}/signin", data={"token": runtime.api.token, "csrf": "forged"}, timeout=5)
    assert refused.status_code == 400 and "The form expired" in refused.text
    signed = http.post(f"{url}/signin", data={"token": runtime.api.token, "csrf": _form_csrf(refused.text)},
                       allow_redirects=False, timeout=5)
    assert signed.status_code == 303 and "HttpOnly" in signed.headers["Set-Cookie"]
    assert "SameSite=Strict" in signed.headers["Set-Cookie"] and runtime.api.token not in signed.headers["Set-Cookie"]
    rules = http.get(f"{url}/rules", timeout=5)
    assert rules.status_code == 200 and rules.headers["Cache-Control"] == "no-store"
    assert http.post(f"{url}/signout", data={}, timeout=5).status_code == 400  # a forged sign-out
    assert http.get(f"{url}/rules", allow_redirects=False, timeout=5).status_code == 200
    assert http.post(f"{url}/signout", data={"csrf": _form_csrf(rules.text)}, allow_redirects=False,
                     timeout=5).status_code == 303
    assert http.get(f"{url}/rules", allow_redirects=False, timeout=5).status_code == 302
