"""The Celery tasks a worker runs: recognise a file (or each page of a long one) and append its rows to the CSV.

The model is loaded on the first task of each pool process and kept: loading
it in ``worker_process_init`` would exceed Celery's 4 s start-up allowance for
a pool process, and loading it in the parent before fork would share
TensorFlow's threads across processes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from celery import chord, group
from celery.signals import worker_process_init
from redis import Redis
from redis.exceptions import RedisError

from digits.celery_app import RECOGNIZE_PAGE_TASK, RECOGNIZE_TASK, WRITE_PAGES_TASK, app
from digits.layouts import LayoutError, load_layout
from digits.results import DUPLICATE, ERROR, MARK_TTL_SECONDS, append_rows, error_row, inbox_csv, job_csv
from digits.settings import get_settings
from worker.annotate import Pictures
from worker.imaging import UnreadableImage, decode_pages
from worker.model import Models, get_models, limit_threads
from worker.pipeline import recognize_pages

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


RETRIED = {
    # A full or read-only results disk, or Redis away for a moment: try again
    # later rather than lose the file.
    "autoretry_for": (OSError, RedisError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 10,
}
"""Retry policy of every task that writes results."""


@app.task(name=RECOGNIZE_TASK, bind=True, **RETRIED)
def recognize(self, drop: dict) -> dict:
    """Recognise the file carried in ``drop`` and write its rows once.

    ``drop`` holds ``kind`` (``inbox`` or ``job``), ``job_id``, ``source``,
    ``layout`` (a layout name, or None for whole pages), ``annotate`` (a
    picture for every row, not only rows to review) and ``data`` (the file's
    bytes, base64). Returns the rows and the CSV path.

    A document with more pages than ``split_above_pages`` is handed on as one
    task per page (a chord); the task writing its rows inherits this task's id,
    so whoever waits for this task gets all the rows, written once.
    """
    settings = get_settings()
    data = base64.b64decode(drop["data"])
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        layout = load_layout(drop["layout"], settings.layouts) if drop.get("layout") else None
        pages = decode_pages(data)
    except (LayoutError, UnreadableImage) as problem:
        rows = [error_row(drop["job_id"], drop["source"], sha256, models().label, f"{drop['source']}: {problem}")]
        return _write(drop, rows, self.request.id)
    if len(pages) > settings.split_above_pages:
        about = {key: value for key, value in drop.items() if key != "data"} | {"sha256": sha256}
        per_page = group(recognize_page.s(about | {"page": n, "png": _png(page)}) for n, page in enumerate(pages, 1))
        log.info("%s: %d pages, read one task per page", drop["source"], len(pages))
        return self.replace(chord(per_page, write_pages.s(about)))
    rows = recognize_pages(
        pages, drop["source"], drop["job_id"], sha256, models(), settings.review_threshold, layout, _pictures(drop)
    )
    return _write(drop, rows, self.request.id)


@app.task(name=RECOGNIZE_PAGE_TASK, **RETRIED)
def recognize_page(page: dict) -> list[dict]:
    """Rows of one page of a split document: ``page`` is its drop without ``data``, plus ``page`` and ``png``."""
    settings = get_settings()
    layout = load_layout(page["layout"], settings.layouts) if page.get("layout") else None
    image = decode_pages(base64.b64decode(page["png"]))
    return recognize_pages(
        image, page["source"], page["job_id"], page["sha256"], models(), settings.review_threshold, layout,
        _pictures(page), first_page=page["page"],
    )  # fmt: skip


@app.task(name=WRITE_PAGES_TASK, bind=True, **RETRIED)
def write_pages(self, pages_rows: list[list[dict]], drop: dict) -> dict:
    """Write the rows of every page of a split document at once (the chord's results come in page order)."""
    return _write(drop, [row for rows in pages_rows for row in rows], self.request.id)


def _write(drop: dict, rows: list[dict], drop_id: str) -> dict:
    """Append a drop's rows to its CSV once; the result the ingester and ``Job`` read."""
    settings = get_settings()
    if drop["kind"] == INBOX_JOB:
        rows = _marked_if_seen(rows, drop.get("inbox", ""), drop_id)
        path = inbox_csv(settings.results, _row_time(rows[0]))
    else:
        path = job_csv(settings.results, drop["job_id"])
    written = append_rows(path, rows, drop_id=drop_id, marks=_marks())
    if not written:
        log.info("rows of %s (%s) were already written; not writing them again", drop["source"], drop_id)
    errors = [row["error"] for row in rows if row["status"] == ERROR]
    return {"rows": rows, "csv": str(path), "error": "; ".join(errors)}


def _marked_if_seen(rows: list[dict], inbox: str, drop_id: str) -> list[dict]:
    """The rows, with status ``duplicate`` if the same bytes came through this inbox before.

    A scan dropped twice (or copied under another name) would otherwise pay a
    cheque twice. The first drop of some content claims its hash in Redis (for
    ``MARK_TTL_SECONDS``); later drops of it into the same inbox are read and
    written, but marked, naming the first. A submitted job is a deliberate
    request and is never marked.
    """
    first = rows[0]
    if first["status"] == ERROR or not first["sha256"]:
        return rows
    key = f"digits:seen:{hashlib.sha256(inbox.encode()).hexdigest()[:16]}:{first['sha256']}"
    claim = json.dumps({"drop_id": drop_id, "source": first["source"], "at": first["processed_at"]})
    if _marks().set(key, claim, nx=True, ex=MARK_TTL_SECONDS):
        return rows
    earlier = json.loads(_marks().get(key) or claim)
    if earlier["drop_id"] == drop_id:
        return rows  # this very drop, delivered again after a worker died
    reason = (
        f"{first['source']}: the same file as {earlier['source']}, taken at {earlier['at']} "
        f"(drop {earlier['drop_id']}); only that one's rows count"
    )
    return [row | {"status": DUPLICATE, "error": reason} for row in rows]


def _pictures(drop: dict) -> Pictures:
    return Pictures(_csv_folder(drop, get_settings().results), every_row=bool(drop.get("annotate")))


def _png(page: np.ndarray) -> str:
    """A decoded page as base64 PNG, small enough to travel in its own task."""
    ok, data = cv2.imencode(".png", page)
    if not ok:
        raise UnreadableImage("a page could not be encoded for its own task")
    return base64.b64encode(data.tobytes()).decode("ascii")


def _csv_folder(drop: dict, results: Path) -> Path:
    """The folder of the CSV a drop's rows go to (its review pictures go below it)."""
    if drop["kind"] == INBOX_JOB:
        return inbox_csv(results, dt.datetime.now(dt.UTC)).parent
    return job_csv(results, drop["job_id"]).parent


def _row_time(row: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(row["processed_at"].replace("Z", "+00:00"))
