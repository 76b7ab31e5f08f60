"""The app in a real browser: headless Debian Chromium driven by selenium.

Loads the page, uses each tab with an uploaded picture, waits for the result, checks the rendered
text and saves a screenshot per tab to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from benchmarks.datasets import lfw_pairs  # noqa: E402
from tests.test_app_api import EXAMPLES, ROOT, launch_app, stop_app  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
os.environ.setdefault("SE_AVOID_STATS", "true")  # selenium-manager: no network calls
SHOTS = ROOT / "docs" / "screenshots"
WAIT = 120  # seconds for one result on a busy CPU (the first call also waits for the models)
SCRIPT_NAME = "<script>alert(1)</script>"


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("Debian chromium and chromium-driver are not installed (run tests/install_chromium.sh)")
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary, driver_path = chromium_paths()
    log_path = tmp_path_factory.mktemp("app") / "app.log"
    process, url = launch_app(log_path)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1280,1700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        driver.get(url)
        WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.XPATH, "//button[@role='tab']"))
        yield driver
    finally:
        driver.quit()
        stop_app(process)


def open_tab(driver, label: str):
    """Click the top-level tab and return its panel element."""
    driver.find_element(By.XPATH, f"//button[@role='tab'][normalize-space()='{label}']").click()
    top_level = "//div[@role='tabpanel'][not(ancestor::div[@role='tabpanel'])]"
    WebDriverWait(driver, 30).until(
        lambda d: any(p.is_displayed() and p.text for p in d.find_elements(By.XPATH, top_level)))
    return next(p for p in driver.find_elements(By.XPATH, top_level) if p.is_displayed())


def tab_is_off(panel) -> str | None:
    text = panel.text
    return text.split("Not available:", 1)[1].strip().split("\n")[0] if "Not available:" in text else None


def upload(panel, label: str, path: Path) -> None:
    """Put a file into the picture input labelled `label` (its innermost block)."""
    picture_input = "input[type=file][accept^='image']"
    blocks = panel.find_elements(
        By.XPATH, f".//div[contains(concat(' ', @class, ' '), ' block ')][.//*[normalize-space()='{label}']]")
    block = [b for b in blocks if b.find_elements(By.CSS_SELECTOR, picture_input)][-1]
    block.find_element(By.CSS_SELECTOR, picture_input).send_keys(str(path))


def click(panel, label: str) -> None:
    button = next(b for b in panel.find_elements(By.TAG_NAME, "button") if b.text.strip() == label and b.is_displayed())
    button.click()


def wait_for_text(driver, panel, text: str) -> None:
    try:
        WebDriverWait(driver, WAIT, poll_frequency=0.5).until(lambda d: text in panel.text)
    except TimeoutException:
        raise AssertionError(f"{text!r} never appeared; panel shows: {panel.text[:500]!r}; toasts: {toasts(driver)!r}")


def toasts(driver) -> str:
    return " | ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".toast-body"))


def screenshot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for close in driver.find_elements(By.CSS_SELECTOR, ".toast-close"):  # earlier tabs' messages
        try:
            close.click()
        except Exception:  # already gone
            pass
    time.sleep(1.0)  # let the result image finish painting
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def no_alert(driver) -> bool:
    try:
        driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_page_loads_with_all_tabs(browser) -> None:
    tabs = [e.text for e in browser.find_elements(By.XPATH, "//button[@role='tab']")]
    for label in ("Mask check", "Emotion", "Enroll & identify", "Verify", "About"):
        assert label in tabs
    panel = open_tab(browser, "About")
    assert "No liveness check" in panel.text and "Privacy" in panel.text
    screenshot(browser, "about")


def test_mask_tab_labels_an_uploaded_masked_face(browser) -> None:
    panel = open_tab(browser, "Mask check")
    if reason := tab_is_off(panel):
        pytest.skip(reason)
    upload(panel, "Picture", EXAMPLES / "astronaut_mask.jpg")
    click(panel, "Analyse")
    wait_for_text(browser, panel, " %")
    assert re.search(r"(?<!no )mask \d+ %", panel.text) and not re.search(r"no mask \d+ %", panel.text)
    screenshot(browser, "mask")


def test_emotion_tab_shows_the_probabilities(browser) -> None:
    panel = open_tab(browser, "Emotion")
    if reason := tab_is_off(panel):
        pytest.skip(reason)
    upload(panel, "Picture", EXAMPLES / "astronaut.jpg")
    click(panel, "Analyse")
    wait_for_text(browser, panel, "happy")
    assert "neutral" in panel.text  # the 7 bars are rendered
    screenshot(browser, "emotion")


def test_enroll_shows_a_script_name_as_text_and_identify_finds_the_person(browser) -> None:
    panel = open_tab(browser, "Enroll & identify")
    pair = next(p for p in lfw_pairs() if p.same)
    name_box = panel.find_element(By.CSS_SELECTOR, "textarea, input[type=text]")
    name_box.send_keys(SCRIPT_NAME)
    upload(panel, "Photo of this person (one face)", pair.first)
    click(panel, "Enroll")
    wait_for_text(browser, panel, SCRIPT_NAME)  # the gallery caption, rendered as text
    assert f"Enrolled {SCRIPT_NAME}" in toasts(browser)  # the toast too (toasts render HTML: the app escapes)
    assert no_alert(browser)
    upload(panel, "Picture to identify", pair.second)
    click(panel, "Analyse")
    wait_for_text(browser, panel, "similarity")
    try:
        WebDriverWait(browser, WAIT).until(lambda d: panel.text.count(SCRIPT_NAME) >= 2 or "thresholds" in toasts(d))
    except TimeoutException:
        raise AssertionError(f"identify gave no name: {panel.text[:600]!r}")
    screenshot(browser, "enroll_identify")
    if panel.text.count(SCRIPT_NAME) < 2:
        pytest.skip("the manifest has no verification thresholds yet, so identification is off")
    assert no_alert(browser)


def test_verify_tab_says_same_person_for_a_matched_pair(browser) -> None:
    panel = open_tab(browser, "Verify")
    if reason := tab_is_off(panel):
        pytest.skip(reason)
    pair = next(p for p in lfw_pairs() if p.same)
    upload(panel, "First photo", pair.first)
    upload(panel, "Second photo", pair.second)
    click(panel, "Verify")
    try:
        WebDriverWait(browser, WAIT).until(lambda d: "Same person" in panel.text or "thresholds" in toasts(d))
    except TimeoutException:
        raise AssertionError(f"no verdict: {panel.text[:600]!r}")
    screenshot(browser, "verify")
    if "Same person" not in panel.text:
        pytest.skip("the manifest has no verification thresholds yet, so verification is off")
    assert "Similarity" in panel.text
