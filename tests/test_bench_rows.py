"""The benchmarks follow result CSVs incrementally: each row once, never half of one."""

from __future__ import annotations

from bench.rows import RowTail
from digits.contracts import Row
from digits.results import encode_rows


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
