"""Soak: thousands of scans through a fresh `digits up`, every file accounted for, memory watched.

    python -m bench.soak --files 20000 --workers 2

Starts `digits up` in a temporary folder with a Redis of its own, drops the
files into one inbox sub-folder in waves (each file's bytes unique, so none is
a duplicate), and samples the resident memory of every process of the stack.
Reports rows, doubled and missing files, what is left in `processing/`,
throughput, and for each process its memory once warm (after the first tenth of
the files) and at its highest afterwards. Our own processes must stay within
``MAX_GROWTH`` of their warm size; Redis grows by design, as it keeps each
file's result for ``DIGITS_RESULT_DAYS`` and its marks for ``DIGITS_MARK_DAYS``:
what it keeps per file is measured at the end (``redis_kept``).
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
from collections import Counter
from pathlib import Path

import cv2
from redis import Redis

from bench.drop import digit_images, free_port, pool_processes
from bench.rows import RowTail
from digits.settings import Settings

MAX_GROWTH = 0.10
"""Largest allowed growth of a process's resident memory after warm-up."""

WAVE = 500
"""Files dropped at a time; the next wave follows once the inbox has room."""

WARM_UP_SECONDS = 180
"""Longest the soak waits for `digits up` to have every pool process warm before it drops files."""

SAMPLE_SECONDS = 0.5
"""How often memory is sampled (and once more when every row is in: a short soak may be over within seconds)."""


def stack_processes(up: int) -> dict[int, str]:
    """``{pid: role}`` of `digits up` (which runs the ingester) and every process below it."""
    roles = {up: "digits up + ingester"}
    for child in pool_processes(up):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if b"redis-server" in command:
            roles[child] = "redis-server"
        else:
            roles[child] = "worker (parent)"
            roles |= dict.fromkeys(pool_processes(child), "worker pool process")
    return roles


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(files: int, workers: int, timeout: float) -> dict:
    """Soak a fresh stack with ``files`` scans; return the report."""
    root = Path(tempfile.mkdtemp(prefix="digits-soak-"))
    env = dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DIGITS_REVIEW_PORT="0")
    with open(root / "up.log", "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "digits.cli", "up", "--workers", str(workers)],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    folder = root / "inbox" / "soak"
    images = digit_images(10_000)
    labels: dict[str, int] = {}
    warm: dict[int, float] = {}
    highest: dict[int, float] = {}
    names: dict[int, str] = {}
    started = time.monotonic()
    next_sample = 0.0
    tail = RowTail(root / "results" / "inbox")
    rows: list[dict] = []

    def sample() -> None:
        for pid, name in stack_processes(up.pid).items():
            rss = rss_mb(pid)
            if rss is None:
                continue
            names[pid] = name
            if len(rows) >= files // 10:
                warm.setdefault(pid, rss)
                highest[pid] = max(highest.get(pid, 0.0), rss)

    try:
        # Every process warm first, the page worker's too (`digits up` starts it once the files' are).
        while b"the page worker is warm" not in (root / "up.log").read_bytes():
            if time.monotonic() - started > WARM_UP_SECONDS or up.poll() is not None:
                raise RuntimeError(f"`digits up` did not warm up in {WARM_UP_SECONDS} s; see {root}/up.log")
            time.sleep(0.1)
        started = time.monotonic()  # the soak's time and throughput are the warm service's
        folder.mkdir(parents=True, exist_ok=True)
        dropped = 0
        while time.monotonic() - started < timeout:
            rows += tail.new_rows()
            if dropped < files and dropped - len(rows) < WAVE:
                for i in range(dropped, min(files, dropped + WAVE)):
                    page, label = images[i % len(images)]
                    # A margin that grows every 10,000 files keeps each file's bytes unique.
                    page = cv2.copyMakeBorder(page, 0, i // len(images), 0, 0, cv2.BORDER_REPLICATE)
                    name = f"soak-{i:05d}.png"
                    cv2.imwrite(str(root / name), page)
                    os.rename(root / name, folder / name)
                    labels[f"soak/{name}"] = label
                dropped = min(files, dropped + WAVE)
            if time.monotonic() >= next_sample:
                sample()
                next_sample = time.monotonic() + SAMPLE_SECONDS
            if len(rows) >= files:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        sample()
        time.sleep(3)  # a late duplicate would show up now
        rows += tail.new_rows()
        kept = redis_kept(Redis.from_url(env["DIGITS_REDIS_URL"]), len(rows))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)

    counts = Counter(row["source"] for row in rows)
    memory = [
        {
            "process": names[pid],
            "pid": pid,
            "warm_mb": round(warm[pid], 1),
            "highest_mb": round(highest[pid], 1),
            "growth": round(highest[pid] / warm[pid] - 1, 3),
        }
        for pid in sorted(warm, key=lambda p: names[p])
    ]
    ours = [m for m in memory if m["process"] != "redis-server"]
    return {
        "files": files,
        "workers": workers,
        "rows": len(rows),
        "duplicated_sources": sum(1 for n in counts.values() if n > 1),
        "missing_sources": len(set(labels) - set(counts)),
        "left_in_processing": sum(1 for p in (root / "processing").rglob("*") if p.is_file()),
        "in_done": sum(1 for p in (root / "done").rglob("*.png")),
        "accuracy": round(sum(row["digits"] == str(labels.get(row["source"])) for row in rows) / max(1, len(rows)), 4),
        "seconds": round(elapsed, 1),
        "files_per_second": round(len(rows) / elapsed, 1),
        "memory": memory,
        "memory_flat": bool(ours) and all(m["growth"] <= MAX_GROWTH for m in ours),
        "redis": kept,
        "folder": str(root),
    }


KEPT_FOR = {"celery-task-meta-": "result", "digits:written:": "mark", "digits:seen:": "mark"}
"""Key prefixes of what Redis keeps per file, and which retention setting keeps it: ``DIGITS_RESULT_DAYS``
(the file's result, read by ``Job`` and the ingester) or ``DIGITS_MARK_DAYS`` (written once, duplicates)."""


def redis_kept(redis: Redis, files: int) -> dict:
    """What Redis holds per file once ``files`` were read, from ``MEMORY USAGE`` of each of its keys.

    Returns bytes per file kept under each retention setting, the other keys in
    total, and Redis's memory per 100,000 files a day once it holds as many
    days of each as the defaults keep.
    """
    kept = Counter()
    for key in redis.scan_iter(count=1000):
        kind = next((kind for prefix, kind in KEPT_FOR.items() if key.startswith(prefix.encode())), "other")
        kept[kind] += redis.memory_usage(key, samples=0) or 0
    settings = Settings()
    per_file = {kind: round(kept[kind] / max(1, files)) for kind in ("result", "mark")}
    steady = 100_000 * (per_file["result"] * settings.result_days + per_file["mark"] * settings.mark_days)
    return {
        "result_bytes_per_file": per_file["result"],
        "mark_bytes_per_file": per_file["mark"],
        "other_bytes": kept["other"],
        "result_days": settings.result_days,
        "mark_days": settings.mark_days,
        "gb_at_100k_files_a_day": round(steady / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()
    print(json.dumps(run(args.files, args.workers, args.timeout), indent=2))


if __name__ == "__main__":
    main()
