"""The benchmarks' own parts: result CSVs followed incrementally (each row once, never half of one), and
a file's reading split into model calls and the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2

from bench.rows import RowTail
from digits.contracts import Row
from digits.results import encode_rows
from tests.synth import draw_digits


def test_rows_are_returned_once_and_a_half_written_line_waits_for_its_end(tmp_path):
    rows = [Row(job_id="j", source=f"f{i}.png", digits=str(i), status="ok") for i in range(3)]
    csv_path = tmp_path / "inbox.csv"
    whole = encode_rows(rows, header=True)
    cut = whole.rindex(b"f2.png") + 3  # the last row is half-written
    csv_path.write_bytes(whole[:cut])
    tail = RowTail(tmp_path)
    assert [r["source"] for r in tail.new_rows()] == ["f0.png", "f1.png"]
    assert tail.new_rows() == []
    with open(csv_path, "ab") as handle:
        handle.write(whole[cut:])
    assert [(r["source"], r["digits"]) for r in tail.new_rows()] == [("f2.png", "2")]


def test_model_work_splits_a_files_reading_into_model_calls_and_the_rest(tmp_path):
    """``bench.model_work`` (the bound ``make bench`` prints) times the pipeline's own model calls."""
    for i in range(70):  # each image its own (the pipeline classifies an image met twice once)
        page = draw_digits(str(i % 10) if i % 7 else "407", height=40 + i, ink=i)
        cv2.imwrite(str(tmp_path / f"d{i:02d}.png"), page)
    command = [sys.executable, "-m", "bench.model_work", *sorted(map(str, tmp_path.glob("*.png")))]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    work = json.loads(done.stdout)
    assert work["files"] == 70
    assert work["classifier_inputs"] >= 2  # each of the two members reads each file's digit
    assert work["string_model_inputs"] >= 3 * 10 / 70  # the numbers are read as lines, at three widths
    assert 0 < work["classifier_ms"] + work["string_models_ms"] < work["ms"]
