"""The inbox end to end: real ingester process, real Redis, real worker with the real model."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from bench.pages import blank_pdf
from digits.settings import Settings
from tests.conftest import wait_until
from tests.synth import cmyk_tiff, draw_digits, encode, pdf_with_javascript, png_bomb


def test_a_file_dropped_while_running_gets_one_row_and_moves_to_done(inbox_stack):
    inbox_stack.start_ingester()
    data = encode(draw_digits("407"))
    inbox_stack.drop("live-407.png", data)

    [row] = inbox_stack.wait_for_inbox_rows(1)
    assert row["digits"] == "407"
    assert row["status"] in ("ok", "review")
    assert (row["page"], row["field"]) == ("1", "all")
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["model"].startswith("digits-cnn@")
    assert len(row["boxes"].split(";")) == 3 == len(row["digit_confidences"].split(";"))
    assert float(row["confidence"]) == min(float(c) for c in row["digit_confidences"].split(";"))
    uuid.UUID(row["job_id"])
    processed = dt.datetime.fromisoformat(row["processed_at"].replace("Z", "+00:00"))
    assert abs(dt.datetime.now(dt.UTC) - processed) < dt.timedelta(minutes=5)
    csv_name = f"{processed:%Y-%m-%d}.csv"
    assert (inbox_stack.results / "inbox" / csv_name).exists()

    wait_until(lambda: (inbox_stack.done / "live-407.png").exists(), 10, "the file in done/")
    assert (inbox_stack.done / "live-407.png").read_bytes() == data
    assert not (inbox_stack.inbox / "live-407.png").exists()
    assert list(inbox_stack.processing.iterdir()) == []


def test_files_that_arrived_before_start_up_are_taken(inbox_stack):
    for digits in ("12", "36", "58"):
        inbox_stack.drop(f"early-{digits}.png", encode(draw_digits(digits)))
    inbox_stack.start_ingester()
    rows = inbox_stack.wait_for_inbox_rows(3)
    assert sorted(r["digits"] for r in rows) == ["12", "36", "58"]
    wait_until(lambda: len(list(inbox_stack.done.iterdir())) == 3, 10, "three files in done/")


def test_a_slowly_written_file_is_read_only_once_complete(inbox_stack):
    inbox_stack.start_ingester()
    data = encode(draw_digits("2468"))
    path = inbox_stack.inbox / "slow-2468.png"
    inbox_stack.dropped.add(path.name)
    with open(path, "wb") as handle:
        for start in range(0, len(data), len(data) // 8 + 1):
            handle.write(data[start : start + len(data) // 8 + 1])
            handle.flush()
            time.sleep(0.2)  # shorter than the 0.3 s stability delay each time
    [row] = inbox_stack.wait_for_inbox_rows(1)
    time.sleep(1.5)  # time enough for a second, wrong row to appear
    assert len(inbox_stack.inbox_rows()) == 1
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["digits"] == "2468"


def test_sub_folders_keep_their_relative_path(inbox_stack):
    inbox_stack.start_ingester()
    inbox_stack.drop("branch-7/day-2/sub-90.png", encode(draw_digits("90")))
    [row] = inbox_stack.wait_for_inbox_rows(1)
    assert row["source"] == "branch-7/day-2/sub-90.png"
    wait_until(lambda: (inbox_stack.done / "branch-7/day-2/sub-90.png").exists(), 10, "the file in done/")


def test_written_then_renamed_is_taken_under_its_final_name(inbox_stack):
    inbox_stack.start_ingester()
    part = inbox_stack.inbox / "renamed-31.png.part"
    part.write_bytes(encode(draw_digits("31")))
    time.sleep(0.6)  # the .part file is ignored however long it sits
    assert part.exists()
    os.rename(part, inbox_stack.inbox / "renamed-31.png")
    inbox_stack.dropped.add("renamed-31.png")
    [row] = inbox_stack.wait_for_inbox_rows(1)
    assert row["digits"] == "31"


def test_bad_files_get_an_error_row_and_go_to_failed_while_good_ones_go_on(inbox_stack):
    inbox_stack.start_ingester()
    inbox_stack.drop("notes-bad.png", b"total 1500, please pay\n")
    inbox_stack.drop("broken-bad.png", encode(draw_digits("5"))[:100])
    inbox_stack.drop("empty-bad.jpg", b"")
    inbox_stack.drop("bomb-bad.png", png_bomb())
    inbox_stack.drop("script-bad.pdf", pdf_with_javascript())
    inbox_stack.drop("dot-bad.png", encode(np.full((1, 1), 200, np.uint8)))
    too_many = Settings().max_pages + 1
    inbox_stack.drop("long-bad.pdf", blank_pdf(too_many))
    inbox_stack.drop("program-bad.png", Path(sys.executable).read_bytes()[:4096])
    inbox_stack.drop("after-bad-6.png", encode(draw_digits("6")))
    inbox_stack.drop("cmyk print 9 ünïcode.tif", cmyk_tiff(draw_digits("9")))

    rows = {r["source"]: r for r in inbox_stack.wait_for_inbox_rows(10)}
    assert rows["after-bad-6.png"]["digits"] == "6"
    assert rows["cmyk print 9 ünïcode.tif"]["digits"] == "9"
    for name, reason in [("notes-bad.png", "not an image"), ("broken-bad.png", "corrupt or truncated PNG"),
                         ("empty-bad.jpg", "empty file"), ("bomb-bad.png", "declares 50000x50000 pixels"),
                         ("script-bad.pdf", "holds JavaScript"), ("dot-bad.png", "too small"),
                         ("program-bad.png", "not an image"),
                         ("long-bad.pdf", f"{too_many} pages, over the limit of {too_many - 1} pages")]:  # fmt: skip
        assert rows[name]["status"] == "error"
        assert rows[name]["digits"] == ""
        assert name in rows[name]["error"] and reason in rows[name]["error"]
        wait_until(lambda n=name: (inbox_stack.failed / n).exists(), 10, f"{name} in failed/")
        assert reason in (inbox_stack.failed / f"{name}.error.txt").read_text()


def test_temporary_and_hidden_files_are_left_alone(inbox_stack):
    inbox_stack.start_ingester()
    ignored = [".hidden-1.png", "scan-2.png.part", "~$lock-3.png", "Thumbs.db", ".sync/inner-4.png"]
    for name in ignored:
        inbox_stack.drop(name, encode(draw_digits("1")))
    inbox_stack.drop("kept-8.png", encode(draw_digits("8")))
    inbox_stack.wait_for_inbox_rows(1)
    time.sleep(1.5)  # past a periodic rescan
    assert [r["source"] for r in inbox_stack.inbox_rows()] == ["kept-8.png"]
    assert all((inbox_stack.inbox / name).exists() for name in ignored)


def test_a_file_left_in_processing_by_a_dead_ingester_is_recovered(inbox_stack):
    orphan = inbox_stack.processing / str(uuid.uuid4()) / "orphan-73.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(encode(draw_digits("73")))
    inbox_stack.dropped.add("orphan-73.png")
    inbox_stack.start_ingester()
    [row] = inbox_stack.wait_for_inbox_rows(1)
    assert row["digits"] == "73"
    assert row["job_id"] == orphan.parent.name
    wait_until(lambda: (inbox_stack.done / "orphan-73.png").exists(), 10, "the file in done/")


def test_a_200_mb_file_is_refused_with_a_reason_without_being_read(inbox_stack):
    inbox_stack.start_ingester()
    # 200 MB that cost no disk: a PNG's first bytes, then a hole (a sparse file).
    staged = inbox_stack.root / "huge-1.png"
    with open(staged, "wb") as handle:
        handle.write(encode(draw_digits("1")))
        handle.truncate(200 * 1024 * 1024)
    inbox_stack.dropped.add("huge-1.png")
    os.rename(staged, inbox_stack.inbox / "huge-1.png")
    [row] = inbox_stack.wait_for_inbox_rows(1)
    assert row["status"] == "error" and "file is 200.0 MB, over the 25 MB limit" in row["error"]
    assert "DIGITS_MAX_FILE_MB" in row["error"]
    wait_until(lambda: (inbox_stack.failed / "huge-1.png.error.txt").exists(), 10, "the reason in failed/")
    assert (inbox_stack.failed / "huge-1.png").stat().st_size == 200 * 1024 * 1024, "kept whole, as it came"


def test_the_same_scan_twice_is_written_again_but_marked_duplicate(inbox_stack):
    inbox_stack.start_ingester()
    data = encode(draw_digits("8125"))
    inbox_stack.drop("twice/first.png", data)
    [first] = inbox_stack.wait_for_inbox_rows(1)
    inbox_stack.drop("twice/copy.png", data)  # the same bytes under another name
    wait_until(lambda: len(inbox_stack.inbox_rows()) == 2, 60, "the copy's row")
    inbox_stack.drop("twice/first.png", data)  # and the same file dropped again
    rows = inbox_stack.wait_for_inbox_rows(3)
    assert (first["status"], bool(first["error"])) in {("ok", False), ("review", True)}, "a review row says why"
    assert [(row["source"], row["status"]) for row in rows[1:]] == [
        ("twice/copy.png", "duplicate"),
        ("twice/first.png", "duplicate"),
    ]
    for later in rows[1:]:
        assert later["digits"] == first["digits"], "a duplicate is still read, for the reviewer"
        assert "the same file as twice/first.png" in later["error"]
    # Nothing failed and nothing is lost: all three are filed in done/, the second first.png beside the first.
    for name in ("first.png", "copy.png", "first.2.png"):
        wait_until(lambda n=name: (inbox_stack.done / "twice" / n).exists(), 10, f"{name} in done/")
    assert not list(inbox_stack.failed.rglob("*"))
