"""A real browser (Debian's Chromium, driven by Selenium through chromedriver)
against a real `commons mirror --web` process on loopback.

Screenshots land in test-artifacts/web/ (ignored by git); the assertions are on
the DOM, never on pixels.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sync_support import Peer, peers_in

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
SIZES = {"phone": (360, 740), "desktop": (1280, 800)}
QUESTION = "How do I run a community mirror?"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs chromium and chromium-driver (apt; `make test` installs"
                              " them)"),
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    root = tmp_path_factory.mktemp("browser")
    spawn = peers_in(root)
    make: Callable[[str], Peer] = next(spawn)
    # A module's fixture starts before the suite's autouse one isolates the
    # environment: give the process the same isolation here.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(root))
        env.setenv("COMMONS_EMBEDDER", os.environ.get("COMMONS_TEST_EMBEDDER", "fake"))
        env.delenv("COMMONS_HOME", raising=False)
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            env.setenv(name, "1")
        env.setenv("ANONYMIZED_TELEMETRY", "False")
        peer = make("school").start(command="mirror", extra=("--web", "--web-rate", "6000"))
    yield peer
    peer.stop()
    with pytest.raises(StopIteration):
        next(spawn)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def use_size(driver: WebDriver, size: str) -> None:
    width, height = SIZES[size]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == "phone"})


def shot(driver: WebDriver, size: str, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}-{size}.png"
    driver.save_screenshot(str(path))
    return path


def fits(driver: WebDriver) -> None:
    """Nothing sticks out sideways: no horizontal scrolling at this width."""
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


def no_console_errors(driver: WebDriver) -> None:
    """No CSP violation, no failed load (besides the favicon no page asks for)."""
    errors = [e["message"] for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == []


@pytest.mark.parametrize("size", list(SIZES))
def test_ask_follow_a_citation_search_and_an_author(
        mirror: Peer, browser: WebDriver, size: str) -> None:
    use_size(browser, size)
    browser.get(mirror.url + "/")
    count = int(browser.find_element(By.ID, "doc-count").text)
    assert count >= 12  # the seeds
    assert browser.find_elements(By.CSS_SELECTOR, "#recent li a.title")
    fits(browser)
    shot(browser, size, "home")

    box = browser.find_element(By.ID, "q")
    box.send_keys(QUESTION)
    box.submit()
    citations = browser.find_elements(By.CSS_SELECTOR, "#citations > li")
    assert citations, browser.page_source[:2000]
    assert "community mirror" in browser.find_element(By.ID, "answer").text.lower()
    first = citations[0]
    assert "signature verified" in first.text and "commons seeds" in first.text
    fits(browser)
    path = shot(browser, size, "ask")
    if size == "phone":
        # The README's screenshot: delete docs/img/ask-phone.png to take it again.
        docs_img = ARTIFACTS.parent.parent / "docs" / "img" / "ask-phone.png"
        if not docs_img.exists():
            docs_img.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, docs_img)

    cited = first.find_element(By.CSS_SELECTOR, "a.title")
    expected_title = cited.text
    cited.click()
    assert browser.current_url.endswith("#passage")
    assert browser.find_element(By.ID, "doc-title").text in expected_title
    passage = browser.find_element(By.ID, "passage")
    assert passage.tag_name == "mark" and passage.text.strip()
    visible = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight;", passage)
    assert visible, "the cited passage is scrolled into view"
    assert "verified" in browser.find_element(By.ID, "signature").text
    fits(browser)
    shot(browser, size, "document")

    browser.find_element(By.LINK_TEXT, "Search").click()
    box = browser.find_element(By.ID, "sq")
    box.send_keys("negentropy reconciliation")
    box.submit()
    results = browser.find_elements(By.CSS_SELECTOR, "#results > li")
    assert results and browser.find_elements(By.CSS_SELECTOR, "#results mark")
    fits(browser)
    shot(browser, size, "search")

    author = results[0].find_element(By.CSS_SELECTOR, ".meta a")
    author.click()
    key = browser.find_element(By.ID, "author-key").text
    assert len(key) == 64 and browser.current_url.endswith("/author/" + key)
    assert browser.find_elements(By.CSS_SELECTOR, "#documents li")
    fits(browser)
    shot(browser, size, "author")
    no_console_errors(browser)
