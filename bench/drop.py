"""Drop N single-digit scans into a fresh `digits up` and account for every one of them.

    python -m bench.drop --files 1000 --kill 2

starts `digits up` in a temporary folder with a Redis of its own, writes N
digit images into its inbox (MNIST test digits, dark on light, when
../shared/data is there; drawn digits otherwise), kill -9s a worker pool
process the given number of times while they are processed, and reports rows,
duplicates, files in done/ and failed/, accuracy and throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from bench.rows import RowTail

DATA = Path(os.environ.get("DIGITS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def digit_images(count: int) -> list[tuple[np.ndarray, int]]:
    """``count`` (page, label) pairs: MNIST test digits on paper, or drawn digits."""
    if (DATA / "mnist.npz").exists():
        with np.load(DATA / "mnist.npz") as mnist:
            x, y = mnist["x_test"][:count], mnist["y_test"][:count]
        pages = [cv2.copyMakeBorder(255 - img, 10, 10, 10, 10, cv2.BORDER_CONSTANT, value=255) for img in x]
        return list(zip(pages, map(int, y), strict=True))
    from tests.synth import FONTS, draw_digits

    return [(draw_digits(str(i % 10), font=FONTS[i % len(FONTS)]), i % 10) for i in range(count)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pool_processes(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--kill", type=int, default=0, help="kill -9 a pool process this many times")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="digits-drop-"))
    env = dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DIGITS_REVIEW_PORT="0")
    log = open(root / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [sys.executable, "-m", "digits.cli", "up", "--workers", str(args.workers)],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    inbox = root / "inbox"
    while not inbox.exists():
        time.sleep(0.1)
    images = digit_images(args.files)
    labels = {}
    started = time.monotonic()
    for i, (page, label) in enumerate(images):
        name = f"digit-{i:05d}.png"
        cv2.imwrite(str(root / name), page)
        os.rename(root / name, inbox / name)  # appears whole, as a scanner's rename would
        labels[name] = label

    kills_at = [int(args.files * (k + 1) / (args.kill + 1)) for k in range(args.kill)]
    killed = []
    tail = RowTail(root / "results" / "inbox")
    rows: list[dict] = []
    while time.monotonic() - started < args.timeout:
        rows += tail.new_rows()
        if kills_at and len(rows) >= kills_at[0]:
            kills_at.pop(0)
            worker = pool_processes(up.pid)
            victims = [p for w in worker for p in pool_processes(w)]
            if victims:
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])
        if len(rows) >= args.files:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    time.sleep(3)  # a late duplicate would show up now
    rows += tail.new_rows()
    up.send_signal(signal.SIGTERM)
    up.wait(120)

    counts = Counter(row["source"] for row in rows)
    report = {
        "files": args.files,
        "rows": len(rows),
        "distinct_sources": len(counts),
        "duplicated_sources": sum(1 for n in counts.values() if n > 1),
        "missing_sources": len(set(labels) - set(counts)),
        "pool_processes_killed": len(killed),
        "in_done": len(list((root / "done").glob("*.png"))),
        "in_failed": len(list((root / "failed").glob("*.png"))),
        "left_in_processing": sum(1 for p in (root / "processing").rglob("*") if p.is_file()),
        "accuracy": round(sum(row["digits"] == str(labels[row["source"]]) for row in rows) / max(1, len(rows)), 4),
        "seconds": round(elapsed, 1),
        "files_per_second": round(len(rows) / elapsed, 1),
        "folder": str(root),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
