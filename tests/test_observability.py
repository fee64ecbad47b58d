"""What operators see: Prometheus metrics of a real worker, JSON log lines, and ``digits status``'s throughput."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from tests.conftest import free_port, wait_until
from tests.synth import draw_digits, encode


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` from a worker's ``/metrics``."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def listening_on(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at ``port`` on this machine (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, listening_port = local.split(":")
        if state == "0A" and int(listening_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def json_lines(path) -> list[dict]:
    """The log lines of a file that are JSON objects (TensorFlow's C++ start-up lines are not ours)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_worker_counts_files_rows_digits_batches_and_latency_and_logs_json(stack):
    port = free_port()
    stack.start_worker(name="observed", DIGITS_METRICS_PORT=str(port), DIGITS_LOG_FORMAT="json")
    stack.start_ingester(DIGITS_LOG_FORMAT="json")
    written = {"seen-1.png": "41", "seen-2.png": "7", "seen-3.png": "306", "seen-4.png": "58"}
    for name, digits in written.items():
        stack.drop(name, encode(draw_digits(digits)))
    stack.drop("seen-broken.png", b"\x89PNG\r\n\x1a\n but no picture")
    rows = stack.wait_for_inbox_rows(5, timeout=90)

    metrics = wait_until(lambda: (m := scrape(port)) and m.get(("digits_batch_files_sum", ())) == 5 and m, 10,
                         "every batch counted")  # fmt: skip
    files = {dict(labels)["status"]: value for (name, labels), value in metrics.items() if name == "digits_files_total"}
    assert listening_on(port) == {"127.0.0.1"}, "metrics listen on this machine only, unless told otherwise"
    assert sum(files.values()) == 5 and files["error"] == 1
    assert metrics[("digits_digits_total", ())] == sum(len(row["digits"]) for row in rows)
    assert metrics[("digits_file_latency_seconds_count", ())] == 5
    assert 1 <= metrics[("digits_batch_files_count", ())] <= 5

    worker_log = json_lines(next(stack.root.glob("worker-*.log")))
    assert {"time", "level", "logger", "message"} <= set(worker_log[0])
    assert any(line["logger"] == "worker.tasks" and "read a batch" in line["message"] for line in worker_log)
    ingester_log = next(stack.root.glob("ingest-*.log"))
    wait_until(  # the line it logs when it files seen-1.png away, just after its rows are written
        lambda: any(line["logger"] == "ingest.watcher" and "seen-1.png" in line["message"]
                    for line in json_lines(ingester_log)),
        10, "the ingester's JSON line about seen-1.png",
    )  # fmt: skip


def test_the_ingester_touches_its_heartbeat_while_it_runs(stack):
    import time

    from ingest.watcher import HEARTBEAT_FILE

    ingester = stack.start_ingester()
    beat = stack.root / HEARTBEAT_FILE
    wait_until(beat.exists, 10, "the heartbeat file")
    first = beat.stat().st_mtime
    wait_until(lambda: beat.stat().st_mtime > first, 5, "the heartbeat to be touched again")
    ingester.kill()
    ingester.wait()
    time.sleep(2)
    assert time.time() - beat.stat().st_mtime >= 2, "a dead ingester's heartbeat goes stale"


def test_status_shows_the_files_written_per_second(stack):
    stack.start_worker(name="counted", DIGITS_METRICS_PORT="0")
    stack.start_ingester()
    for i in range(6):
        stack.drop(f"rate-{i}.png", encode(draw_digits(str(i))))
    stack.wait_for_inbox_rows(6, timeout=90)
    figures = _status(stack)
    assert figures["files in last hour"] == "6"
    assert figures["workers alive"] == "1"
    assert float(figures["files/s (10 s)"]) > 0
    assert figures["queued pages"] == "0"
    assert re.fullmatch(r"(\S+) used \(no maxmemory set\), peak \S+, noeviction", figures["redis memory"])

    # A Redis that evicts keys when full is called out: it could drop the marks that keep rows single.
    Redis.from_url(stack.redis_url).config_set("maxmemory-policy", "allkeys-lru")
    assert "WARNING: it evicts keys when full" in _status(stack)["redis memory"]


def _status(stack) -> dict[str, str]:
    status = subprocess.run([sys.executable, "-m", "digits.cli", "status"], env=stack.env(), capture_output=True,
                            text=True, timeout=60, check=True).stdout  # fmt: skip
    return dict(line.strip().split(": ", 1) for line in status.splitlines())
