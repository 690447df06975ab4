"""The web page in a real browser: headless Chromium (Debian's) driven by Selenium.

Starts ``translate serve`` on a free loopback port, uploads an image through the page's file
input and waits for the translated image to appear at the input's size. Skipped, with the
reason, when Selenium, Chromium or chromedriver is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

from conftest import make_translator, write_image_file  # noqa: E402
from test_serve import start_server  # noqa: E402

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)),
                shutil.which("chromium"))
CHROMEDRIVER = next((p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)),
                    shutil.which("chromedriver"))

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser (Debian: apt-get install chromium)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="no chromedriver (Debian: apt-get install chromium-driver)"),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(condition))


def test_page_translates_an_uploaded_image(tmp_path, browser):
    from selenium.webdriver.common.by import By

    folder = make_translator(tmp_path / "t")
    image = write_image_file(tmp_path / "input.png",
                             np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8))
    proc, url = start_server(folder)
    try:
        browser.get(url + "/")
        _wait(browser, "return document.getElementById('about').textContent.includes('pix2pix')")
        browser.find_element(By.ID, "file").send_keys(str(image))
        _wait(browser, "const o = document.getElementById('output'); return o.complete && o.naturalWidth > 0")
        size = browser.execute_script(
            "const o = document.getElementById('output'); return [o.naturalWidth, o.naturalHeight]")
        assert size == [70, 45]
        assert browser.find_element(By.ID, "download").get_attribute("download") == "input_translated.png"
        assert not browser.find_element(By.ID, "error").is_displayed()

        # A file that is no image: the server's reason appears in the page.
        junk = tmp_path / "notes.png"
        junk.write_bytes(b"this is not an image at all")
        browser.find_element(By.ID, "file").send_keys(str(junk))
        _wait(browser, "return !document.getElementById('error').hidden")
        assert "415" in browser.find_element(By.ID, "error").text
    finally:
        proc.terminate()
        proc.wait(30)
