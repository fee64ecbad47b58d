"""The review station under load: how long a reviewer waits from a decision to the next item, and the audit.

Starts ``digits up --workers 2`` in a temporary folder, with its station, and
drops real handwritten digits (MNIST test digits on paper, or drawn digits
where the data is absent) into the inbox a batch at a time, so that workers
are reading the whole while. Two reviewers key items through the JSON API as
they arrive: a review item gets the digit it really is, an audit item (blind)
too. Measured: for each decision, the time from sending it to holding the next
item (``POST /api/items/{id}``, then ``GET /api/next``), p50 and p95; and the
audit's error rate among ``ok`` rows, from the station's statistics, against
the true error rate among all ``ok`` rows in the CSV.

    python -m bench.review --files 600 --audit-share 0.2 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

from bench.drop import digit_images, free_port
from bench.rows import RowTail

PASSWORD = "bench-reviewer"
"""The reviewers' password."""

BATCH = 25
"""Files dropped at once, every ``BATCH_SECONDS``."""

BATCH_SECONDS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--audit-share", type=float, default=0.2, help="share of ok rows audited (DIGITS_AUDIT_SHARE)")
    parser.add_argument("--out", type=Path, help="folder for review.json")
    args = parser.parse_args()
    report = run(args.files, args.audit_share)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "review.json").write_text(json.dumps(report, indent=2) + "\n")


def run(files: int, audit_share: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="digits-bench-review-"))
    port = free_port()
    env = dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DIGITS_REVIEW_PORT=str(port),
               DIGITS_AUDIT_SHARE=str(audit_share), DIGITS_METRICS_PORT="0")  # fmt: skip
    truth = {}
    (root / "staged").mkdir()
    for i, (page, label) in enumerate(digit_images(files)):
        name = f"digit-{i:05d}.png"
        cv2.imwrite(str(root / "staged" / name), page)
        truth[name] = str(label)
    log = open(root / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "digits.cli", "up", "--workers", "2"], cwd=root, env=env,
                          stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        password = wait_for_login(root)
        station = f"http://127.0.0.1:{port}"
        _add_reviewer(env, "second")
        done = threading.Event()
        times: list[float] = []
        reviewers = [
            threading.Thread(target=key_items, args=(station, name, secret, truth, times, done))
            for name, secret in (("admin", password), ("second", PASSWORD))
        ]
        for reviewer in reviewers:
            reviewer.start()
        names = sorted(truth)
        for start in range(0, len(names), BATCH):
            for name in names[start : start + BATCH]:
                os.rename(root / "staged" / name, root / "inbox" / name)
            time.sleep(BATCH_SECONDS)
        rows = all_rows(root, set(truth))
        time.sleep(3)  # the last items reach the queue
        done.set()
        for reviewer in reviewers:
            reviewer.join(120)
        stats = login(station, "admin", password).get("/api/stats").json()
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(180)
    ok = [row for row in rows if row["status"] == "ok"]
    wrong_ok = sum(row["digits"] != truth[row["source"]] for row in ok)
    latencies = np.array(times) * 1000
    return {
        "files": files,
        "decisions": len(times),
        "decision_to_next_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 1) if len(times) else None,
            "p95": round(float(np.percentile(latencies, 95)), 1) if len(times) else None,
        },
        "sent_to_review": sum(row["status"] == "review" for row in rows),
        "audit": stats["audit"],
        "true_error_rate_among_ok": wrong_ok / len(ok) if ok else None,
        "ok_rows": len(ok),
        "station": stats,
    }


def wait_for_login(root: Path, timeout: float = 120) -> str:
    """The first reviewer's password, once ``digits up`` in ``root`` has said it and is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (root / "up.log").read_text(errors="replace")
        if "ready:" in text and (found := re.search(r"log in as admin with password (\S+) ", text)):
            return found[1]
        time.sleep(0.2)
    raise TimeoutError(f"digits up did not say it was ready; see {root}/up.log")


def _add_reviewer(env: dict[str, str], name: str) -> None:
    subprocess.run([sys.executable, "-m", "digits.cli", "users", "add", name, "--password-stdin"], env=env,
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)  # fmt: skip


def login(station: str, name: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=station, timeout=30)
    answer = client.post("/api/login", json={"username": name, "password": password})
    answer.raise_for_status()
    client.headers["X-CSRF-Token"] = answer.json()["csrf"]
    return client


def key_items(station: str, name: str, password: str, truth: dict[str, str], times: list[float],
         done: threading.Event) -> None:  # fmt: skip
    """Key every item as it comes, timing each decision up to the next item in hand."""
    client = login(station, name, password)
    answer = client.get("/api/next")
    while True:
        if answer.status_code == 204:
            if done.is_set():
                return
            time.sleep(0.05)
            answer = client.get("/api/next")
            continue
        item = answer.json()
        started = time.perf_counter()
        client.post(f"/api/items/{item['id']}", json={"digits": truth[item["source"]]})
        answer = client.get("/api/next")
        if answer.status_code == 200:
            times.append(time.perf_counter() - started)


def all_rows(root: Path, sources: set[str], timeout: float = 900) -> list[dict]:
    tail, found = RowTail(root / "results" / "inbox"), []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and {row["source"] for row in found} < sources:
        found += tail.new_rows()
        time.sleep(0.05)
    return found


if __name__ == "__main__":
    main()
