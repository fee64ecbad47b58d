"""Where results are kept: the CSV writer (rows never doubled, interleaved or formulas) and task results."""

from __future__ import annotations

import csv
import multiprocessing
import uuid
from pathlib import Path

import pytest
from celery import states
from redis import Redis

from digits.celery_app import make_app, task_states
from digits.contracts import COLUMNS, Row
from digits.results import append_drops, append_rows, read_rows


@pytest.fixture
def marks(session_redis) -> Redis:
    return Redis.from_url(session_redis.url)


def _row(job: str, source: str, digits: str = "42") -> Row:
    return Row(job_id=job, source=source, digits=digits, status="ok", sha256="ab" * 32, model="m@1")


def test_header_first_and_rows_in_order(tmp_path, marks):
    path = tmp_path / "out.csv"
    assert append_rows(path, [_row("j1", "a.png")], "drop-a1", marks)
    assert append_rows(path, [_row("j1", "b.png"), _row("j1", "b.png", "7")], "drop-b1", marks)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert [r["source"] for r in read_rows(path)] == ["a.png", "b.png", "b.png"]


def test_a_drop_written_twice_appears_once(tmp_path, marks):
    path = tmp_path / "out.csv"
    assert append_rows(path, [_row("j2", "a.png")], "drop-twice", marks)
    assert not append_rows(path, [_row("j2", "a.png")], "drop-twice", marks)
    assert len(read_rows(path)) == 1


def test_a_writer_that_died_before_marking_is_not_written_again(tmp_path, marks):
    """The crash window: rows on disk, 'done' mark never set. The retry must find them."""
    path = tmp_path / "out.csv"
    append_rows(path, [_row("j3", "first.png")], "drop-before", marks)
    rows = [_row("j3", "crashed.png")]
    assert append_rows(path, rows, "drop-crash", marks)
    offset = len(path.read_bytes()) - len(path.read_text().splitlines()[-1]) - 1
    marks.delete("digits:written:drop-crash")
    marks.set("digits:writing:drop-crash", f"{offset} {path}")
    append_rows(path, [_row("j3", "other.png")], "drop-after", marks)  # another worker went on
    assert not append_rows(path, rows, "drop-crash", marks)
    assert [r["source"] for r in read_rows(path)] == ["first.png", "crashed.png", "other.png"]


def test_a_batch_of_drops_is_written_in_one_go_each_exactly_once(tmp_path, marks):
    path = tmp_path / "out.csv"
    assert append_rows(path, [_row("j6", "before.png")], "drop-b-before", marks)
    crashed = [_row("j6", "crashed.png")]
    assert append_rows(path, crashed, "drop-b-crash", marks)
    offset = len(path.read_bytes()) - len(path.read_text().splitlines()[-1]) - 1
    marks.delete("digits:written:drop-b-crash")  # its writer died before marking it done
    marks.set("digits:writing:drop-b-crash", f"{offset} {path}")
    batch = [
        ("drop-b-before", [_row("j6", "before.png")]),  # written already
        ("drop-b-new1", [_row("j6", "new1.png"), _row("j6", "new1.png", "7")]),
        ("drop-b-crash", crashed),  # on disk already, found at its noted offset
        ("drop-b-new2", [_row("j6", "new2.png")]),
        ("drop-b-new1", [_row("j6", "new1.png"), _row("j6", "new1.png", "7")]),  # delivered twice meanwhile
    ]
    assert append_drops(path, batch, marks) == [False, True, False, True, False]
    assert [r["source"] for r in read_rows(path)] == ["before.png", "crashed.png", "new1.png", "new1.png", "new2.png"]
    assert append_drops(path, batch, marks) == [False] * 5
    assert len(read_rows(path)) == 5


def test_formula_like_names_are_neutralised(tmp_path, marks):
    path = tmp_path / "out.csv"
    append_rows(path, [_row("j4", "=HYPERLINK(evil).png")], "drop-formula", marks)
    assert read_rows(path)[0]["source"] == "'=HYPERLINK(evil).png"


def test_commas_quotes_and_newlines_in_names_keep_the_csv_valid(tmp_path, marks):
    path = tmp_path / "out.csv"
    name = 'scan, "final"\nv2 ünï.png'
    append_rows(path, [_row("j5", name)], "drop-odd-name", marks)
    assert read_rows(path)[0]["source"] == name


def _write_many(args: tuple[str, str, int]) -> None:
    path, url, n = args
    marks = Redis.from_url(url)
    for i in range(50):
        rows = [_row(f"p{n}", f"p{n}-{i}.png", str(d)) for d in range(3)]
        append_rows(Path(path), rows, f"drop-{n}-{i}", marks)


def test_concurrent_writers_never_interleave_lines(tmp_path, session_redis):
    path = tmp_path / "shared.csv"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_write_many, [(str(path), session_redis.url, n) for n in range(4)])
    with open(path, newline="") as handle:
        records = list(csv.reader(handle))
    assert records[0] == list(COLUMNS)
    assert all(len(record) == len(COLUMNS) for record in records)
    rows = read_rows(path)
    assert len(rows) == 4 * 50 * 3
    # Each drop's three rows stand together, in order.
    for start in range(0, len(rows), 3):
        block = rows[start : start + 3]
        assert len({r["source"] for r in block}) == 1
        assert [r["digits"] for r in block] == ["0", "1", "2"]


def test_task_results_stored_together_never_undo_a_success(session_redis):
    celery = make_app(session_redis.url)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    celery.backend.store_many([(first, {"pid": 1}), (second, {"pid": 1})], states.STARTED)
    assert {meta["status"] for meta in task_states(celery, [first, second]).values()} == {states.STARTED}
    celery.backend.store_many([(first, {"rows": ["read"]})], states.SUCCESS)
    # The first file's message delivered again and started by another worker: its result stands.
    celery.backend.store_many([(first, {"pid": 2}), (second, {"pid": 2})], states.STARTED)
    stored = task_states(celery, [first, second])
    assert stored[first] == {**stored[first], "status": states.SUCCESS, "result": {"rows": ["read"]}}
    assert stored[second]["status"] == states.STARTED and stored[second]["result"] == {"pid": 2}
    assert celery.AsyncResult(first).get(timeout=5) == {"rows": ["read"]}
