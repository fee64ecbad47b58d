"""The review station in a real browser (headless Chromium), keyed by keyboard alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import pytest

from digits.reviews import reviewed_csv
from tests.conftest import PASSWORD, digits_command, wait_until

pytestmark = pytest.mark.processes

HOSTILE_NAME = "<script>window.pwned=1</script>-4.png"
"""A source name full of HTML: it is shown as text, and nothing in it runs."""

PICTURE_SHOWN = """
const crop = document.getElementById("crop");
return crop.complete && crop.naturalWidth > 0 && crop.currentSrc === crop.src;
"""
"""True once the item's own picture has loaded: the source's text is shown before its picture arrives."""


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
    unreadable = undone = skipped = None
    while True:
        source = wait_until(lambda before=shown_before: (s := showing()) not in (before, "") and s, 30, "the next item")
        if source == "nothing":
            break
        shown_before = source
        wait_until(lambda: browser.execute_script(PICTURE_SHOWN), 30, "its picture, shown")
        if unreadable is None and len(keyed) == 3:
            unreadable = source
            typed("u")
        elif undone is None and len(keyed) == 5:
            undone = source
            left = browser.find_element(By.ID, "left").text
            typed("9999", Keys.ENTER)  # a slip...
            wait_until(lambda slipped=source: showing() != slipped, 30, "the item after the slip")
            typed("z")  # ...taken back: the item is shown again
            wait_until(lambda slipped=source: showing() == slipped, 30, "the undone item again")
            assert browser.find_element(By.ID, "left").text == left, "the counter counts the undone item again"
            typed(truth[source], Keys.ENTER)
        elif skipped is None and len(keyed) == 8:
            skipped = source
            typed("s")  # a skip says so; the item comes back at the end
            wait_until(lambda: "skipped" in browser.find_element(By.ID, "message").text, 30, "the skip's message")
            continue
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


def test_in_group_mode_the_items_marked_wrong_are_sent_back_and_keyed_alone(fresh, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from digits import reviewers

    fresh.submit(["7", "7", "7", "7", "1"], "grouped")
    reviewers.add(fresh.redis, "lee", PASSWORD)
    browser.get(fresh.url)
    browser.find_element(By.ID, "username").send_keys("lee")
    browser.find_element(By.ID, "password").send_keys(PASSWORD, Keys.ENTER)
    wait_until(lambda: browser.find_elements(By.ID, "digits"), 30, "the station")
    assert "Group G" in browser.find_element(By.TAG_NAME, "nav").text, "the key to the group view is shown"

    def grid() -> dict[str, str]:
        """The group on screen: item id -> source."""
        cells = browser.find_elements(By.CSS_SELECTOR, "#grid figure")
        return {cell.get_attribute("data-id"): cell.find_element(By.TAG_NAME, "figcaption").text for cell in cells}

    browser.switch_to.active_element.send_keys("g")
    first = wait_until(grid, 30, "a group of single digits")
    wrong = browser.switch_to.active_element.get_attribute("data-id")  # the first cell has the focus
    browser.switch_to.active_element.send_keys(Keys.SPACE, Keys.ENTER)
    wait_until(lambda: "sent back" in browser.find_element(By.ID, "message").text, 30, "the group's decision")
    time.sleep(0.5)  # the next group loads
    assert wrong not in grid(), "an item sent back is never grouped again"

    browser.switch_to.active_element.send_keys("i")
    wait_until(lambda: browser.find_elements(By.ID, "digits"), 30, "the keying view")
    shown = []
    while not browser.find_element(By.ID, "empty").is_displayed():
        source = wait_until(lambda: browser.find_element(By.ID, "source").text, 30, "an item")
        if browser.find_element(By.ID, "kind").text == "review":
            assert browser.find_element(By.ID, "reason").text.startswith("why: "), "a review item says why"
        shown.append(source)
        browser.switch_to.active_element.send_keys(source.split("-")[-1].removesuffix(".png"), Keys.ENTER)
        wait_until(lambda s=source: browser.find_element(By.ID, "empty").is_displayed()
                   or browser.find_element(By.ID, "source").text != s, 30, "the next item")  # fmt: skip
    assert first[wrong] in shown, "the item sent back is keyed alone"
    assert not {source for item, source in first.items() if item != wrong} & set(shown), "the others were confirmed"
