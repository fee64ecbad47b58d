"""The review queue on a real Redis: leases, decisions written once, undo, statistics, and the final rows."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from redis import Redis

from digits.contracts import AUDIT_KIND, REVIEW_KIND, ReviewItem, Row
from digits.results import append_rows, read_rows
from digits.reviews import (
    AuditFigures,
    Conflict,
    ReviewQueue,
    drawn_for_audit,
    export_rows,
    id_of,
    items_of,
    kind_of,
    reviewed_csv,
)
from tests.conftest import RedisServer

LEASE = 2
"""Seconds a lease lasts in these tests (Redis's clock counts whole seconds)."""


@pytest.fixture
def queue(redis, tmp_path) -> ReviewQueue:
    return ReviewQueue(redis, tmp_path, lease_seconds=LEASE)


def row(source: str, digits: str = "42", status: str = "review", page: int = 1) -> Row:
    confidences = ";".join("0.6000" for _ in digits)
    return Row(job_id="job-1", source=source, page=page, digits=digits, status=status, sha256=source * 4,
               digit_confidences=confidences, model="m@1")  # fmt: skip


def items(*sources: str) -> list[ReviewItem]:
    return items_of([row(source) for source in sources], "jobs", 0.0, time.time())


def test_a_row_goes_before_a_person_when_doubted_or_drawn_for_the_audit():
    assert kind_of(row("a"), 0.0) == REVIEW_KIND
    assert kind_of(row("a", status="empty"), 1.0) is None and kind_of(row("a", status="duplicate"), 1.0) is None
    ok = [row(f"ok-{i}", status="ok") for i in range(2000)]
    drawn = [r for r in ok if drawn_for_audit(r, 0.05)]
    assert 60 <= len(drawn) <= 140, "about the share asked for"
    assert all(kind_of(r, 0.05) == AUDIT_KIND for r in drawn)
    assert drawn == [r for r in ok if drawn_for_audit(r, 0.05)], "the draw is the same every time"


def test_an_item_enqueued_twice_is_one_item_and_two_reviewers_never_hold_the_same(queue):
    queue.enqueue(items(*(f"s{i}" for i in range(10))))
    queue.enqueue(items("s3"))  # the same file, delivered again
    seen = []
    for turn in range(10):
        held = queue.next("ann" if turn % 2 else "bob")
        seen.append(held.id)
        queue.decide(held.id, "ann" if turn % 2 else "bob", held.digits, seconds=1.0)
    assert len(set(seen)) == 10
    assert queue.next("ann") is None and queue.stats()["pending"] == 0


def test_a_reviewer_gets_back_the_item_they_hold_and_a_lapsed_lease_frees_it(queue):
    queue.enqueue(items("only"))
    first = queue.next("ann")
    assert queue.next("ann").id == first.id, "a reload shows the same item"
    assert queue.next("bob") is None, "held by ann"
    with pytest.raises(Conflict):
        queue.decide(first.id, "bob", "42", 1.0)
    time.sleep(LEASE + 1.1)
    assert queue.next("bob").id == first.id, "ann's lease ran out"
    with pytest.raises(Conflict):
        queue.decide(first.id, "ann", "42", 1.0)


def test_each_decision_is_written_once_and_an_undo_appends_a_line_that_takes_it_back(queue, tmp_path):
    queue.enqueue(items("a", "b", "c"))
    verdicts = {}
    for digits in ("42", "47", None):
        held = queue.next("ann")
        verdicts[held.source] = queue.decide(held.id, "ann", digits, seconds=2.0).verdict
    assert verdicts == {"a": "confirmed", "b": "corrected", "c": "unreadable"}
    decided = queue.standing([i.id for i in items("b")])
    with pytest.raises(Conflict):
        queue.decide(next(iter(decided)), "ann", "41", 1.0)  # decided already

    again = queue.undo(next(iter(decided)), "ann")
    assert again.source == "b" and queue.next("ann").id == again.id
    queue.decide(again.id, "ann", "41", seconds=3.0)
    lines = read_rows(reviewed_csv(tmp_path, dt.datetime.now(dt.UTC)))
    assert [(line["source"], line["digits"], line["verdict"]) for line in lines] == [
        ("a", "42", "confirmed"), ("b", "47", "corrected"), ("c", "", "unreadable"),
        ("b", "", "undone"), ("b", "41", "corrected"),
    ]  # fmt: skip
    stats = queue.stats()
    assert stats["decided"] == 3 and stats["per_reviewer"] == {"ann": 3} and stats["pending"] == 0
    with pytest.raises(Conflict):
        queue.undo(again.id, "bob")


def test_skipped_items_go_behind_the_others(queue):
    queue.enqueue(items("first", "second"))
    held = queue.next("ann")
    queue.skip(held.id, "ann")
    assert queue.next("ann").source == "second"


def test_the_audit_error_rate_has_a_95_percent_interval():
    figures = AuditFigures(checked=400, wrong=2)
    low, high = figures.ci95
    assert figures.error_rate == 0.005 and 0.0013 < low < 0.0015 and 0.017 < high < 0.019
    assert AuditFigures(0, 0).ci95 is None and AuditFigures(50, 0).ci95[0] == 0.0


def test_the_final_rows_carry_the_persons_reading_over_the_machines(queue, redis, tmp_path):
    rows = [row("kept", status="ok"), row("fixed", "17"), row("blot", "8")]
    append_rows(tmp_path / "jobs" / "job-1.csv", rows, "drop-final", redis)
    queue.enqueue(items_of(rows, "jobs", 0.0, time.time()))
    for digits in ("71", None):
        held = queue.next("ann")
        queue.decide(held.id, "ann", digits, seconds=1.0)
    final = {r["source"]: r for r in export_rows(tmp_path, job_id="job-1")}
    assert (final["kept"]["digits"], final["kept"]["status"], final["kept"]["reviewer"]) == ("42", "ok", "")
    fixed = final["fixed"]
    assert (fixed["digits"], fixed["status"], fixed["machine_digits"]) == ("71", "verified", "17")
    assert (final["blot"]["digits"], final["blot"]["status"]) == ("", "unreadable")
    assert id_of(final["fixed"]) == id_of(rows[1])


def test_a_persistent_redis_restarted_keeps_every_waiting_and_decided_item(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        queue = ReviewQueue(Redis.from_url(server.url), tmp_path, lease_seconds=LEASE)
        queue.enqueue(items("kept-1", "kept-2", "kept-3"))
        held = queue.next("ann")
        queue.decide(held.id, "ann", "42", seconds=1.0)
        server.stop()
        server.start()
        queue = ReviewQueue(Redis.from_url(server.url), tmp_path, lease_seconds=LEASE)
        assert queue.stats()["pending"] == 2 and queue.standing([held.id])[held.id].digits == "42"
        assert {queue.next("bob").source, queue.next("ann").source} == {"kept-2", "kept-3"}
    finally:
        server.stop()


def test_a_decision_taken_but_not_yet_written_is_written_at_the_next_start(queue, tmp_path, monkeypatch):
    queue.enqueue(items("cut-short"))
    held = queue.next("ann")

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("digits.reviews.append_drops", disk_full)
    with pytest.raises(OSError):
        queue.decide(held.id, "ann", "42", seconds=1.0)
    monkeypatch.undo()
    assert queue.standing([held.id])[held.id].digits == "42", "taken in Redis"
    assert not read_rows(reviewed_csv(tmp_path, dt.datetime.now(dt.UTC))), "but not yet in the CSV"
    assert queue.write_unwritten() == 1 and queue.write_unwritten() == 0
    lines = read_rows(reviewed_csv(tmp_path, dt.datetime.now(dt.UTC)))
    assert [(line["source"], line["digits"]) for line in lines] == [("cut-short", "42")]
