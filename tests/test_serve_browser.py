"""The page in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium) against ``python -m predictor serve`` on a loopback port.

One server and one browser for the module. Where the browser is missing these tests skip with
the reason, except under ``CI_REQUIRE_BROWSER=1`` (``.ci/run`` sets it), where they fail.
Screenshots at a laptop's and a phone's width go to the tests' temporary folder.

Marked slow: starting Chromium and the server costs ~7 s of CPU and the module ~13 s in all
(15-20 s of wall time on the shared 2-core machine), too much for the default run's minute;
``python -m pytest -m slow`` (and ``.ci/run``) runs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from predictor import predict
from predictor.serve import ROUTE_CAVEAT

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
LAPTOP, PHONE = (1280, 900), (390, 844)
PATIENT = {
    k: v for k, v in json.loads((ROOT / "examples" / "patient.json").read_text()).items()
    if k != "patient_id"
}  # fmt: skip
SECRET = "SECRET-7.654"


def _missing_browser() -> str:
    """Why the browser tests cannot run here, or ``""``."""
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return ""


MISSING = _missing_browser()
if MISSING and os.environ.get("CI_REQUIRE_BROWSER") == "1":
    pytest.fail(f"CI_REQUIRE_BROWSER=1 but {MISSING}", pytrace=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"no browser: {MISSING}"),
]


class Served:
    """The server and the browser of this module."""

    def __init__(self, url: str, log: Path, driver: Any) -> None:
        self.url, self.log, self.driver = url, log, driver


def _chromium(profile: Path) -> Any:
    """Headless Chromium with a fresh profile: the system's browser and driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*HEADLESS_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)  # each click waits for its page (_click): absence is instant
    return driver


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``python -m predictor serve --port 0`` and the browser, started side by side."""
    folder = tmp_path_factory.mktemp("served")
    log = folder / "server.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "predictor", "serve", "--port", "0"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    driver = None
    try:
        driver = _chromium(folder / "profile")
        deadline = time.monotonic() + 30
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())):
            assert process.poll() is None, f"the server stopped: {log.read_text()}"
            assert time.monotonic() < deadline, f"the server did not start: {log.read_text()}"
            time.sleep(0.05)
        yield Served(f"http://127.0.0.1:{found.group(1)}", log, driver)
    finally:
        if driver is not None:
            driver.quit()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def page(served: Served) -> Any:
    """The empty form, at a laptop's width."""
    served.driver.set_window_size(*LAPTOP)
    served.driver.get(served.url + "/")
    return served.driver


def _fill(driver: Any, record: dict[str, Any]) -> None:
    """Set the form's inputs at once (a script: typing 14 fields costs seconds); the tests of
    messages and what-if type into their inputs."""
    driver.execute_script(
        "for (const [name, value] of Object.entries(arguments[0]))"
        " document.getElementsByName(name)[0].value = value;",
        {name: str(value) for name, value in record.items()},
    )


def _type(driver: Any, record: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in record.items():
        element = driver.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(str(value))
        else:
            element.clear()
            element.send_keys(str(value))


def _click(driver: Any, element_id: str) -> None:
    from selenium.webdriver.common.by import By

    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, element_id).click()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait for the new page, not the old one's elements
        try:
            old.get_attribute("lang")
        except Exception:  # StaleElementReferenceException: the page was replaced
            return
        time.sleep(0.02)
    raise AssertionError("the page did not reload")


def _shown_probability(driver: Any, element_id: str = "probability") -> tuple[float, str]:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    return float(element.get_attribute("data-probability")), element.text


def _screenshots(
    driver: Any, folder: Path, name: str, sizes: tuple[str, ...] = ("laptop", "phone")
) -> list[Path]:
    """The whole page at a laptop's and (or) a phone's width; the page must fit the width."""
    paths = []
    for label in sizes:
        width, height = {"laptop": LAPTOP, "phone": PHONE}[label]
        driver.set_window_size(width, height)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, full + 120)
        path = folder / f"{name}-{label}.png"
        assert driver.save_screenshot(str(path))
        paths.append(path)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is wider than a {width} px window by {overflow} px"
    driver.set_window_size(*LAPTOP)
    return paths


def test_browser_submit_shows_the_probability_of_predict_dict(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _fill(page, PATIENT)
    _click(page, "submit")
    expected = predict(PATIENT)
    shown, text = _shown_probability(page)
    assert shown == expected.probability
    assert text == f"{100 * expected.probability:.1f}%"
    interval = page.find_element(By.ID, "interval").text
    assert interval == (
        f"90% interval {100 * expected.interval[0]:.1f}% to {100 * expected.interval[1]:.1f}%"
    )
    reasons = [li.text for li in page.find_elements(By.CSS_SELECTOR, "#reasons li")]
    assert reasons == list(expected.reasons)
    bars = page.find_elements(By.CSS_SELECTOR, "#chart rect[data-field]")
    assert {b.get_attribute("data-field"): float(b.get_attribute("data-contribution"))
            for b in bars} == pytest.approx(dict(expected.contributions), abs=1e-12)  # fmt: skip
    assert "not a clinical tool" in page.find_element(By.ID, "disclaimer").text
    assert page.find_element(By.NAME, "crp_mg_l").get_attribute("value") == "0.9"  # kept
    for path in _screenshots(page, tmp_path, "result"):
        assert path.stat().st_size > 10_000


def test_browser_whatif_shows_the_new_probability_next_to_the_old(
    page: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _fill(page, PATIENT)
    _click(page, "submit")
    Select(page.find_element(By.ID, "whatif-field")).select_by_value("crp_mg_l")
    page.find_element(By.ID, "whatif-value").send_keys("8")
    _click(page, "whatif-submit")
    before, _ = _shown_probability(page)
    after, text = _shown_probability(page, "whatif-probability")
    assert before == predict(PATIENT).probability
    assert after == predict({**PATIENT, "crp_mg_l": 8}).probability
    assert text == f"{100 * after:.1f}%"
    assert page.find_elements(By.ID, "route-caveat") == []

    Select(page.find_element(By.ID, "whatif-field")).select_by_value("route")
    value = page.find_element(By.ID, "whatif-value")
    value.clear()
    value.send_keys("intranasal_esketamine")
    _click(page, "whatif-submit")
    after, _ = _shown_probability(page, "whatif-probability")
    assert after == predict({**PATIENT, "route": "intranasal_esketamine"}).probability
    assert page.find_element(By.ID, "route-caveat").text.endswith(ROUTE_CAVEAT)
    _screenshots(page, tmp_path, "whatif", ("laptop",))


def test_browser_empty_fields_mean_not_measured(page: Any) -> None:
    from selenium.webdriver.common.by import By

    _fill(page, {"crp_mg_l": "2.5", "route": "iv_ketamine"})
    _click(page, "submit")
    shown, _ = _shown_probability(page)
    assert shown == predict({"crp_mg_l": 2.5, "route": "iv_ketamine"}).probability
    warnings = page.find_element(By.ID, "warnings").text
    assert "BDNF not measured" in warnings
    assert page.find_element(By.NAME, "bdnf_ng_ml").get_attribute("value") == ""


def test_browser_unit_choice_converts_as_the_schema_does(page: Any) -> None:
    _fill(page, {"crp_mg_l": "0.09", "crp_mg_l__unit": "mg/dL", "bdnf_ng_ml": "27000",
                 "bdnf_ng_ml__unit": "pg/mL"})  # fmt: skip
    _click(page, "submit")
    shown, _ = _shown_probability(page)
    assert shown == predict({"crp_mg_dl": "0.09", "bdnf_pg_ml": "27000"}).probability


def test_browser_bad_value_gives_a_message_next_to_the_field(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _type(page, {"crp_mg_l": "0,9 mg", "age_years": "150", "bmi_kg_m2": "31"})
    _click(page, "submit")
    assert page.find_elements(By.ID, "probability") == []
    field = page.find_element(By.ID, "field-crp_mg_l")
    message = field.find_element(By.CLASS_NAME, "error")
    assert message.is_displayed() and "is not a number" in message.text
    box = page.find_element(By.NAME, "crp_mg_l")
    assert box.get_attribute("aria-invalid") == "true"
    assert box.get_attribute("value") == "0,9 mg"
    assert message.location["y"] - box.location["y"] < 80  # right under its input
    age = page.find_element(By.ID, "field-age_years").find_element(By.CLASS_NAME, "error")
    assert "outside the plausible range 18 to 100 years" in age.text
    assert page.find_elements(By.CSS_SELECTOR, "#field-bmi_kg_m2 .error") == []
    assert "2 fields need checking" in page.find_element(By.ID, "form-errors").text
    _screenshots(page, tmp_path, "errors", ("phone",))


def test_browser_server_log_has_no_patient_values(served: Served) -> None:
    url, log, driver = served.url, served.log, served.driver
    driver.set_window_size(*LAPTOP)
    driver.get(url + "/")
    _type(driver, {"crp_mg_l": SECRET.split("-")[1]})
    _click(driver, "submit")
    driver.get(url + f"/?patient={SECRET}")
    time.sleep(0.2)
    text = log.read_text()
    assert "predictor.serve.access: POST / 200" in text
    assert SECRET not in text and SECRET.split("-")[1] not in text
    assert "?" not in text.split("Ctrl-C stops it.")[1]  # no query string


def test_browser_tests_have_the_system_browser_or_say_why_not() -> None:
    assert shutil.which("chromium") or MISSING
