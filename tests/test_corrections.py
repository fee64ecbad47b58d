"""Reviewed fields as training data: what a snapshot holds, its hash, and the split by file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import cv2
import pytest

from digits.contracts import Row
from digits.corrections import (
    COMB,
    DIGIT,
    HELD_OUT,
    LINE,
    TRAIN,
    gather,
    load_snapshot,
    split_of,
    write_snapshot,
)
from digits.reviews import ReviewQueue, items_of
from tests.synth import draw_digits, encode

LAYOUT = """
name = "slip"
[[fields]]
name = "account"
region = [0.1, 0.1, 0.8, 0.2]
comb = 4
[[fields]]
name = "amount"
region = [0.1, 0.5, 0.8, 0.2]
"""


@pytest.fixture
def layouts(tmp_path):
    folder = tmp_path / "layouts"
    folder.mkdir()
    (folder / "slip.toml").write_text(LAYOUT)
    return folder


def reviewed(queue: ReviewQueue, results, rows: list[tuple[Row, str | None]]) -> None:
    """Enqueue each row with its crop saved as a worker saves it, and decide it: the digits, or None (unreadable)."""
    items = items_of([row for row, _ in rows], "inbox", 0.0, time.time())
    for item, (row, _) in zip(items, rows, strict=True):
        (results / item.crop).parent.mkdir(parents=True, exist_ok=True)
        (results / item.crop).write_bytes(encode(draw_digits(row.digits or "0")))
    queue.enqueue(items)
    for item, (_, digits) in zip(items, rows, strict=True):
        assert queue.next("ann").id == item.id
        queue.decide(item.id, "ann", digits, seconds=1.0)


def row(source: str, digits: str, field: str = "all", page: int = 1) -> Row:
    return Row(job_id="j", source=source, page=page, field=field, digits=digits, status="review",
               sha256=hashlib.sha256(source.encode()).hexdigest(), digit_confidences=";".join("0.5" for _ in digits),
               model="m@1")  # fmt: skip


def test_a_snapshot_holds_each_kind_and_the_same_corrections_give_the_same_hash(redis, tmp_path, layouts):
    results = tmp_path / "results"
    queue = ReviewQueue(redis, results, lease_seconds=60)
    reviewed(queue, results, [
        (row("one.png", "7"), "7"),  # confirmed single digit
        (row("two.png", "4"), "9"),  # corrected single digit
        (row("slip.tif", "1234", "account"), "1234"),  # a comb field
        (row("slip.tif", "1250", "amount"), "1260"),  # an amount, corrected
        (row("smudge.png", "3"), None),  # unreadable: teaches nothing
    ])  # fmt: skip
    entries, left_out = gather(results, layouts)
    kinds = sorted((e.kind, e.label, e.verdict) for _, e in entries)
    assert kinds == [(COMB, "1234", "confirmed"), (DIGIT, "7", "confirmed"), (DIGIT, "9", "corrected"),
                     (LINE, "1260", "corrected")]  # fmt: skip
    assert left_out == {"unreadable": 1}

    first = write_snapshot(results, entries, tmp_path / "first")
    second = write_snapshot(results, gather(results, layouts)[0], tmp_path / "second")
    assert first.hash == second.hash, "the same corrections, the same hash"
    assert (tmp_path / "first" / "manifest.json").read_bytes() == (tmp_path / "second" / "manifest.json").read_bytes()
    for example in first.examples:
        crop = cv2.imread(str(first.path(example)), cv2.IMREAD_GRAYSCALE)
        assert crop is not None and crop.shape[0] > 10
        assert example.crop == f"crops/{hashlib.sha256(first.path(example).read_bytes()).hexdigest()}.png"

    # One more decision changes the hash; the older snapshot stays as it was, and loads.
    reviewed(queue, results, [(row("three.png", "5"), "5")])
    third = write_snapshot(results, gather(results, layouts)[0])
    assert third.hash != first.hash and len(third.examples) == len(first.examples) + 1
    assert third.folder == results / "corrections" / third.hash[:12]
    assert load_snapshot(third.hash[:12], results).examples == third.examples
    assert load_snapshot(tmp_path / "first", results).hash == first.hash


def test_every_field_of_a_file_lands_on_one_side_of_the_split(redis, tmp_path, layouts):
    results = tmp_path / "results"
    queue = ReviewQueue(redis, results, lease_seconds=60)
    rows = [(row(f"form-{i:03d}.tif", "12", "amount", page), "12") for i in range(60) for page in (1, 2)]
    reviewed(queue, results, rows)
    snapshot = write_snapshot(results, gather(results, layouts)[0])
    held = {e.file_sha256 for e in snapshot.of(HELD_OUT)}
    learnt = {e.file_sha256 for e in snapshot.of(TRAIN)}
    assert held and learnt and not held & learnt, "no file on both sides"
    assert 0.05 < len(held) / 60 < 0.4, "about a fifth of the files held out"
    assert all(split_of(e.file_sha256) == e.split for e in snapshot.examples)


def test_a_changed_manifest_is_refused(redis, tmp_path, layouts):
    results = tmp_path / "results"
    reviewed(ReviewQueue(redis, results, lease_seconds=60), results, [(row("one.png", "7"), "7")])
    snapshot = write_snapshot(results, gather(results, layouts)[0])
    manifest = json.loads((snapshot.folder / "manifest.json").read_text())
    manifest["examples"][0]["label"] = "1"
    (snapshot.folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LookupError, match="does not match its hash"):
        load_snapshot(snapshot.folder, results)
    with pytest.raises(LookupError, match="digits corrections --snapshot"):
        load_snapshot("ffffff", results)


def test_the_corrections_command_counts_them_and_writes_the_snapshot(redis, tmp_path, layouts, session_redis):
    results = tmp_path / "results"
    reviewed(ReviewQueue(redis, results, lease_seconds=60), results,
             [(row("one.png", "7"), "7"), (row("slip.tif", "1250", "amount"), "1260")])  # fmt: skip
    env = dict(os.environ, DIGITS_RESULTS=str(results), DIGITS_LAYOUTS=str(layouts), COLUMNS="120")
    command = [sys.executable, "-m", "digits.cli", "corrections"]
    listed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "digit" in listed.stdout and "line" in listed.stdout and not (results / "corrections").exists()
    written = subprocess.run([*command, "--snapshot"], env=env, capture_output=True, text=True, timeout=60)
    assert written.returncode == 0, written.stderr
    snapshot = load_snapshot(next((results / "corrections").iterdir()), results)
    assert f"digits train --corrections {snapshot.hash[:12]}" in written.stdout
    assert sorted(e.label for e in snapshot.examples) == ["1260", "7"]
