"""The Celery tasks a worker runs: read files in batches (a long one page by page), append their rows to the CSV.

Each pool process loads the models once, in a thread it starts as it starts:
loading them inside ``worker_process_init`` would exceed Celery's 4 s start-up
allowance for a pool process, and loading them in the parent before fork would
share TensorFlow's threads across processes. A task that comes first waits for
them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from celery import Signature, chord, group
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init
from celery_batches import SimpleRequest
from kombu.exceptions import OperationalError
from redis import Redis
from redis.exceptions import RedisError

from digits.celery_app import RECOGNIZE_ONE_TASK, RECOGNIZE_PAGE_TASK, RECOGNIZE_TASK, WRITE_PAGES_TASK, app
from digits.layouts import LayoutError, load_layout
from digits.logs import reformat
from digits.results import (
    DUPLICATE,
    ERROR,
    MARK_TTL_SECONDS,
    append_drops,
    append_rows,
    error_row,
    inbox_csv,
    job_csv,
)
from digits.rollout import active
from digits.settings import get_settings
from digits.status import count_written
from worker import metrics
from worker.annotate import Pictures
from worker.batching import FileBatches
from worker.imaging import UnreadableImage, decode_pages
from worker.model import Models, get_models, limit_threads, padded_sizes
from worker.model_store import ModelNotFound
from worker.pipeline import Document, open_document, recognize_documents

log = logging.getLogger(__name__)

PROCESSES_ENV = "DIGITS_WORKER_PROCESSES"
"""Set by ``digits worker`` to its pool size, so each process takes its share of the cores."""

INBOX_JOB = "inbox"
"""``kind`` of a drop that came through the inbox (the other kind is ``job``)."""


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    metrics.serve(get_settings().metrics_port)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_: object) -> None:
    reformat(logger, get_settings().log_format)


@worker_process_init.connect
def _prepare_process(**_: object) -> None:
    settings = get_settings()
    processes = int(os.environ.get(PROCESSES_ENV, "1"))
    limit_threads(settings.tf_threads or max(1, (os.cpu_count() or 1) // processes))
    # Load the models now, beside the pool's start-up rather than inside it (Celery allows a
    # pool process 4 s to start), so that no process is still cold when work arrives: a
    # batch that waited for its process to load them took 4 s instead of 0.3 s.
    threading.Thread(target=_load_and_warm_up, name="load-models", daemon=True).start()


_warming = threading.Lock()
"""Held while this process loads its models and warms them up; tasks wait for it."""


def _load_and_warm_up() -> None:
    smallest, *others = padded_sizes()
    with _warming:
        loaded = _load_chosen()
        loaded.warm_up([smallest])  # what a lone file needs
    # The larger sizes are traced while the first files may already be read: tracing them
    # all first kept the first file of a cold start waiting 3-4 s more on a slow machine.
    loaded.warm_up(others)


@lru_cache(maxsize=1)
def _marks() -> Redis:
    return Redis.from_url(get_settings().redis_url)


def models() -> Models:
    """This process's models, once loaded and warmed up."""
    with _warming:
        return _load_chosen()


@lru_cache(maxsize=1)
def _load_chosen() -> Models:
    """The models rolled out to the workers (``digits models rollout``), or else the settings' own.

    A worker whose store lacks the rolled-out models (a node set up before they
    were copied to it) reads with the settings' own rather than fail every file,
    and says so; the ``model`` column shows which read each row. Asked once per
    process: a new pool process is started to change them.
    """
    settings = get_settings()
    try:
        choice = active(_marks(), settings)
    except RedisError as problem:
        log.warning("cannot ask Redis which models are rolled out (%s); reading with the settings' own", problem)
        return get_models(settings)
    try:
        return get_models(settings.model_copy(update={"model": choice.model, "string_model": choice.string_model}))
    except ModelNotFound as missing:
        log.error("the models rolled out are not in this worker's store (%s); reading with %s", missing, settings.model)
        return get_models(settings)


RETRIED = {
    # A full or read-only results disk, or Redis away for a moment: try again
    # later rather than lose the file.
    "autoretry_for": (OSError, RedisError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 10,
}
"""Retry policy of every task that writes results."""


@app.task(
    name=RECOGNIZE_TASK, base=FileBatches, flush_every=get_settings().batch_size,
    flush_interval=get_settings().batch_wait,
)  # fmt: skip
def recognize(requests: list[SimpleRequest]) -> metrics.Batch:
    """Recognise the files of a batch of ``digits.recognize`` messages together, and write each one's rows once.

    Each message carries one drop (see ``recognize_one``). A file whose rows
    cannot be written now (a full disk, Redis away) is handed on to
    ``recognize_one`` under the same task id, whose retries back off. Returns
    what was done, for the metrics; files that could not even be handed on
    are listed in it, and go back to the queue.
    """
    batch, readable, to_write = metrics.Batch(), [], []
    started = time.perf_counter()
    for request in requests:
        recognize.backend.mark_as_started(request.id, pid=os.getpid(), batch=len(requests))
    for request in requests:
        drop = request.args[0]
        try:
            opened = _open(drop, request.id)
            if isinstance(opened, Signature):
                opened.apply_async()  # a long document, read page by page
                continue
        except (OSError, RedisError, OperationalError) as problem:
            _hand_on(request, problem, batch)
            continue
        if isinstance(opened, Document):
            readable.append((request, drop, opened))
        else:
            to_write.append((request, drop, opened))  # its error row
    reading = 0.0
    if readable:
        documents = [document for *_, document in readable]
        reading = time.perf_counter()
        all_rows = recognize_documents(documents, models(), get_settings().review_threshold)
        reading = time.perf_counter() - reading
        to_write += [(request, drop, rows) for (request, drop, _), rows in zip(readable, all_rows, strict=True)]
    _write_batch(to_write, batch)
    batch.seconds = time.perf_counter() - started
    log.info("read a batch of %d files in %.0f ms (%.0f ms of it recognising them)",
             len(requests), 1000 * batch.seconds, 1000 * reading)  # fmt: skip
    return batch


def _hand_on(request: SimpleRequest, problem: Exception, batch: metrics.Batch) -> None:
    """Send a batched file that failed on the way to ``recognize_one``, to be retried, or else back to the queue."""
    log.warning("%s: %s; trying it again on its own", request.args[0]["source"], problem)
    try:
        recognize_one.apply_async(request.args, task_id=request.id, countdown=RETRIED["retry_backoff"])
        batch.handed_on += 1
    except (RedisError, OperationalError):
        batch.unfinished.append(request.id)


@app.task(name=RECOGNIZE_ONE_TASK, bind=True, **RETRIED)
def recognize_one(self, drop: dict) -> dict:
    """Recognise the file carried in ``drop`` and write its rows once.

    ``drop`` holds ``kind`` (``inbox`` or ``job``), ``job_id``, ``source``,
    ``layout`` (a layout name, or None for whole pages), ``annotate`` (a
    picture for every row, not only rows to review), ``queued_at`` (when it
    was sent, for the latency metric) and ``data`` (the file's bytes, base64).
    Returns the rows and the CSV path.

    Files normally come in batches (``recognize``); this reads one on its own,
    with Celery's retries, when its batch ran out of time or failed, or its
    rows could not be written.
    """
    opened = _open(drop, self.request.id)
    if isinstance(opened, Signature):
        return self.replace(opened)
    if isinstance(opened, Document):
        opened = recognize_documents([opened], models(), get_settings().review_threshold)[0]
    return _write(drop, opened, self.request.id)


def _open(drop: dict, drop_id: str) -> Document | list[dict] | Signature:
    """A drop decoded for reading; its error row if it cannot be; for a long document, the tasks to send.

    A document with more pages than ``split_above_pages`` is read one task per
    page (a chord) whose last task writes all its rows under the drop's task
    id, so whoever waits for the drop gets them, written once.
    """
    settings = get_settings()
    data = base64.b64decode(drop["data"])
    try:
        layout = load_layout(drop["layout"], settings.layouts) if drop.get("layout") else None
        document = open_document(data, drop["source"], drop["job_id"], layout, _pictures(drop))
    except (LayoutError, UnreadableImage) as problem:
        sha256 = hashlib.sha256(data).hexdigest()
        return [error_row(drop["job_id"], drop["source"], sha256, models().label, f"{drop['source']}: {problem}")]
    if len(document.pages) > settings.split_above_pages:
        log.info("%s: %d pages, read one task per page", drop["source"], len(document.pages))
        about = {key: value for key, value in drop.items() if key != "data"} | {"sha256": document.sha256}
        pages = enumerate(document.pages, 1)
        per_page = group(recognize_page.s(about | {"page": n, "png": _png(page)}) for n, page in pages)
        return chord(per_page, write_pages.s(about).set(task_id=drop_id))
    return document


def _finish(request: SimpleRequest, drop: dict, result: dict, batch: metrics.Batch) -> None:
    """Store a batched file's result under its own task id, where the ingester and ``Job`` look; count it."""
    recognize.backend.mark_as_done(request.id, result, request=request)
    batch.written(result["rows"], drop.get("queued_at"), time.time())


@app.task(name=RECOGNIZE_PAGE_TASK, **RETRIED)
def recognize_page(page: dict) -> list[dict]:
    """Rows of one page of a split document: ``page`` is its drop without ``data``, plus ``page`` and ``png``."""
    settings = get_settings()
    layout = load_layout(page["layout"], settings.layouts) if page.get("layout") else None
    image = decode_pages(base64.b64decode(page["png"]))
    document = Document(
        image, page["source"], page["job_id"], page["sha256"], layout, _pictures(page), first_page=page["page"]
    )
    return recognize_documents([document], models(), settings.review_threshold)[0]


@app.task(name=WRITE_PAGES_TASK, bind=True, **RETRIED)
def write_pages(self, pages_rows: list[list[dict]], drop: dict) -> dict:
    """Write the rows of every page of a split document at once (the chord's results come in page order)."""
    return _write(drop, [row for rows in pages_rows for row in rows], self.request.id)


def _write(drop: dict, rows: list[dict], drop_id: str) -> dict:
    """Append a drop's rows to its CSV once; the result the ingester and ``Job`` read."""
    rows, path = _destination(drop, rows, drop_id)
    if append_rows(path, rows, drop_id=drop_id, marks=_marks()):
        count_written(_marks())
    else:
        log.info("rows of %s (%s) were already written; not writing them again", drop["source"], drop_id)
    return _result(rows, path)


def _write_batch(items: list[tuple[SimpleRequest, dict, list[dict]]], batch: metrics.Batch) -> None:
    """Append the rows of a batch's files, one write per CSV, each file once; store each file's result.

    Files of a CSV that cannot be written now are handed on, to be retried one by one.
    """
    by_path: dict[Path, list[tuple[SimpleRequest, dict, list[dict]]]] = {}
    for request, drop, rows in items:
        try:
            rows, path = _destination(drop, rows, request.id)
        except RedisError as problem:
            _hand_on(request, problem, batch)
            continue
        by_path.setdefault(path, []).append((request, drop, rows))
    for path, same_csv in by_path.items():
        try:
            written = append_drops(path, [(request.id, rows) for request, _, rows in same_csv], _marks())
            count_written(_marks(), sum(written))
            for request, drop, rows in same_csv:
                _finish(request, drop, _result(rows, path), batch)
        except (OSError, RedisError) as problem:
            for request, *_ in same_csv:
                _hand_on(request, problem, batch)


def _destination(drop: dict, rows: list[dict], drop_id: str) -> tuple[list[dict], Path]:
    """A drop's rows as they are to be written (marked if a duplicate), and the CSV they go to."""
    settings = get_settings()
    if drop["kind"] == INBOX_JOB:
        rows = _marked_if_seen(rows, drop.get("inbox", ""), drop_id)
        return rows, inbox_csv(settings.results, _row_time(rows[0]))
    return rows, job_csv(settings.results, drop["job_id"])


def _result(rows: list[dict], path: Path) -> dict:
    """What a drop's task returns: its rows, its CSV, and its errors (empty when it was read)."""
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
