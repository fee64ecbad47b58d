"""Long documents: read one task per page by the page workers, their rows written once, in page order."""

from __future__ import annotations

import os
import re
from collections import Counter

from digits.cli import PAGE_WORKER_NICENESS
from digits.layouts import load_layout
from digits.results import read_rows
from digits.samples import SAMPLE_VALUES, draw_page, scan_bytes
from layouts import FOLDER


def test_a_six_page_pdf_is_read_one_task_per_page_and_written_once(stack):
    from digits.celery_app import make_app
    from ingest import submit

    layout = load_layout("form", FOLDER)
    values = SAMPLE_VALUES["form"] * 3
    pages = [draw_page(layout, page_values, seed=i) for i, page_values in enumerate(values)]
    files = stack.start_worker(concurrency=1, name="files")
    worker = stack.start_worker(concurrency=2, name="pages", pages=True)
    # Pages are read at a lower CPU priority than files, on a machine that reads both.
    niceness = [os.getpriority(os.PRIO_PROCESS, process.pid) for process in (files, worker)]
    assert niceness[1] - niceness[0] == PAGE_WORKER_NICENESS
    celery = make_app(stack.redis_url)
    job = submit([("six.pdf", scan_bytes(pages, ".pdf"))], layout="form", celery=celery)
    job.wait(timeout=180)

    expected = [(str(n), field, digits) for n, page in enumerate(values, 1) for field, digits in page.items()]
    rows = read_rows(stack.results / "jobs" / f"{job.id}.csv")
    assert [(r["page"], r["field"], r["digits"]) for r in rows] == expected
    assert {r["source"] for r in rows} == {"six.pdf"}
    assert len({r["sha256"] for r in rows}) == 1, "every page's rows carry the document's hash"
    # What the client gets back is the same rows, through the id it was given.
    assert [(str(r["page"]), r["field"], r["digits"]) for r in job.rows()] == expected

    # Celery logs "[…: INFO/ForkPoolWorker-2] Task digits.recognize_page[<id>] succeeded in …" per task.
    log = (stack.root / "worker-1.log").read_text(errors="replace")  # the page worker's
    done = re.findall(r"INFO/(\S+)\] Task (\S+?)\[[^]]+\] succeeded in", log)
    assert Counter(task for _, task in done) == {"digits.recognize_page": 6, "digits.write_pages": 1}
    assert len({process for process, task in done if task == "digits.recognize_page"}) == 2, "both processes read pages"
    assert worker.poll() is None


def test_a_two_page_form_stays_one_task(stack):
    from digits.celery_app import make_app
    from ingest import submit

    layout = load_layout("form", FOLDER)
    pages = [draw_page(layout, page_values, seed=i) for i, page_values in enumerate(SAMPLE_VALUES["form"])]
    stack.start_worker(concurrency=1, name="short")
    job = submit([("two.tif", scan_bytes(pages, ".tif"))], layout="form", celery=make_app(stack.redis_url))
    job.wait(timeout=120)
    assert len(job.rows()) == 8
    log = "".join(path.read_text(errors="replace") for path in stack.root.glob("worker-*.log"))
    assert "Task digits.recognize_page[" not in log
