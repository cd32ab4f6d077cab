"""Regenerate ``docs/serve.png``, the README's picture of the page, in headless Chromium.

Starts ``python -m predictor serve`` on a free loopback port, fills the form with the example
patient (``examples/patient.json``) without polysomnography (so a "not measured" warning
shows), asks what if the route were intranasal esketamine, and saves the top of the page (the
whole page with ``--full``). Needs the ``test`` extra (Selenium) and Debian's ``chromium`` and
``chromium-driver`` (``.ci/run`` installs them)::

    python docs/make_screenshot.py                     # docs/serve.png, 1280 px wide
    python docs/make_screenshot.py --width 390 --full --out phone.png
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


@contextmanager
def server(*args: str) -> Iterator[str]:
    """``python -m predictor serve`` on a free loopback port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "predictor", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not found:
            raise SystemExit(f"the server did not start: {line}{process.stderr.read()}")
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def browser(width: int, height: int = 900) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (the system's, no download) with a fresh profile."""
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            *HEADLESS_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def fill(driver: webdriver.Chrome, record: dict[str, object]) -> None:
    """Type a record into the form (text boxes and selects, by field name)."""
    for name, value in record.items():
        found = driver.find_elements(By.NAME, name)
        if not found:
            continue
        element = found[0]
        if element.tag_name == "select":
            Select(element).select_by_value(str(value))
        else:
            element.clear()
            element.send_keys(str(value))


def full_page_screenshot(driver: webdriver.Chrome, out: Path, width: int) -> None:
    """The whole page, not just the window: the window is resized to the page's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 120)
    time.sleep(0.2)
    driver.save_screenshot(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1720, help="window height without --full")
    parser.add_argument("--full", action="store_true", help="the whole page, however tall")
    args = parser.parse_args()
    patient = json.loads((ROOT / "examples" / "patient.json").read_text())
    for name in ("patient_id", "delta_sleep_ratio", "slow_wave_sleep_pct"):
        del patient[name]
    with server() as url, browser(args.width, args.height) as driver:
        driver.get(url + "/")
        fill(driver, patient)
        driver.find_element(By.ID, "submit").click()
        Select(driver.find_element(By.ID, "whatif-field")).select_by_value("route")
        driver.find_element(By.ID, "whatif-value").send_keys("intranasal_esketamine")
        driver.find_element(By.ID, "whatif-submit").click()
        driver.find_element(By.ID, "whatif-result")
        if args.full:
            full_page_screenshot(driver, args.out, args.width)
        else:
            driver.save_screenshot(str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
