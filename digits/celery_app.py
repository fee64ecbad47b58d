"""The Celery application and the names of its tasks.

Everything that only queues work (the ingester, ``submit``) imports this
module and sends tasks by name; the task code lives in ``worker.tasks`` and is
imported only by worker processes.
"""

from __future__ import annotations

import time
import uuid

from celery import Celery, states
from celery.backends.redis import RedisBackend

from digits.contracts import FileChunk, FileTask, SampleResult, SampleTask
from digits.settings import MEGABYTE, get_settings

RECOGNIZE_TASK = "digits.recognize"
"""Recognise one file, or a chunk of files that arrived together (``send_files``; their bytes travel
in the message), and append their rows to CSVs. Workers gather these messages into batches
(``DIGITS_BATCH_SIZE`` files, ``DIGITS_BATCH_WAIT``)."""

RECOGNIZE_ONE_TASK = "digits.recognize_one"
"""Recognise one file on its own: a file whose batch ran out of time is sent again as this."""

RECOGNIZE_PAGE_TASK = "digits.recognize_page"
"""Recognise one page of a long document read page by page (it renders that page only); returns its rows."""

WRITE_PAGES_TASK = "digits.write_pages"
"""Append the rows of all pages of a document read page by page to its CSV, once, when the last page is read."""

READ_SAMPLE_TASK = "digits.read_sample"
"""Decode a form's sample, or read it with a layout being drawn (``SampleTask``); writes nothing."""

PREFETCHED_BATCHES = 2
"""Batches of messages a worker holds per pool process: the one being read and the next."""

QUEUE = "digits"
"""The queue files go through (``digits worker``)."""

PAGES_QUEUE = "digits.pages"
"""The queue the pages of long documents go through (``digits worker --pages``). Apart, so that
thousands of pages never stand between a worker and the files dropped after them."""

DOCUMENT_KEY = "digits:document:{drop_id}"
"""Redis key of a long document's bytes, stored once while its pages are read."""

PUBLISH_CHUNK = 64
"""Files the ingester sends in one Redis round trip, and messages ``submit`` does (kombu's
``Producer.batch``). Sent one by one, each would cost a round trip and a new Redis client;
so, a burst of files still reaches the workers as it is sent."""

CHUNK_BYTES = 8 * MEGABYTE
"""Most bytes of files (base64) one message carries, beside ``DIGITS_CHUNK_FILES`` files: a few large scans go alone."""


REDELIVERY_SWEEP_SECONDS = 5
"""How often each worker looks for tasks taken by dead nodes whose ``redeliver_seconds`` have passed."""


class PolledRedisBackend(RedisBackend):
    """Celery's Redis result backend without a result subscription for every task sent.

    Celery subscribes to a pub/sub channel for each task it sends, to hear of its
    result. We read results by polling (``task_states``), so nobody would read
    those channels: each file would leave its subscription behind in the
    ingester, whose memory would grow with every file, and its unread
    confirmations would pile up in Redis's output buffer for the ingester.
    ``AsyncResult.get()`` still subscribes when called.
    """

    def on_task_call(self, producer: object, task_id: str) -> None:
        return None

    def store_many(self, results: list[tuple[str, object]], state: str) -> None:
        """Store each ``(task id, result)`` in ``state``, in two round trips for them all (Celery's take two each).

        As Celery's own ``store_result`` does, a task already stored as a
        success keeps its result: a message delivered again must not undo it.
        """
        if not results:
            return
        keys = [self.get_key_for_task(task_id) for task_id, _ in results]
        stored = self.client.mget(keys)
        with self.client.pipeline() as pipe:
            for key, (task_id, result), before in zip(keys, results, stored, strict=True):
                if before is not None and self.decode_result(before)["status"] == states.SUCCESS:
                    continue
                meta = self._get_result_meta(result=result, state=state, traceback=None, request=None)
                value = self.encode(meta | {"task_id": task_id})
                pipe.set(key, value, ex=self.expires or None)
                pipe.publish(key, value)  # for whoever waits with AsyncResult.get()
            pipe.execute()


def make_app(redis_url: str, time_limit: int | None = None) -> Celery:
    """A Celery app on ``redis_url`` set up so that a dying worker loses nothing."""
    settings = get_settings()
    backend = f"{__name__}:{PolledRedisBackend.__name__}+{redis_url}"
    app = Celery("digits", broker=redis_url, backend=backend, include=["worker.tasks", "worker.designer"])
    app.conf.update(
        # Messages are plain JSON data: nothing from the queue is ever unpickled.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Acknowledge only after the rows are written, and put the message back
        # when the pool process dies (kill -9, out of memory) mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Each pool process reads a batch of files (worker.tasks.FileBatches) while the
        # next batch gathers: with room for only one, the next could gather only once a
        # process was free, and would be handed over short.
        # The batches' own callbacks put messages back when a process dies.
        worker_prefetch_multiplier=PREFETCHED_BATCHES * settings.batch_size,
        task_default_queue=QUEUE,
        task_routes={RECOGNIZE_PAGE_TASK: {"queue": PAGES_QUEUE}, WRITE_PAGES_TASK: {"queue": PAGES_QUEUE}},
        # A pool process that rendered or decoded something huge keeps that memory (the C
        # allocator rarely gives it back): it is replaced once its task is done (KiB here).
        worker_max_memory_per_child=settings.max_process_mb * 1024 or None,
        # A task stuck on a pathological scan is killed; its file gets an error row.
        task_time_limit=time_limit or settings.task_time_limit,
        result_expires=settings.result_seconds,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        # `digits models rollout` replaces pool processes so that they load other models.
        worker_pool_restarts=True,
        worker_hijack_root_logger=False,
        # A message taken by a worker node that died as a whole comes back after
        # this (kombu's default is an hour); every worker sweeps for such messages.
        broker_transport_options={
            "visibility_timeout": settings.redeliver_seconds,
            "unacked_restore_interval": REDELIVERY_SWEEP_SECONDS,
            "unacked_restore_throttle": 1,
        },
    )
    return app


app = make_app(get_settings().redis_url)


def send_files(celery: Celery, files: list[tuple[str, FileTask]], producer: object, chunk_files: int) -> None:
    """Send each ``(id, file)`` to be read, as ``digits.recognize`` messages over ``producer``.

    Files that come together travel in chunks (``FileChunk``) of at most
    ``chunk_files`` files (``DIGITS_CHUNK_FILES``) and ``CHUNK_BYTES``; a file
    alone, or too large to share, is a message of its own whose task id is its
    id. Either way each file's result is stored under its own id.
    """
    for chunk in _chunks(files, chunk_files):
        if len(chunk) == 1:
            [(file_id, file)] = chunk
            message, message_id, about = file.model_dump(), file_id, repr(file.source)
        else:
            ids, parts = zip(*chunk, strict=True)
            message = FileChunk(ids=list(ids), files=list(parts)).model_dump()
            message_id, about = str(uuid.uuid4()), f"{len(chunk)} files from {parts[0].source!r}"
        # argsrepr: what Flower and the worker's log show; Celery would otherwise build a repr of the files' bytes.
        celery.send_task(RECOGNIZE_TASK, args=[message], task_id=message_id, argsrepr=about, producer=producer)


class NoWorker(TimeoutError):
    """No worker answered in time: none runs, or all are busy."""


SAMPLE_POLL_SECONDS = 0.1
"""How often ``read_sample`` looks for the workers' answer."""


def read_sample(celery: Celery, task: SampleTask, timeout: float) -> SampleResult:
    """What the workers make of a sample (``digits.read_sample``): waits up to ``timeout`` seconds.

    For the layout designer and ``digits layouts check``: the asking process
    never loads TensorFlow. The answer is polled for (``task_states``), never
    subscribed to, so that threads of one station may wait at once. Raises
    ``NoWorker`` when no answer comes in time, ``RuntimeError`` when the task failed.
    """
    sent = celery.send_task(READ_SAMPLE_TASK, args=[task.model_dump()], argsrepr=repr(task.source))
    deadline = time.monotonic() + timeout
    while (meta := task_states(celery, [sent.id]).get(sent.id)) is None or meta["status"] not in states.READY_STATES:
        if time.monotonic() > deadline:
            sent.revoke()
            raise NoWorker(
                f"no worker read {task.source} within {timeout:g} s: is one running (`digits up`, or `digits worker`) "
                "against this Redis, and not busy with a long queue?"
            )
        time.sleep(SAMPLE_POLL_SECONDS)
    sent.forget()
    if meta["status"] != states.SUCCESS:
        raise RuntimeError(f"the worker failed to read {task.source}: {meta['result']}; its log says more")
    return SampleResult.model_validate(meta["result"])


def _chunks(files: list[tuple[str, FileTask]], most: int) -> list[list[tuple[str, FileTask]]]:
    """``files`` in order, cut into runs of at most ``most`` files and ``CHUNK_BYTES`` (a larger file alone)."""
    chunks: list[list[tuple[str, FileTask]]] = []
    size = 0
    for item in files:
        weight = len(item[1].data)
        if not chunks or len(chunks[-1]) >= most or size + weight > CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += weight
    return chunks


def task_states(celery: Celery, task_ids: list[str]) -> dict[str, dict]:
    """Stored state of many tasks in one round trip: ``{id: {"status", "result"}}``.

    Tasks not finished or not known yet are left out (Celery stores nothing
    for a queued task).
    """
    if not task_ids:
        return {}
    backend = celery.backend
    values = backend.mget([backend.get_key_for_task(task_id) for task_id in task_ids])
    return {
        task_id: backend.decode_result(value)
        for task_id, value in zip(task_ids, values, strict=True)
        if value is not None
    }
