"""The page in a real browser: Debian's chromium, headless, driven by Selenium through
chromedriver, against `paperscope serve` started as a user starts it. Screenshots of each page
go to a folder the test prints ($PAPERSCOPE_SCREENSHOTS, else a temporary one)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import REPO
from .serve_helpers import HOSTILE_ID, HOSTILE_TITLE, library_with_corpus

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return (f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                "apt-get install chromium chromium-driver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium: pip install -e '.[test]'"
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as patch:  # a corpus "recent" in a cache of its own
        patch.setenv("PAPERSCOPE_CACHE", str(folder / "cache"))
        library = library_with_corpus(folder / "library", None)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
           "PAPERSCOPE_CACHE": str(folder / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "paperscope", "--library", str(library), "serve",
                                "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True, env=env)
    line = process.stderr.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
    if not match:
        process.kill()
        pytest.fail(f"paperscope serve did not start: {line}{process.stderr.read()}")
    yield match.group(1)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="paperscope-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("PAPERSCOPE_SCREENSHOTS") or tempfile.mkdtemp(prefix="paperscope-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def _errors(driver) -> list:
    try:
        return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    except Exception:
        return []


def test_search_as_you_type_open_lora_see_qlora_related(server, browser, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    box = wait.until(ready.presence_of_element_located((By.ID, "q")))
    box.send_keys("parameter-efficient finetuning")  # typed; no Enter: results come as you type

    def top_three(driver):
        ids = [li.get_attribute("data-id") for li in driver.find_elements(By.CSS_SELECTOR, "#results li.hit")]
        return ids[:3] if {"lora", "qlora"} <= set(ids[:3]) else False

    top = wait.until(top_three)
    assert browser.find_elements(By.CSS_SELECTOR, "#results mark"), "query words are highlighted"
    assert "q=parameter-efficient" in browser.current_url
    browser.save_screenshot(str(shots / "1-search.png"))
    print(f"top three: {top}")

    browser.find_element(By.CSS_SELECTOR, '#results li.hit[data-id="lora"] a.title').click()
    wait.until(ready.url_contains("/entries/lora"))
    title = wait.until(ready.presence_of_element_located((By.ID, "title"))).text
    assert title.startswith("LoRA")
    related = [li.get_attribute("data-id") for li in browser.find_elements(By.CSS_SELECTOR, "#related li.hit")]
    assert "qlora" in related, related
    assert "@misc{" in browser.find_element(By.ID, "bibtex").text
    browser.save_screenshot(str(shots / "2-entry-lora.png"))
    assert not _errors(browser)

    browser.get(server + "/map?q=parameter-efficient+finetuning")
    marked = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map a.point.top"))
    assert {"lora", "qlora"} <= {a.get_attribute("data-id") for a in marked}
    browser.save_screenshot(str(shots / "6-map.png"))


def test_the_hostile_title_shows_as_text(server, browser, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server + f"/entries/{HOSTILE_ID}")
    assert wait.until(ready.presence_of_element_located((By.ID, "title"))).text == HOSTILE_TITLE
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    browser.save_screenshot(str(shots / "3-hostile-entry.png"))

    browser.get(server + "/")
    box = wait.until(ready.presence_of_element_located((By.ID, "q")))
    box.send_keys("evaluating chatbots")  # the hostile entry's summary, through the JS renderer
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#results li.hit[data-id="{HOSTILE_ID}"]'))
    hit = browser.find_element(By.CSS_SELECTOR, f'#results li.hit[data-id="{HOSTILE_ID}"]')
    assert hit.find_element(By.CSS_SELECTOR, "a.title").text == HOSTILE_TITLE
    assert not browser.find_elements(By.CSS_SELECTOR, "#results img, #results script")
    assert browser.execute_script("return typeof window.__hostile") == "undefined"
    browser.save_screenshot(str(shots / "4-hostile-search.png"))
    # an alert would have made every call above raise UnexpectedAlertPresentException
    browser.get(server + "/browse")
    assert HOSTILE_TITLE in browser.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(str(shots / "5-browse.png"))


def test_the_api_docs_render_offline_and_the_map_legend_is_in_view(server, browser, shots):
    """/docs shows the API's operations with no network beyond this server (Swagger UI came
    from a CDN: blank offline); the map's legend is in the first screen and no number drawn
    on the map covers a point other than its own (issue 21)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/docs")
    operations = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    assert "/api/v1/search" in {op.text.replace("\u200b", "") for op in operations}
    assert not [e for e in _errors(browser) if "Content Security Policy" in e["message"]]
    browser.save_screenshot(str(shots / "7-docs.png"))

    browser.get(server + "/map?q=parameter-efficient+finetuning")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map a.point.top"))
    legend = browser.execute_script(
        "return document.querySelector('.legend').getBoundingClientRect().bottom <= window.innerHeight")
    assert legend
    overlaps = browser.execute_script("""
        const boxes = Array.from(document.querySelectorAll('#map a.point')).map(function (a) {
          const circle = a.querySelector('circle').getBoundingClientRect();
          const text = a.querySelector('text');
          return {circle: circle, text: text ? text.getBoundingClientRect() : null};
        });
        const inside = function (r, c) {
          return r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom;
        };
        return boxes.filter(function (b) { return b.text && !inside(b.text, b.circle); }).length;
    """)
    assert overlaps == 0
    browser.save_screenshot(str(shots / "8-map.png"))


def test_the_corpus_picker_searches_a_corpus_and_the_new_page_lists_its_papers(server, browser, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    picker = Select(wait.until(ready.presence_of_element_located((By.ID, "corpus"))))
    assert [o.get_attribute("value") for o in picker.options] == ["", "recent"]
    picker.select_by_value("recent")
    assert not browser.find_element(By.ID, "section").is_enabled()  # corpus papers have no sections
    browser.find_element(By.ID, "q").send_keys("quantized adapters finetuning")

    def corpus_hits(driver):
        ids = [li.get_attribute("data-id") for li in driver.find_elements(By.CSS_SELECTOR, "#results li.hit")]
        return ids if "2502.00002" in ids else False

    wait.until(corpus_hits)
    assert "corpus=recent" in browser.current_url
    link = browser.find_element(By.CSS_SELECTOR, '#results li.hit[data-id="2502.00002"] a.title')
    assert link.get_attribute("href") == "https://arxiv.org/abs/2502.00002"  # no entry page: arXiv's
    browser.save_screenshot(str(shots / "9-corpus-search.png"))

    picker.select_by_value("")  # back to the reading list: its entries again
    assert browser.find_element(By.ID, "section").is_enabled()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#results li.hit[data-id="qlora"]'))

    browser.find_element(By.LINK_TEXT, "New").click()
    papers = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#papers li.hit"))
    assert papers and papers[0].find_elements(By.CSS_SELECTOR, "ul.near a")  # the entries it is near
    browser.save_screenshot(str(shots / "10-new-near-my-list.png"))
    assert not _errors(browser)
