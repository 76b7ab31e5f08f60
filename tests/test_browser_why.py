"""Why? (issue 18) in a real browser: each tab's "Why?" view, and the live emotion timeline filling while
Chromium's fake webcam plays the astronaut. Saves a screenshot of each view (docs/screenshots with
FACELAB_UPDATE_SCREENSHOTS=1, as tests/test_browser.py does)."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from benchmarks.app_server import EXAMPLES
from shared_data import MISC_DIR, distinct_people
from tests.test_browser import (SHOTS, WAIT, browser, browser_session, click, has_button,  # noqa: F401 (fixtures)
                                open_working_tab, start_recording, toasts, type_name, upload)

pytestmark = [pytest.mark.shared_data, pytest.mark.browser, pytest.mark.slow]
EXPLAIN = "Why? Show what the answer rests on"

OPEN_WHY = """
const box = [...arguments[0].querySelectorAll('.facelab-why')][0];
if (!box) { return false; }
const inner = [...box.querySelectorAll('button')].find(b => b.innerText.trim() === arguments[1]);
if (!inner || inner.offsetParent === null) { box.querySelector('button').click(); }
return true;
"""


def open_why(panel):
    """Open the tab's "Why?" accordion (once) and return it."""
    assert panel.parent.execute_script(OPEN_WHY, panel, EXPLAIN), "no Why? accordion"
    WebDriverWait(panel.parent, 10).until(lambda d: has_button(panel, EXPLAIN))
    return panel.find_elements(By.CSS_SELECTOR, ".facelab-why")[0]


def pictures_shown(box) -> int:
    """How many result pictures the Why? view shows."""
    return sum(bool(i.get_attribute("src")) for i in box.find_elements(By.TAG_NAME, "img"))


def explain_and_wait(driver, panel, labels: tuple[str, ...]):
    box = open_why(panel)
    click(panel, EXPLAIN)
    try:
        WebDriverWait(driver, WAIT, poll_frequency=0.5).until(lambda d: pictures_shown(box) >= len(labels))
    except Exception:
        raise AssertionError(f"no explanation shown; panel: {panel.text[:400]!r}; toasts: {toasts(driver)!r}")
    return box


def shot(driver, element, name: str) -> None:
    """A screenshot of just this element (the Why? view), scrolled into view."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    time.sleep(1.0)  # let the pictures finish painting
    element.screenshot(str(SHOTS / f"{name}.png"))


def test_mask_why_shows_the_map_on_the_picture_and_on_each_face(browser) -> None:
    panel = open_working_tab(browser, "Mask check")
    upload(panel, "Picture", EXAMPLES / "astronaut_mask.jpg")
    box = explain_and_wait(browser, panel, ("Where the evidence lies", "Each face"))
    shot(browser, box, "why_mask")


def test_a_why_that_fails_says_so_beside_its_button(browser) -> None:
    """A face-free picture's Why? fails: the reason stays in the Why? view, beside the button the visitor just
    pressed (it went to the tab's line a screen above, and the toast closed after 10 s)."""
    panel = open_working_tab(browser, "Mask check")
    upload(panel, "Picture", MISC_DIR / "no_face_rocket_launch_outdoor.jpg")
    box = open_why(panel)
    click(panel, EXPLAIN)
    WebDriverWait(browser, WAIT, poll_frequency=0.5).until(lambda d: "Not done: No face found" in box.text)
    assert pictures_shown(box) == 0


# How many of the buttons of the "Why?" pictures (fullscreen, download) lie over a picture.
BUTTONS_OVER_PICTURES = """
return [...arguments[0].querySelectorAll('img')].filter(i => i.naturalWidth).flatMap(img => {
  const r = img.getBoundingClientRect();
  return [...img.closest('.block').querySelectorAll('button')].filter(b => !b.contains(img)).filter(b => {
    const q = b.getBoundingClientRect();
    return q.width > 0 && q.left < r.right && q.right > r.left && q.top < r.bottom && q.bottom > r.top; });
}).length;
"""


def test_why_maps_of_a_wide_picture_keep_their_colour_bar_clear(browser) -> None:
    """A wide picture's map fills the width, its colour bar at the right edge: the picture's buttons covered
    the bar's "more evidence"; they sit above the picture, and the map is still shown."""
    panel = open_working_tab(browser, "Mask check")
    upload(panel, "Picture", MISC_DIR / "multiple_faces_group_photo.jpg")
    box = explain_and_wait(browser, panel, ("Where the evidence lies", "Each face"))
    assert browser.execute_script(BUTTONS_OVER_PICTURES, box) == 0
    assert box.find_elements(By.XPATH, ".//button[@aria-label='Fullscreen' or @title='Fullscreen']")  # not taken away
    shot(browser, box, "why_mask_group")


def test_emotion_why_and_the_live_timeline_fills_while_the_stream_runs(browser) -> None:
    panel = open_working_tab(browser, "Emotion")
    upload(panel, "Picture", EXAMPLES / "astronaut.jpg")
    box = explain_and_wait(browser, panel, ("Where the evidence lies", "Each face"))
    shot(browser, box, "why_emotion")
    assert not [p for p in panel.find_elements(By.ID, "emotion-timeline") if p.is_displayed()]  # until it is asked for
    # the box is in the live sub-tab only: the upload sub-tab has no stream to fill it
    assert not [b for b in panel.find_elements(By.XPATH, ".//label[contains(., 'Plot the live webcam')]") if b.is_displayed()]
    next(b for b in panel.find_elements(By.XPATH, ".//button[@role='tab'][normalize-space()='Live webcam']")
         if b.is_displayed()).click()
    WebDriverWait(browser, 10).until(lambda d: [b for b in panel.find_elements(
        By.XPATH, ".//label[contains(., 'Plot the live webcam')]//input") if b.is_displayed()])
    panel.find_element(By.XPATH, ".//label[contains(., 'Plot the live webcam')]//input").click()
    WebDriverWait(browser, 10).until(lambda d: panel.find_element(By.ID, "emotion-timeline").is_displayed())
    plot = panel.find_element(By.ID, "emotion-timeline")
    empty = plot.text
    start_recording(panel)
    try:  # the plot's legend appears once it holds points (the empty plot has axes only)
        WebDriverWait(browser, 60, poll_frequency=0.5).until(lambda d: "happy" in plot.text and plot.text != empty)
    except Exception:
        raise AssertionError(f"the timeline never filled: {plot.text[:300]!r}; toasts: {toasts(browser)!r}")
    time.sleep(4)  # a few seconds of line
    # the plot and the live result on one laptop screen (the plot was at the foot of "Why?", 1,650 px down)
    top, height = browser.execute_script(
        "const p = arguments[0].getBoundingClientRect(); return [p.top + window.scrollY, p.height]", plot)
    browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", plot)
    shot(browser, panel, "live_emotion_timeline")
    click(panel, "Stop")
    print(f"\ntimeline plot: {top:.0f} px down the page, {height:.0f} px tall")
    assert height > 100 and top < 1000, (top, height)


def test_identify_why_charts_the_enrolled_people_with_the_thresholds(browser) -> None:
    panel = open_working_tab(browser, "Enroll & identify")
    people = distinct_people(3)
    for name, first, _ in people:
        type_name(panel, name)
        upload(panel, "Photo (one face)", first)
        click(panel, "Enroll")
        WebDriverWait(browser, WAIT).until(lambda d, name=name: f"Enrolled {name}" in toasts(d))
    upload(panel, "Picture to identify", people[1][2])
    box = explain_and_wait(browser, panel, ("Similarity to each enrolled person (top 10) and the thresholds",))
    shot(browser, box, "why_identify")


def test_verify_why_shows_both_maps_and_the_barcodes(browser) -> None:
    panel = open_working_tab(browser, "Verify")
    upload(panel, "First photo", EXAMPLES / "astronaut.jpg")
    upload(panel, "Second photo", EXAMPLES / "astronaut_mirror.jpg")
    box = explain_and_wait(browser, panel, ("What makes them similar", "The two embeddings and their product"))
    shot(browser, box, "why_verify")
