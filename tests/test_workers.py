"""Several workers at once, and workers killed mid-run: nothing lost, nothing doubled."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from digits.contracts import COLUMNS
from digits.results import read_rows
from ingest.watcher import DROP_NAME
from tests.conftest import wait_until
from tests.synth import FONTS, draw_digits, encode


def children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Celery's pool processes of a worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of ``pid`` and all its threads, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def busiest(pids: list[int], window: float = 0.3) -> int:
    """The process among ``pids`` that used the most CPU over ``window`` seconds: the one mid-task."""
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(window)
    return max(pids, key=lambda pid: cpu_ticks(pid) - before[pid])


def drop_many(stack, count: int, prefix: str, height: int = 60) -> dict[str, str]:
    """Drop ``count`` digit scans, digits ``height`` pixels high; return ``{source: digits written}``."""
    expected = {}
    for i in range(count):
        digits = f"{i % 10}{(i * 7) % 10}"
        name = f"{prefix}-{i:03d}.png"
        stack.drop(name, encode(draw_digits(digits, font=FONTS[i % len(FONTS)], height=height)))
        expected[name] = digits
    return expected


def _waiting(stack) -> list[str]:
    """The drop ids of the files waiting in ``processing/`` (dropped into the inbox itself)."""
    return [DROP_NAME.fullmatch(path.name)["drop_id"] for path in stack.processing.glob("*__*")]


def assert_each_file_once(stack, expected: dict[str, str]) -> None:
    rows = stack.inbox_rows()
    counts = Counter(r["source"] for r in rows)
    assert counts == Counter(expected.keys()), f"doubled: {[s for s, n in counts.items() if n > 1]}"
    for path in (stack.results / "inbox").glob("*.csv"):
        with open(path, newline="") as handle:
            records = list(csv.reader(handle))
        assert records[0] == list(COLUMNS)
        assert all(len(record) == len(COLUMNS) for record in records), "a broken or interleaved line"
    right = sum(r["digits"] == expected[r["source"]] for r in rows)
    assert right >= 0.95 * len(expected)
    wait_until(lambda: len(list(stack.done.iterdir())) == len(expected), 30, "every file in done/")
    assert list(stack.processing.iterdir()) == []


def test_two_workers_write_no_interleaved_or_doubled_rows(stack):
    stack.start_worker(concurrency=1, name="left")
    stack.start_worker(concurrency=1, name="right")
    stack.start_ingester()
    expected = drop_many(stack, 40, "pair")
    stack.wait_for_inbox_rows(40, timeout=120)
    time.sleep(1)
    assert_each_file_once(stack, expected)
    logs = "".join(p.read_text(errors="replace") for p in stack.root.glob("worker-*.log"))
    assert "left@" in logs and "right@" in logs


def test_pool_processes_killed_mid_run_lose_nothing_and_double_nothing(stack):
    # The whole backlog is queued before the worker starts, so its pool processes work back to back
    # and a kill lands mid-task. With files trickling in, a kill could hit an idle process (CI saw it).
    # Small batches (and messages: a batch cannot split one), so that a kill lands mid-batch rather than
    # after a batch of 30 is written; a killed batch's chunks of 3 files come back whole.
    # Large scans, so that each task takes a while and a process is rarely between two.
    stack.start_ingester(DIGITS_CHUNK_FILES="3")
    expected = drop_many(stack, 60, "kill", height=240)
    wait_until(lambda: len(list(stack.processing.iterdir())) == 60, 60, "all 60 files queued")
    worker = stack.start_worker(concurrency=2, name="victim", DIGITS_BATCH_SIZE="3")
    killed = 0
    for wanted in (10, 25, 40):
        wait_until(lambda w=wanted: len(stack.inbox_rows()) >= w, 120, f"{wanted} rows", interval=0.01)
        for _ in range(10):
            pool = children(worker.pid)
            assert pool, "the worker has no pool processes"
            try:
                os.kill(busiest(pool), signal.SIGKILL)
            except ProcessLookupError:
                continue  # the pool changed while we looked (a process replaced): look again
            killed += 1
            break
    stack.wait_for_inbox_rows(60, timeout=180)
    time.sleep(2)  # a task redelivered late would show up as a doubled row now
    assert killed == 3
    log = "".join(p.read_text(errors="replace") for p in stack.root.glob("worker-*.log"))
    assert "WorkerLostError" in log, "no kill hit a task in progress; the test proved nothing"
    assert_each_file_once(stack, expected)
    assert worker.poll() is None, "the worker node itself must survive its pool processes dying"


def _maps_tensorflow(pid: int) -> bool:
    return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()


def test_the_model_lives_in_pool_processes_never_in_the_parent(served):
    from digits.celery_app import make_app
    from ingest import submit

    submit([("maps-4.png", encode(draw_digits("4")))], celery=make_app(served.redis_url)).wait(timeout=60)
    worker = served.processes[0]
    pool = children(worker.pid)
    assert pool and any(_maps_tensorflow(pid) for pid in pool), "no pool process has loaded the model"
    assert not _maps_tensorflow(worker.pid), "TensorFlow was loaded in the worker's parent before fork"


def test_a_worker_node_killed_as_a_whole_hands_its_task_to_another_node(stack):
    from celery import states

    from digits.celery_app import make_app, task_states
    from ingest import submit

    # A node that dies as a whole (its machine lost) cannot give its task back: the task
    # returns to the queue once DIGITS_REDELIVER_SECONDS pass, and another node takes it.
    settings = {"DIGITS_REDELIVER_SECONDS": "15"}
    doomed = stack.start_worker(concurrency=1, name="doomed", **settings)
    celery = make_app(stack.redis_url)
    job = submit([(f"node-{d}.png", encode(draw_digits(d))) for d in ("31", "42", "53")], celery=celery)
    wait_until(
        lambda: any(m["status"] == states.STARTED for m in task_states(celery, job.task_ids).values()),
        60,
        "the doomed node to start a task",
    )
    for pid in [doomed.pid, *children(doomed.pid)]:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    stack.start_worker(concurrency=1, name="heir", **settings)
    job.wait(timeout=120)
    rows = job.rows()
    assert sorted(row["source"] for row in rows) == ["node-31.png", "node-42.png", "node-53.png"]
    assert all(row["digits"] == row["source"][5:7] for row in rows)
    # Not at once (as when only a pool process dies): after the redelivery time, counted from delivery.
    assert time.monotonic() - killed_at >= 10, "the task came back before its redelivery time"
    csv_rows = read_rows(stack.results / "jobs" / f"{job.id}.csv")
    assert sorted(row["source"] for row in csv_rows) == ["node-31.png", "node-42.png", "node-53.png"]


def test_a_hung_task_is_stopped_at_the_time_limit_and_its_file_fails_with_the_reason(stack):
    from celery import states

    from digits.celery_app import make_app, task_states

    worker = stack.start_worker(concurrency=1, name="hung", DIGITS_TASK_TIME_LIMIT="20")
    stack.start_ingester()
    stack.drop("warm-up.png", encode(draw_digits("12")))  # the model loads inside the first task
    stack.wait_for_inbox_rows(1, timeout=60)
    # A page big enough that reading it takes a while, so that it can be caught mid-task.
    stack.drop("hangs.png", encode(draw_digits("9081726354" * 3, height=400)))
    celery = make_app(stack.redis_url)

    def started() -> bool:
        return any(m["status"] == states.STARTED for m in task_states(celery, _waiting(stack)).values())

    wait_until(started, 30, "the task to start", interval=0.01)
    [pool] = children(worker.pid)
    os.kill(pool, signal.SIGSTOP)  # hung: alive, doing nothing
    rows = stack.wait_for_inbox_rows(2, timeout=90)
    hung = next(row for row in rows if row["source"] == "hangs.png")
    assert hung["status"] == "error"
    assert "time limit" in hung["error"] and "DIGITS_TASK_TIME_LIMIT" in hung["error"]
    wait_until(lambda: (stack.failed / "hangs.png").exists(), 10, "the file in failed/")
    assert "time limit" in (stack.failed / "hangs.png.error.txt").read_text()
    # The worker goes on serving with a fresh pool process.
    stack.drop("after.png", encode(draw_digits("77")))
    rows = stack.wait_for_inbox_rows(3, timeout=60)
    assert next(row for row in rows if row["source"] == "after.png")["digits"] == "77"


def test_the_ingester_killed_with_a_backlog_and_restarted_loses_and_doubles_nothing(stack):
    # Small batches, so that rows come a few at a time: with batches of 32, a fast machine read
    # and collected all 40 files of an earlier version of this test by the time it looked.
    stack.start_worker(concurrency=2, name="steady", DIGITS_BATCH_SIZE="2")
    ingester = stack.start_ingester()
    expected = drop_many(stack, 80, "backlog")
    wait_until(lambda: len(stack.inbox_rows()) >= 3, 120, "the first rows", interval=0.01)
    ingester.kill()  # kill -9, mid-backlog: files in the inbox, in processing/, queued and in progress
    ingester.wait()
    in_flight = [p for p in stack.processing.rglob("*.png")] + list(stack.inbox.glob("*.png"))
    assert len(in_flight) >= 10, "the ingester died with no backlog; the test proved nothing"
    expected |= drop_many(stack, 10, "while-down")  # the scanner goes on while it is down
    stack.start_ingester()
    stack.wait_for_inbox_rows(90, timeout=180)
    time.sleep(2)  # a file sent twice would show up as a doubled row now
    assert_each_file_once(stack, expected)


def test_a_full_results_disk_leaves_no_partial_rows_and_the_rows_come_when_there_is_room(stack):
    worker = stack.start_worker(concurrency=1, name="cramped")
    stack.start_ingester()
    stack.drop("room-12.png", encode(draw_digits("12")))
    stack.wait_for_inbox_rows(1, timeout=60)
    [csv_path] = (stack.results / "inbox").glob("*.csv")
    size = csv_path.stat().st_size
    [pool] = children(worker.pid)
    # The disk is full: the pool process may not grow any file by more than a few bytes
    # (a write past the limit fails with EFBIG after writing what fits, as ENOSPC does).
    subprocess.run(["prlimit", "--pid", str(pool), f"--fsize={size + 40}:unlimited"], check=True)
    expected = {"room-12.png": "12"} | drop_many(stack, 3, "full")
    time.sleep(6)  # several attempts fail meanwhile
    assert csv_path.stat().st_size == size, "a partial row was left behind"
    assert len(stack.inbox_rows()) == 1

    subprocess.run(["prlimit", "--pid", str(pool), "--fsize=unlimited"], check=True)  # room again
    stack.wait_for_inbox_rows(4, timeout=120)
    time.sleep(1)
    assert_each_file_once(stack, expected)
    # The pool process could not log while the disk was full; its parent logged each retry's arrival
    # (a file whose batch could not write it is tried again on its own, as digits.recognize_one).
    log = "".join(p.read_text(errors="replace") for p in stack.root.glob("worker-*.log"))
    arrivals = Counter(re.findall(r"Task digits.recognize(?:_one)?\[([0-9a-f-]+)\] received", log))
    assert sum(n > 1 for n in arrivals.values()) == 3, "the writes were not retried"


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_a_read_only_results_folder_holds_the_rows_back_until_it_is_writable(stack):
    worker = stack.start_worker(concurrency=1, name="readonly")
    stack.start_ingester()
    stack.drop("rw-34.png", encode(draw_digits("34")))
    stack.wait_for_inbox_rows(1, timeout=60)
    folder = stack.results / "inbox"
    if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,ro,bind", str(folder))):
        subprocess.run(["umount", str(folder)], capture_output=True)  # a bind that could not be made read-only
        pytest.skip("making a folder read-only for root needs a bind mount, and mount is not permitted here")
    try:
        [csv_path] = folder.glob("*.csv")
        before = csv_path.read_bytes()
        expected = {"rw-34.png": "34"} | drop_many(stack, 2, "ro")
        time.sleep(5)  # several attempts fail meanwhile
        assert csv_path.read_bytes() == before
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    stack.wait_for_inbox_rows(3, timeout=120)
    time.sleep(1)
    assert_each_file_once(stack, expected)
    assert worker.poll() is None


def test_a_batch_stopped_at_the_time_limit_is_read_again_file_by_file(stack):
    from celery import states

    from digits.celery_app import make_app, task_states

    stack.start_ingester()
    expected = drop_many(stack, 6, "batched")
    wait_until(lambda: len(list(stack.processing.iterdir())) == 6, 60, "all 6 files queued")
    # All six are queued before the worker starts, and it waits long enough to take them as one batch.
    worker = stack.start_worker(concurrency=1, name="slowbatch", DIGITS_TASK_TIME_LIMIT="20", DIGITS_BATCH_WAIT="2")
    celery = make_app(stack.redis_url)

    def batch_started() -> bool:
        started = [m for m in task_states(celery, _waiting(stack)).values()]
        return any(m["status"] == states.STARTED and m["result"]["batch"] > 1 for m in started)

    wait_until(batch_started, 60, "a batch of several files to start", interval=0.01)
    [pool] = children(worker.pid)
    os.kill(pool, signal.SIGSTOP)  # the batch hangs: none of its files is to blame yet
    stack.wait_for_inbox_rows(6, timeout=120)
    time.sleep(1)
    assert_each_file_once(stack, expected)  # each read again on its own, and right
    log = "".join(p.read_text(errors="replace") for p in stack.root.glob("worker-*.log"))
    assert "ran out of time; reading each on its own" in log
    assert not list(stack.failed.glob("*.png"))
