"""A long PDF read one task per page against the same PDF read as one task, side by side.

    python -m bench.pages --pages 50 --workers 2

For each way, starts `digits up` in a temporary folder with a Redis of its own,
warms the workers up with the two-page sample form, then drops a PDF of
``--pages`` filled-in form pages into ``inbox/form/`` and times it until all its
rows are in the CSV. Prints the rows, how many were right, and the seconds of
each way, and the speed-up of splitting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.drop import free_port
from digits.layouts import load_layout
from digits.results import read_rows
from digits.samples import SAMPLE_VALUES, draw_page, scan_bytes
from layouts import FOLDER


def run(split_above: int, pdf: bytes, warm_up: bytes, expected: list[tuple[str, str, str]], workers: int) -> dict:
    """Seconds from dropping ``pdf`` into a warm `digits up` to its last row, and how many rows were right."""
    root = Path(tempfile.mkdtemp(prefix="digits-pages-"))
    env = dict(
        os.environ,
        DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        DIGITS_REVIEW_PORT="0",
        DIGITS_SPLIT_ABOVE_PAGES=str(split_above),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    with open(root / "up.log", "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "digits.cli", "up", "--workers", str(workers)],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        (root / "inbox" / "form").mkdir(parents=True, exist_ok=True)
        rows = _drop_and_wait(root, "warm-up.tif", warm_up, 8)
        started = time.monotonic()
        rows = _drop_and_wait(root, "long.pdf", pdf, len(expected))
        seconds = time.monotonic() - started
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
    read = [(r["page"], r["field"], r["digits"]) for r in rows]
    return {
        "split_above_pages": split_above,
        "rows": len(rows),
        "right": sum(a == b for a, b in zip(read, expected, strict=False)),
        "seconds": round(seconds, 1),
        "folder": str(root),
    }


def _drop_and_wait(root: Path, name: str, data: bytes, count: int, timeout: float = 1800) -> list[dict]:
    staged = root / name
    staged.write_bytes(data)
    os.rename(staged, root / "inbox" / "form" / name)  # appears whole, as a scanner's rename would
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [row for path in (root / "results" / "inbox").glob("*.csv") for row in read_rows(path)]
        mine = [row for row in rows if row["source"] == f"form/{name}"]
        if len(mine) >= count:
            return mine
        time.sleep(0.2)
    raise TimeoutError(f"{name}: not all {count} rows after {timeout} s; see {root}/up.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    layout = load_layout("form", FOLDER)
    values = [SAMPLE_VALUES["form"][i % 2] for i in range(args.pages)]
    pdf = scan_bytes([draw_page(layout, page, seed=i) for i, page in enumerate(values)], ".pdf")
    warm_up = scan_bytes([draw_page(layout, page, seed=i) for i, page in enumerate(SAMPLE_VALUES["form"])], ".tif")
    expected = [(str(n), field, digits) for n, page in enumerate(values, 1) for field, digits in page.items()]
    whole = run(args.pages + 1, pdf, warm_up, expected, args.workers)
    split = run(2, pdf, warm_up, expected, args.workers)
    report = {
        "pages": args.pages,
        "workers": args.workers,
        "one_task": whole,
        "one_task_per_page": split,
        "speed_up": round(whole["seconds"] / split["seconds"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
