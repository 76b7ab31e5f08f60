"""The app as a visitor sees it on a laptop: headless Debian Chromium at 1366x900 on `python app.py`.

    python -m benchmarks.ui            # writes benchmarks/results/ui.json

`actions`: per tab and action, the time from the click to its result on the page (median of RUNS) and
whether the result and its button are both in the first viewport (at 1366x900, scrolled to the top).
`live`: per live tab, distinct result frames per second that reach the page during LIVE_SECONDS of
Chromium's fake webcam (the astronaut sliding to and fro; Gradio sends at most one frame every 100 ms).
The tests (tests/test_browser.py) use the same browser helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import machine
from benchmarks.app_server import EXAMPLES, ROOT, launch_app, stop_app
from benchmarks.harness import write_results

RESULTS = ROOT / "benchmarks" / "results" / "ui.json"
LAPTOP = (1366, 900)
PHONE = (390, 844)
RUNS = 5
LIVE_SECONDS = 15
WAIT = 120  # seconds for one result on a busy CPU


def fake_webcam_video(path: Path, frames: int = 24) -> Path:
    """A Y4M clip (what Chromium's fake webcam plays) of the astronaut sliding to and fro on a 640x480 canvas."""
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").resize((320, 320)), np.float32)
    with path.open("wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for i in range(frames):
            canvas = np.full((480, 640, 3), 90, np.float32)
            x = 40 + int(120 * abs(np.sin(i / 8)))
            canvas[80:400, x : x + 320] = face
            r, g, b = canvas[..., 0], canvas[..., 1], canvas[..., 2]
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
            v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
            half = lambda c: c.reshape(240, 2, 320, 2).mean((1, 3))  # noqa: E731
            out.write(b"FRAME\n")
            for plane in (y, half(u), half(v)):
                out.write(np.clip(plane, 0, 255).astype(np.uint8).tobytes())
    return path


def start_chromium(video: Path, size: tuple[int, int] = LAPTOP):
    """Headless Debian Chromium (selenium) with a fake webcam playing `video`, its viewport exactly `size`."""
    from selenium import webdriver

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (binary and driver_path):
        raise RuntimeError("Debian chromium and chromium-driver are not installed (run tests/install_chromium.sh)")
    os.environ.setdefault("SE_AVOID_STATS", "true")  # selenium-manager: no network calls
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--window-size={size[0]},{size[1]}", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    set_viewport(driver, size)
    return driver


def set_viewport(driver, size: tuple[int, int]) -> None:
    """The page's viewport exactly `size` CSS pixels (a phone's is a mobile one), whatever the window is."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1],
                                                                  "deviceScaleFactor": 1, "mobile": size[0] < 600})


# In the page: the top-level tab panel shown now, a visible button by its text, the blocks by their label.
PAGE_HELPERS = """
window.facelab = {
  panel() { return [...document.querySelectorAll("div[role=tabpanel]")]
              .find(p => !p.parentElement.closest("div[role=tabpanel]") && p.offsetParent !== null); },
  button(label, root) { return [...(root || facelab.panel()).querySelectorAll("button")]
              .find(b => b.innerText.trim() === label && b.offsetParent !== null); },
  result(kind) {  // the element that shows an action's result
    const panel = facelab.panel();
    if (kind === "gallery") return panel.querySelector("#enrolled");
    if (kind === "verdict") return panel.querySelector("#verdict")
      || [...panel.querySelectorAll(".block")].find(b => b.offsetParent !== null && b.querySelector(".prose h2"));
    return [...panel.querySelectorAll(".facelab-result")].find(e => e.offsetParent !== null)
      || [...panel.querySelectorAll(".block")].find(b => b.offsetParent !== null  // a page without the class
            && [...b.querySelectorAll("[data-testid=block-label]")].some(l => l.innerText.trim().startsWith("Result")));
  },
  shown(kind) {  // what the result shows now: an image's address, the verdict's text, the gallery's names
    const e = facelab.result(kind);
    if (!e) return "";
    if (kind === "gallery") return [...e.querySelectorAll(".caption-label")].map(c => c.innerText).join("|");
    if (kind === "verdict") { const prose = e.querySelector(".prose"); return prose ? prose.innerText.trim() : ""; }
    const img = e.querySelector("img");
    return img && img.complete && img.naturalWidth ? img.src : "";
  },
  inView(e) { const r = e.getBoundingClientRect();
    return r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; },
};
"""

CLICK_AND_TIME = """
const [label, kind, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const before = facelab.shown(kind), started = performance.now();
let cleared = !before;  // the click first empties the outputs: the same verdict again is a new result
facelab.button(label).click();
(function poll() {
  const now = facelab.shown(kind);
  if (!now) cleared = true;
  if (now && (now !== before || cleared)) { done(performance.now() - started); return; }
  if (performance.now() - started > arguments_wait) { done(-1); return; }
  requestAnimationFrame(poll);
})();
"""


def helpers(driver) -> None:
    if not driver.execute_script("return Boolean(window.facelab)"):
        driver.execute_script(PAGE_HELPERS)


def open_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.XPATH, f"//button[@role='tab'][normalize-space()='{label}']").click()
    helpers(driver)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return Boolean(facelab.panel())"))


def in_first_viewport(driver, button: str, kind: str) -> bool:
    """Whether the action's button and its result are both wholly visible with the page scrolled to the top."""
    helpers(driver)
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    return driver.execute_script(
        "const b = facelab.button(arguments[0]), r = facelab.result(arguments[1]);"
        "return Boolean(b && r && facelab.inView(b) && facelab.inView(r));", button, kind)


def put_file(driver, label: str, path: Path) -> None:
    """Put a file into the visible picture input labelled `label`, and wait until the page shows it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    block = driver.execute_script(
        "return [...facelab.panel().querySelectorAll('.block')].filter(b => b.offsetParent !== null"
        " && b.querySelector(\"input[type=file][accept^='image']\") && [...b.querySelectorAll('label')]"
        ".some(l => l.innerText.trim() === arguments[0])).pop()", label)
    block.find_element(By.CSS_SELECTOR, "input[type=file][accept^='image']").send_keys(str(path))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "const img = arguments[0].querySelector('img'); return Boolean(img && img.complete && img.naturalWidth)", block))


def type_text(driver, label: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = driver.execute_script(
        "return [...facelab.panel().querySelectorAll('label')].find(l => l.innerText.trim().startsWith(arguments[0]))"
        ".closest('.block').querySelector('textarea, input[type=text]')", label)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def click_and_time(driver, button: str, kind: str) -> float:
    """Milliseconds from the click on `button` to a new result of `kind` on the page (-1: none within WAIT)."""
    helpers(driver)
    driver.set_script_timeout(WAIT + 10)
    return driver.execute_async_script(CLICK_AND_TIME.replace("arguments_wait", str(WAIT * 1000)), button, kind)


def wait_until_loaded(driver) -> None:
    """The models load in the background; the status line says so until they are ready."""
    from selenium.webdriver.support.ui import WebDriverWait

    # The tabs first: before Gradio renders the page, its body has no "Loading models" to wait for either.
    WebDriverWait(driver, 180).until(lambda d: d.find_elements("xpath", "//button[@role='tab']")
                                     and "Loading models" not in d.find_element("tag name", "body").text)
    if "unavailable" in driver.find_element("tag name", "body").text:  # a tab is off: nothing to measure there
        raise RuntimeError("a model did not load; see the app's log (FACELAB_WEIGHTS_DIR?)")


def measure_actions(driver, runs: int = RUNS) -> list[dict]:
    from shared_data import lfw_pairs

    people = []  # different people to enroll, one photo each (a face already enrolled would be refused)
    for pair in lfw_pairs():
        if not pair.same and pair.first.parent.name not in {p.parent.name for p in people}:
            people.append(pair.first)
        if len(people) == runs:
            break
    plans = [  # tab, action (button), result kind, preparation before each click
        ("Mask check", "Analyse", "image", lambda i: put_file(driver, "Picture", EXAMPLES / "astronaut_mask.jpg")),
        ("Emotion", "Analyse", "image", lambda i: put_file(driver, "Picture", EXAMPLES / "astronaut.jpg")),
        ("Enroll & identify", "Enroll", "gallery",
         lambda i: (type_text(driver, "Name", f"Person {i + 1}"), put_file(driver, "Photo (one face)", people[i]))),
        ("Enroll & identify", "Analyse", "image", lambda i: put_file(driver, "Picture to identify", people[i % len(people)])),
        ("Verify", "Verify", "verdict", lambda i: (put_file(driver, "First photo", EXAMPLES / "astronaut.jpg"),
                                                    put_file(driver, "Second photo", EXAMPLES / "astronaut_mirror.jpg"))),
    ]
    rows = []
    for tab, action, kind, prepare in plans:
        open_tab(driver, tab)
        times = []
        for i in range(runs):
            prepare(i)
            times.append(click_and_time(driver, action, kind))
        visible = in_first_viewport(driver, action, kind)
        ok = [t for t in times if t >= 0]
        rows.append({"tab": tab, "action": action, "ms_median": round(statistics.median(ok)) if ok else None,
                     "runs_ms": [round(t) for t in times], "result_in_first_viewport": visible})
        print(f"{tab} / {action}: median {rows[-1]['ms_median']} ms {rows[-1]['runs_ms']}, "
              f"result and button in the first viewport: {visible}", flush=True)
    return rows


COUNT_FRAMES = """
const [seconds, done] = [arguments[0], arguments[arguments.length - 1]];
const seen = new Set(), started = performance.now();
(function poll() {
  const shown = facelab.shown("image");
  if (shown) seen.add(shown);
  if (performance.now() - started >= seconds * 1000) { done(seen.size); return; }
  requestAnimationFrame(poll);
})();
"""


def measure_live(driver, seconds: int = LIVE_SECONDS) -> list[dict]:
    from selenium.webdriver.support.ui import WebDriverWait

    rows = []
    for tab in ("Mask check", "Emotion", "Enroll & identify"):
        open_tab(driver, tab)
        driver.execute_script("facelab.button('Live webcam').click()")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return Boolean(facelab.button('Click to Access Webcam') || facelab.button('Record'))"))
        driver.execute_script("const b = facelab.button('Click to Access Webcam'); if (b) b.click();")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return Boolean(facelab.button('Record'))"))
        driver.execute_script("facelab.button('Record').click()")
        # the first frames: the stream is set up and the result picture shows
        WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return Boolean(facelab.shown('image'))"))
        driver.set_script_timeout(seconds + 30)
        frames = driver.execute_async_script(COUNT_FRAMES, seconds)
        driver.execute_script("const b = facelab.button('Stop'); if (b) b.click();")
        driver.execute_script("facelab.button('Upload or snapshot').click()")
        rows.append({"tab": tab, "result_fps": round(frames / seconds, 1), "frames": frames, "seconds": seconds})
        print(f"{tab} live: {frames} distinct result frames in {seconds} s = {rows[-1]['result_fps']} frames/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--live-seconds", type=int, default=LIVE_SECONDS)
    args = parser.parse_args()
    from shared_data import SHARED_WEIGHTS_DIR

    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))  # as the tests do; else the Hub
    folder = Path(tempfile.mkdtemp(prefix="facelab-ui-"))
    video = fake_webcam_video(folder / "webcam.y4m")
    process, url = launch_app(folder / "app.log")
    driver = start_chromium(video)
    try:
        driver.get(url)
        helpers(driver)
        wait_until_loaded(driver)
        load_before = os.getloadavg()[0]  # the machine is shared: how busy it was around the run
        results = {"viewport": f"{LAPTOP[0]}x{LAPTOP[1]}", "runs": args.runs, "cores": os.cpu_count(),
                   "torch_threads": os.environ.get("FACELAB_THREADS", "1"), "machine": machine.description(),
                   "browser": driver.capabilities.get("browserVersion"),
                   "actions": measure_actions(driver, args.runs), "live": measure_live(driver, args.live_seconds)}
        results["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    finally:
        driver.quit()
        stop_app(process)
    print(json.dumps(results, indent=2))
    write_results(RESULTS, results)


if __name__ == "__main__":
    main()
