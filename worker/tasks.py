"""The Celery task a worker runs: recognise one file and append its rows to the CSV.

The model is loaded on the first task of each pool process and kept: loading
it in ``worker_process_init`` would exceed Celery's 4 s start-up allowance for
a pool process, and loading it in the parent before fork would share
TensorFlow's threads across processes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

from celery.signals import worker_process_init
from redis import Redis
from redis.exceptions import RedisError

from digits.celery_app import RECOGNIZE_TASK, app
from digits.layouts import LayoutError, load_layout
from digits.results import ERROR, append_rows, error_row, inbox_csv, job_csv
from digits.settings import get_settings
from worker.annotate import Pictures
from worker.model import Models, get_models, limit_threads
from worker.pipeline import recognize_bytes

log = logging.getLogger(__name__)

PROCESSES_ENV = "DIGITS_WORKER_PROCESSES"
"""Set by ``digits worker`` to its pool size, so each process takes its share of the cores."""

INBOX_JOB = "inbox"
"""``kind`` of a drop that came through the inbox (the other kind is ``job``)."""


@worker_process_init.connect
def _limit_threads(**_: object) -> None:
    settings = get_settings()
    processes = int(os.environ.get(PROCESSES_ENV, "1"))
    limit_threads(settings.tf_threads or max(1, (os.cpu_count() or 1) // processes))


@lru_cache(maxsize=1)
def _marks() -> Redis:
    return Redis.from_url(get_settings().redis_url)


def models() -> Models:
    """This process's models, loaded on first use."""
    return get_models(get_settings())


@app.task(
    name=RECOGNIZE_TASK,
    bind=True,
    # A full or read-only results disk, or Redis away for a moment: try again
    # later rather than lose the file.
    autoretry_for=(OSError, RedisError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def recognize(self, drop: dict) -> dict:
    """Recognise the file carried in ``drop`` and write its rows once.

    ``drop`` holds ``kind`` (``inbox`` or ``job``), ``job_id``, ``source``,
    ``layout`` (a layout name, or None for whole pages), ``annotate`` (a
    picture for every row, not only rows to review) and ``data`` (the file's
    bytes, base64). Returns the rows and the CSV path.
    """
    settings = get_settings()
    data = base64.b64decode(drop["data"])
    try:
        layout = load_layout(drop["layout"], settings.layouts) if drop.get("layout") else None
    except LayoutError as problem:
        sha256 = hashlib.sha256(data).hexdigest()
        rows = [error_row(drop["job_id"], drop["source"], sha256, models().label, f"{drop['source']}: {problem}")]
    else:
        pictures = Pictures(_csv_folder(drop, settings.results), every_row=bool(drop.get("annotate")))
        rows = recognize_bytes(
            data, drop["source"], drop["job_id"], models(), settings.review_threshold, layout, pictures
        )
    if drop["kind"] == INBOX_JOB:
        path = inbox_csv(settings.results, _row_time(rows[0]))
    else:
        path = job_csv(settings.results, drop["job_id"])
    written = append_rows(path, rows, drop_id=self.request.id, marks=_marks())
    if not written:
        log.info("rows of %s (%s) were already written; not writing them again", drop["source"], self.request.id)
    errors = [row["error"] for row in rows if row["status"] == ERROR]
    return {"rows": rows, "csv": str(path), "error": "; ".join(errors)}


def _csv_folder(drop: dict, results: Path) -> Path:
    """The folder of the CSV a drop's rows go to (its review pictures go below it)."""
    if drop["kind"] == INBOX_JOB:
        return inbox_csv(results, dt.datetime.now(dt.UTC)).parent
    return job_csv(results, drop["job_id"]).parent


def _row_time(row: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(row["processed_at"].replace("Z", "+00:00"))
