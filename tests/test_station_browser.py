"""The review station in a real browser (headless Chromium), keyed by keyboard alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from collections.abc import Iterator

import pytest

from digits.reviews import reviewed_csv
from tests.conftest import PASSWORD, digits_command, wait_until

pytestmark = pytest.mark.processes

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

HOSTILE_NAME = "<script>window.pwned=1</script>-4.png"
"""A source name full of HTML: it is shown as text, and nothing in it runs."""


@pytest.fixture
def browser() -> Iterator[object]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("no headless Chromium here: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def test_a_reviewer_keys_a_queue_by_keyboard_alone_and_the_export_has_every_decision(fresh, browser):
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from digits import reviewers
    from tests.synth import draw_digits, encode

    texts = [f"{(7 * i) % 100}" if i % 3 else str(i % 10) for i in range(21)]
    rows = fresh.submit(texts, "keyed", (HOSTILE_NAME, encode(draw_digits("4"))))
    truth = {row["source"]: row["source"].split("-")[-1].removesuffix(".png") for row in rows}
    reviewers.add(fresh.redis, "kim", PASSWORD)

    browser.get(fresh.url)
    browser.find_element(By.ID, "username").send_keys("kim")
    browser.find_element(By.ID, "password").send_keys(PASSWORD, Keys.ENTER)

    def typed(*keys: str) -> None:
        browser.switch_to.active_element.send_keys(*keys)

    def showing() -> str:
        """The source of the item on screen, ``nothing`` once the queue is empty, ``""`` while a page loads."""
        try:
            if browser.find_element(By.ID, "empty").is_displayed():
                return "nothing"
            return browser.find_element(By.ID, "source").text
        except NoSuchElementException:
            return ""

    keyed, shown_before = [], None
    unreadable = undone = None
    while True:
        source = wait_until(lambda before=shown_before: (s := showing()) not in (before, "") and s, 30, "the next item")
        if source == "nothing":
            break
        shown_before = source
        assert browser.find_element(By.ID, "crop").get_attribute("naturalWidth") != "0", "its picture is shown"
        if unreadable is None and len(keyed) == 3:
            unreadable = source
            typed("u")
        elif undone is None and len(keyed) == 5:
            undone = source
            typed("9999", Keys.ENTER)  # a slip...
            wait_until(lambda slipped=source: showing() != slipped, 30, "the item after the slip")
            typed("z")  # ...taken back: the item is shown again
            wait_until(lambda slipped=source: showing() == slipped, 30, "the undone item again")
            typed(truth[source], Keys.ENTER)
        else:
            typed(truth[source], Keys.ENTER)  # typing replaces the machine's digits
        keyed.append(source)
    assert sorted(keyed) == sorted(truth), "every item, once"
    assert browser.execute_script("return window.pwned === undefined"), "the hostile name never ran"

    lines = list(csv.DictReader(io.StringIO(reviewed_csv(fresh.stack.results, dt.datetime.now(dt.UTC)).read_text())))
    slip = [line["verdict"] for line in lines if line["source"] == undone]
    assert slip[:2] == ["corrected", "undone"] and len(slip) == 3, "the slip, taken back, then the decision"
    assert {line["source"] for line in lines} == set(truth) and {line["reviewer"] for line in lines} == {"kim"}

    done = digits_command(fresh.stack, "export", "--job", rows[0]["job_id"])
    assert done.returncode == 0, done.stderr
    exported = {row["source"]: row for row in csv.DictReader(io.StringIO(done.stdout))}
    for source, digits in truth.items():
        row = exported[source]
        if source == unreadable:
            assert (row["status"], row["digits"]) == ("unreadable", "")
        else:
            assert (row["status"], row["digits"], row["reviewer"]) == ("verified", digits, "kim"), row
