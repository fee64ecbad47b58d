"""The Celery tasks a worker runs: read files in batches (a long one page by page), append their rows to the CSV.

Files go through the ``digits`` queue, read by ``digits worker``; the pages of
long documents through ``digits.pages``, read by ``digits worker --pages``.

Each pool process loads the models once, in a thread it starts as it starts:
loading them inside ``worker_process_init`` would exceed Celery's 4 s start-up
allowance for a pool process, and loading them in the parent before fork would
share TensorFlow's threads across processes. A task that comes first waits for
them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from celery import Signature, chord, group, states
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init
from celery_batches import SimpleRequest
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from redis import Redis
from redis.exceptions import RedisError

from digits.celery_app import (
    DOCUMENT_KEY,
    RECOGNIZE_ONE_TASK,
    RECOGNIZE_PAGE_TASK,
    RECOGNIZE_TASK,
    WRITE_PAGES_TASK,
    app,
)
from digits.contracts import DUPLICATE, ERROR, INBOX, FileResult, FileTask, PageTask, Row, files_of
from digits.layouts import LayoutError, load_layout
from digits.logs import reformat
from digits.readiness import announce_ready
from digits.recognition.annotate import Pictures
from digits.recognition.imaging import UnreadableImage, check_page_count, count_pages, decode_pages
from digits.recognition.model import PADDED_SIZES, Models, get_models, limit_threads
from digits.recognition.pipeline import Document, open_document, recognize_documents
from digits.results import append_drops, append_rows, inbox_csv, job_csv
from digits.reviews import ReviewQueue, items_of
from digits.rollout import active
from digits.settings import get_settings
from digits.store import ModelNotFound
from digits.throughput import count_written
from worker import metrics
from worker.batching import FileBatches

log = logging.getLogger(__name__)

PROCESSES_ENV = "DIGITS_WORKER_PROCESSES"
"""Set by ``digits worker`` to its pool size, so each process takes its share of the cores."""

PAGES_ENV = "DIGITS_WORKER_PAGES"
"""Set (to 1) by ``digits worker --pages``: a page worker's processes trace every batch size before
they say they are warm, as nothing is kept waiting by a page worker's start."""


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    settings = get_settings()
    metrics.serve(settings.metrics_port, settings.metrics_host)


@worker_init.connect
def _warn_if_redis_evicts(**_: object) -> None:
    # A Redis that evicts keys when full could drop the marks that keep rows from being written twice.
    try:
        policy = _marks().config_get("maxmemory-policy").get("maxmemory-policy", "noeviction")
    except RedisError:
        return  # managed services may refuse CONFIG; `digits status` shows the policy too
    if policy != "noeviction":
        log.warning(
            "Redis evicts keys when its memory is full (maxmemory-policy %s): the marks that keep rows from being "
            "written twice could go. Set maxmemory-policy noeviction in its configuration.",
            policy,
        )


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
    # batch that has to wait for its process to load them takes many times longer.
    threading.Thread(target=_load_and_warm_up, name="load-models", daemon=True).start()


_warming = threading.Lock()
"""Held while this process loads its models and warms them up; tasks wait for it."""


def _load_and_warm_up() -> None:
    # A file worker traces the smallest batch size (what a lone file needs) before it says it is
    # warm, and the larger ones while it may already be reading, so that the first file of a cold
    # start does not wait for them; a page worker, which nobody waits for, traces them all first.
    sizes = PADDED_SIZES
    first, later = (sizes, ()) if os.environ.get(PAGES_ENV) else (sizes[:1], sizes[1:])
    with _warming:
        loaded = _models_for(_chosen())
        loaded.warm_up(first)
    try:
        announce_ready(_marks())
    except RedisError as problem:
        log.warning("cannot tell Redis that this process is ready (%s); it reads all the same", problem)
    loaded.warm_up(later)


@lru_cache(maxsize=1)
def _marks() -> Redis:
    return Redis.from_url(get_settings().redis_url)


def models() -> Models:
    """The models rolled out to the workers now, loaded once in this process and kept.

    Asked at every batch, for one Redis read: a roll-out restarts the pool, but
    a pool process idle at that moment reads one more batch before it leaves
    (billiard looks at its restart flag only between jobs), and that batch must
    not be read with the models rolled away.
    """
    with _warming:
        return _models_for(_chosen())


_loaded: dict[tuple[str, str], Models] = {}
"""This process's models by their (model, string model) specs: the set it reads with now."""


def _chosen() -> tuple[str, str]:
    """The (model, string model) specs rolled out (``digits models rollout``), or else the settings' own.

    With Redis away, the models this process holds go on reading (the settings'
    own if it holds none).
    """
    settings = get_settings()
    try:
        choice = active(_marks(), settings)
    except RedisError as problem:
        log.warning("cannot ask Redis which models are rolled out (%s); reading with those at hand", problem)
        return next(iter(_loaded), (settings.model, settings.string_model))
    return choice.model, choice.string_model


def _models_for(specs: tuple[str, str]) -> Models:
    """The models ``specs`` name, loaded on first use.

    A worker whose store lacks the rolled-out models (a node set up before they
    were copied to it) reads with the settings' own rather than fail every file,
    and says so; the ``model`` column shows which read each row.
    """
    if specs not in _loaded:
        _loaded.clear()
        settings = get_settings()
        try:
            _loaded[specs] = get_models(settings.model_copy(update={"model": specs[0], "string_model": specs[1]}))
        except ModelNotFound as missing:
            log.error("the models rolled out are not in this worker's store (%s); reading with %s", missing,
                      settings.model)  # fmt: skip
            _loaded[specs] = get_models(settings)
    return _loaded[specs]


RETRIED = {
    # A full or read-only results disk, or Redis away for a moment: try again
    # later rather than lose the file.
    "autoretry_for": (OSError, RedisError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 10,
}
"""Retry policy of every task that writes results."""


class _File(NamedTuple):
    """A file of a batch: the message that brought it, the id its result is stored under, and the file."""

    message: SimpleRequest
    id: str
    task: FileTask


@app.task(
    name=RECOGNIZE_TASK, base=FileBatches, flush_every=get_settings().batch_size,
    flush_interval=get_settings().batch_wait,
)  # fmt: skip
def recognize(requests: list[SimpleRequest]) -> metrics.Batch:
    """Recognise the files of a batch of ``digits.recognize`` messages together, and write each one's rows once.

    Each message is a ``FileTask``, or a ``FileChunk`` of files that arrived
    together; each file's result is stored under its own id. A file whose rows
    cannot be written now (a full disk, Redis away) is handed on to
    ``recognize_one`` under its id, whose retries back off. A message that is
    neither fails alone. Returns what was done, for the metrics; the messages
    of files that could not even be handed on are listed in it, and go back to
    the queue.
    """
    batch, readable, to_write = metrics.Batch(), [], []
    started = time.perf_counter()
    files = []
    for request in requests:
        try:
            files += [_File(request, file_id, task) for file_id, task in files_of(request.args[0], request.id)]
        except (ValidationError, IndexError) as problem:
            log.error("refused message %s: it is not a file to read (%s)", request.id, problem)
            recognize.backend.mark_as_failure(request.id, ValueError(f"not a file to read: {problem}"))
    batch.size = len(files)
    about = {"pid": os.getpid(), "batch": len(files)}
    recognize.backend.store_many([(file.id, about) for file in files], states.STARTED)
    for file in files:
        try:
            opened = _open(file.task, file.id)
            if isinstance(opened, Signature):
                opened.apply_async()  # a long document, read page by page
                continue
        except (OSError, RedisError, OperationalError) as problem:
            _hand_on(file, problem, batch)
            continue
        if isinstance(opened, Document):
            readable.append((file, opened))
        else:
            to_write.append((file, opened))  # its error row
    reading = 0.0
    if readable:
        documents = [document for _, document in readable]
        reading = time.perf_counter()
        all_rows = recognize_documents(documents, models(), get_settings().review_threshold)
        reading = time.perf_counter() - reading
        to_write += [(file, rows) for (file, _), rows in zip(readable, all_rows, strict=True)]
    _write_batch(to_write, batch)
    batch.seconds = time.perf_counter() - started
    log.info("read a batch of %d files in %.0f ms (%.0f ms of it recognising them)",
             len(files), 1000 * batch.seconds, 1000 * reading)  # fmt: skip
    return batch


def _hand_on(file: _File, problem: Exception, batch: metrics.Batch) -> None:
    """Send a batched file that failed on the way to ``recognize_one``, to be retried, or else its message back."""
    log.warning("%s: %s; trying it again on its own", file.task.source, problem)
    try:
        recognize_one.apply_async([file.task.model_dump()], task_id=file.id, countdown=RETRIED["retry_backoff"])
        batch.handed_on += 1
    except (RedisError, OperationalError):
        batch.unfinished.append(file.message.id)


@app.task(name=RECOGNIZE_ONE_TASK, bind=True, pydantic=True, **RETRIED)
def recognize_one(self, task: FileTask) -> FileResult:
    """Recognise the file a ``FileTask`` carries and write its rows once; its rows and CSV.

    Files normally come in batches (``recognize``); this reads one on its own,
    with Celery's retries, when its batch ran out of time or failed, or its
    rows could not be written.
    """
    opened = _open(task, self.request.id)
    if isinstance(opened, Signature):
        return self.replace(opened)
    if isinstance(opened, Document):
        opened = recognize_documents([opened], models(), get_settings().review_threshold)[0]
    return _write(task, opened, self.request.id)


def _open(task: FileTask, drop_id: str) -> Document | list[Row] | Signature:
    """A file decoded for reading; its error row if it cannot be; for a long document, the tasks to send.

    Pages are counted before any is decoded: a document over ``max_pages``
    gets its error row, and one over ``split_above_pages`` is read page by
    page (``_page_by_page``).
    """
    settings = get_settings()
    data = task.content()
    try:
        layout = load_layout(task.layout, settings.layouts) if task.layout else None
        pages = count_pages(data)
        check_page_count(pages, settings.max_pages)
        if pages > settings.split_above_pages:
            return _page_by_page(task, data, pages, drop_id)
        return open_document(data, task.source, task.job_id, layout, _pictures(task))
    except (LayoutError, UnreadableImage) as problem:
        sha256 = hashlib.sha256(data).hexdigest()
        return [Row.failed(task.job_id, task.source, sha256, models().label, f"{task.source}: {problem}")]


def _page_by_page(task: FileTask, data: bytes, pages: int, drop_id: str) -> Signature:
    """The tasks that read a long document: one per page on the pages queue, then one that writes all its rows.

    The document's bytes are stored once in Redis, for as long as results are
    kept; each page task renders its own page only, so that no process holds
    more than a page, however many the document has. The last task writes
    every row under the drop's task id, so whoever waits for the drop gets them,
    written once.
    """
    log.info("%s: %d pages, read one task per page", task.source, pages)
    key = DOCUMENT_KEY.format(drop_id=drop_id)
    _marks().set(key, data, ex=get_settings().result_seconds)
    about = task.model_copy(update={"data": ""})
    sha256 = hashlib.sha256(data).hexdigest()
    per_page = group(
        recognize_page.s(PageTask(file=about, sha256=sha256, page=n, document_key=key).model_dump())
        for n in range(1, pages + 1)
    )
    return chord(per_page, write_pages.s(about.model_dump(), key).set(task_id=drop_id))


@app.task(name=RECOGNIZE_PAGE_TASK, pydantic=True, ignore_result=True, **RETRIED)
def recognize_page(page: PageTask) -> list[dict]:
    """The rows of one page of a document read page by page; an error row for that page if it cannot be read.

    Its rows go only to the chord that gathers the pages (``write_pages``):
    kept as its own result too, every page would stay in Redis as long as a file does.
    """
    settings = get_settings()
    task = page.file
    data = _document(page.document_key)
    try:
        layout = load_layout(task.layout, settings.layouts) if task.layout else None
        if data is None:
            raise UnreadableImage(
                f"the document was no longer in Redis (kept DIGITS_RESULT_DAYS={settings.result_days:g}); drop it again"
            )
        image = decode_pages(data, range(page.page, page.page + 1))
    except (LayoutError, UnreadableImage) as problem:
        failed = Row.failed(task.job_id, task.source, page.sha256, models().label, f"{task.source}: {problem}")
        return [failed.model_copy(update={"page": page.page}).model_dump()]
    document = Document(image, task.source, task.job_id, page.sha256, layout, _pictures(task), first_page=page.page)
    return [row.model_dump() for row in recognize_documents([document], models(), settings.review_threshold)[0]]


_last_document: tuple[str, bytes] = ("", b"")
"""The document this process read a page of last, by its key: its next page task needs the same bytes."""


def _document(key: str) -> bytes | None:
    """The bytes of the long document stored under ``key``; None if they are gone."""
    global _last_document
    if _last_document[0] != key:
        data = _marks().get(key)
        if data is None:
            return None
        _last_document = (key, data)
    return _last_document[1]


@app.task(name=WRITE_PAGES_TASK, bind=True, pydantic=True, **RETRIED)
def write_pages(self, pages_rows: list[list[dict]], task: FileTask, document_key: str) -> FileResult:
    """Write the rows of every page of a document read page by page, at once (the chord gives them in page order).

    The document's stored bytes are then dropped: every page is read.
    """
    rows = [Row.model_validate(row) for page_rows in pages_rows for row in page_rows]
    result = _write(task, rows, self.request.id)
    _marks().delete(document_key)
    return result


def _write(task: FileTask, rows: list[Row], drop_id: str) -> FileResult:
    """Append a file's rows to its CSV once; the result the ingester and ``Job`` read."""
    [rows] = _marked_if_seen([(task, rows, drop_id)])
    path = _csv_of(task, rows)
    if append_rows(path, rows, drop_id=drop_id, marks=_marks()):
        count_written(_marks())
    else:
        log.info("rows of %s (%s) were already written; not writing them again", task.source, drop_id)
    _enqueue_for_people(rows, path)
    return FileResult.of(rows, str(path))


def _write_batch(items: list[tuple[_File, list[Row]]], batch: metrics.Batch) -> None:
    """Append the rows of a batch's files, one write per CSV, each file once; store each file's result.

    Files of a CSV that cannot be written now are handed on, to be retried one by one.
    Each file's result is stored under its own task id, where the ingester and
    ``Job`` look; Redis is asked a few times per batch, not a few times per file.
    """
    try:
        marked = _marked_if_seen([(file.task, rows, file.id) for file, rows in items])
    except RedisError as problem:
        for file, _ in items:
            _hand_on(file, problem, batch)
        return
    by_path: dict[Path, list[tuple[_File, list[Row]]]] = {}
    for (file, _), rows in zip(items, marked, strict=True):
        by_path.setdefault(_csv_of(file.task, rows), []).append((file, rows))
    for path, same_csv in by_path.items():
        try:
            written = append_drops(path, [(file.id, rows) for file, rows in same_csv], _marks())
            count_written(_marks(), sum(written))
            _enqueue_for_people([row for _, rows in same_csv for row in rows], path)
            results = [(file.id, FileResult.of(rows, str(path)).model_dump()) for file, rows in same_csv]
            recognize.backend.store_many(results, states.SUCCESS)
        except (OSError, RedisError) as problem:
            for file, _ in same_csv:
                _hand_on(file, problem, batch)
            continue
        now = time.time()
        for file, rows in same_csv:
            batch.written(rows, file.task.queued_at, now)


def _enqueue_for_people(rows: list[Row], path: Path) -> None:
    """Put the rows a person should see (to review, or drawn for the audit) in the review queue, once.

    Their pictures were saved beside the CSV as they were read; enqueueing a
    row again (a file delivered twice) leaves its item as it is.
    """
    settings = get_settings()
    folder = path.parent.relative_to(settings.results).as_posix()
    _review_queue().enqueue(items_of(rows, folder, settings.audit_share, time.time()))


@lru_cache(maxsize=1)
def _review_queue() -> ReviewQueue:
    settings = get_settings()
    return ReviewQueue(_marks(), settings.results, settings.review_lease_seconds)


def _csv_of(task: FileTask, rows: list[Row]) -> Path:
    """The CSV a file's rows go to: the inbox's of the day they were read, or the job's."""
    settings = get_settings()
    if task.kind == INBOX:
        return inbox_csv(settings.results, _row_time(rows[0]))
    return job_csv(settings.results, task.job_id)


def _marked_if_seen(files: list[tuple[FileTask, list[Row], str]]) -> list[list[Row]]:
    """Each ``(task, rows, drop id)``'s rows, with status ``duplicate`` if its bytes came through its inbox before.

    A scan dropped twice (or copied under another name) would otherwise pay a
    cheque twice. The first drop of some content claims its hash in Redis (for
    ``DIGITS_MARK_DAYS``); later drops of it into the same inbox are read and
    written, but marked, naming the first (in a batch, the first is the one
    listed first). A submitted job is a deliberate request and is never marked.
    Two round trips at most, however many files.
    """
    claims = {}
    for i, (task, rows, drop_id) in enumerate(files):
        first = rows[0]
        if task.kind == INBOX and first.status != ERROR and first.sha256:
            key = f"digits:seen:{hashlib.sha256(task.inbox.encode()).hexdigest()[:16]}:{first.sha256}"
            claims[i] = (key, json.dumps({"drop_id": drop_id, "source": first.source, "at": first.processed_at}))
    if not claims:
        return [rows for _, rows, _ in files]
    keep = get_settings().mark_seconds
    with _marks().pipeline() as pipe:
        for key, claim in claims.values():
            pipe.set(key, claim, nx=True, ex=keep)
        claimed = dict(zip(claims, pipe.execute(), strict=True))
    taken = [i for i in claims if not claimed[i]]
    before = dict(zip(taken, _marks().mget([claims[i][0] for i in taken]), strict=True)) if taken else {}
    marked = []
    for i, (_, rows, drop_id) in enumerate(files):
        earlier = json.loads(before[i] or claims[i][1]) if i in before else None
        if earlier is None or earlier["drop_id"] == drop_id:  # a first drop, or this one delivered again
            marked.append(rows)
            continue
        reason = (
            f"{rows[0].source}: the same file as {earlier['source']}, taken at {earlier['at']} "
            f"(drop {earlier['drop_id']}); only that one's rows count"
        )
        marked.append([row.model_copy(update={"status": DUPLICATE, "error": reason}) for row in rows])
    return marked


def _pictures(task: FileTask) -> Pictures:
    settings = get_settings()
    return Pictures(_csv_folder(task, settings.results), every_row=task.annotate, audit_share=settings.audit_share)


def _csv_folder(task: FileTask, results: Path) -> Path:
    """The folder of the CSV a file's rows go to (its review pictures go below it)."""
    if task.kind == INBOX:
        return inbox_csv(results, dt.datetime.now(dt.UTC)).parent
    return job_csv(results, task.job_id).parent


def _row_time(row: Row) -> dt.datetime:
    return dt.datetime.fromisoformat(row.processed_at.replace("Z", "+00:00"))
