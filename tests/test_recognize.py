"""``digits recognize``: the seed's "classify your own digits", in-process, no Redis."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest

from digits.contracts import COLUMNS
from tests.synth import draw_digits, encode

pytestmark = pytest.mark.processes


def test_recognize_writes_csv_rows_to_stdout_without_redis(tmp_path):
    files = []
    for digits, ext in (("3", ".png"), ("2019", ".jpg"), ("75", ".tif")):
        files.append(tmp_path / f"own-{digits}{ext}")
        files[-1].write_bytes(encode(draw_digits(digits), ext))
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode(np.full((120, 300), 235, np.uint8)))
    env = {"DIGITS_REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "digits.cli", "recognize", *map(str, files), str(blank)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reader = csv.DictReader(io.StringIO(done.stdout))
    assert tuple(reader.fieldnames) == COLUMNS
    rows = list(reader)
    assert [r["digits"] for r in rows] == ["3", "2019", "75", ""]
    assert [r["status"] for r in rows][-1] == "empty"
    assert "read it with its layout" in rows[-1]["error"], "an empty page says a layout may be wanted"
    assert done.stderr == "", "only real warnings on stderr, and there are none here"
    assert len({r["job_id"] for r in rows}) == 1
