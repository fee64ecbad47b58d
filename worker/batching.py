"""Celery-batches with the delivery guarantees of our ordinary tasks: the task class of ``digits.recognize``.

A worker gathers the ``digits.recognize`` messages it receives into batches
(celery-batches: about ``flush_every`` files, none waiting over
``flush_interval``) and a pool process reads each batch in one go
(``worker.tasks.recognize``). A message carries one file or a chunk of them
(``digits.contracts.files_of``). ``FileBatches`` adds what celery-batches
leaves out: batches counted in files, messages put back when a pool process
dies, a failed batch read again file by file, and batches kept full while every
pool process is busy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from billiard.einfo import ExceptionInfo
from billiard.exceptions import TimeLimitExceeded
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from redis.exceptions import RedisError

from digits.celery_app import RECOGNIZE_ONE_TASK, app
from digits.contracts import files_of
from worker import metrics

if TYPE_CHECKING:
    from celery import Celery
    from celery.worker.consumer import Consumer
    from kombu.message import Message

log = logging.getLogger(__name__)


class FileBatches(Batches):
    """celery-batches' buffering (``flush_every`` files, none waiting over ``flush_interval``),
    with the delivery guarantees our ordinary tasks have.

    celery-batches acknowledges a batch's messages when its pool job returns and
    does nothing when it fails. Here, as ``task_reject_on_worker_lost`` does
    for one task, a batch whose pool process died goes back to the queue at
    once; a batch stopped by the time limit, or that raised, has its files
    sent again one per task (``RECOGNIZE_ONE_TASK``, each under its own id),
    so that only the file to blame fails; and files the batch could neither
    finish nor hand on go back to the queue. Its flush timer survives a lost
    broker connection.
    """

    _files = 0
    """Files in the messages buffered since the last flush: a batch is flushed once it holds ``flush_every``."""

    def Strategy(self, task: Batches, app: Celery, consumer: Consumer) -> Callable:
        """celery-batches' message handler, with the flush timer started again on every (re)connection.

        When the broker connection drops, Celery clears the event loop's timers
        (``celery.worker.loops.asynloop``), then calls this again once it is back.
        celery-batches believes its flush timer is still set and starts it only
        for the first file into an empty buffer, so a file buffered when Redis went
        away, and every file after it, would wait for a full batch.
        """
        if self._tref is not None:
            self._tref.cancel()  # a no-op on a cleared timer; on a live one (a reload), no second timer
            self._tref = None
        handler = super().Strategy(task, app, consumer)
        if self._buffer.qsize() or self._pending.qsize():
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)

        def count_files(message: Message, *args: object, **kwargs: object) -> None:
            # celery-batches counts messages; a chunk is many files, and the batch is flushed by files.
            # Counted first: should the handler flush (by its own count), this file goes with that batch.
            self._files += _files_in(message)
            handler(message, *args, **kwargs)
            if self._files >= self.flush_every:
                self._do_flush()

        return count_files

    def _do_flush(self) -> None:
        # While every pool process is busy, a batch handed over now would only wait in
        # line; keep gathering, so that it is fuller when a process is free (the timer
        # comes back every ``flush_interval``; a full buffer is flushed at once anyway).
        if self._files < self.flush_every and self._busy_processes() >= self._pool.num_processes:
            return
        super()._do_flush()
        self._files = 0

    def _one_by_one(self, requests: list[Request]) -> None:
        """Send each file of a failed batch again as ``RECOGNIZE_ONE_TASK`` (its own id), or else requeue its message.

        A message that is no file at all is sent on as it is, to fail alone.
        """
        for request in requests:
            try:
                sends = [([task.model_dump()], file_id) for file_id, task in files_of(request.args[0], request.id)]
            except (ValidationError, IndexError):
                sends = [(request.args, request.id)]
            try:
                for args, task_id in sends:
                    app.send_task(RECOGNIZE_ONE_TASK, args, task_id=task_id)
            except (RedisError, OperationalError):
                _settle(request, requeue=True)  # those sent already are written once, by their marks
                continue
            _settle(request)

    def _busy_processes(self) -> int:
        """Batches handed to the pool and not finished (billiard keeps them in ``_cache``)."""
        return len(getattr(self._pool._pool, "_cache", ()))

    def flush(self, requests: list[Request]) -> object:
        payload = ([SimpleRequest.from_request(request) for request in requests],)

        def on_return(batch: metrics.Batch | None) -> None:
            if batch is None:  # the batch raised (celery-batches logged it): try each file on its own
                self._one_by_one(requests)
                return
            for request in requests:
                _settle(request, requeue=request.id in batch.unfinished)
            metrics.record(batch)

        def on_error(failure: ExceptionInfo) -> None:
            problem = failure.exception
            problem = getattr(problem, "exc", problem)  # billiard may wrap it (ExceptionWithTraceback)
            metrics.BATCH_FAILURES.labels(type(problem).__name__).inc()
            files = _files_of(requests)
            if isinstance(problem, TimeLimitExceeded) and len(files) > 1:
                log.warning("a batch of %d files ran out of time; reading each on its own", len(files))
                self._one_by_one(requests)
            elif isinstance(problem, TimeLimitExceeded):
                self.backend.mark_as_failure(files[0] if files else requests[0].id, problem)
                _settle(requests[0])
            else:
                log.error("a batch of %d files failed with %r; they go back to the queue", len(requests), problem)
                for request in requests:
                    _settle(request, requeue=True)

        return self._pool.apply_async(
            apply_batches_task, (self, payload, 0, None), callback=on_return, error_callback=on_error
        )


def _settle(request: Request, requeue: bool = False) -> None:
    """Acknowledge ``request``, or put it back on the queue; if Redis refuses (full, or away), leave it taken.

    A message left taken comes back after ``DIGITS_REDELIVER_SECONDS`` (kombu's
    visibility timeout), and its rows are written once all the same: better
    than letting the error stop the worker.
    """
    try:
        if requeue:
            request.reject(requeue=True)
        else:
            request.acknowledge()
    except (RedisError, OperationalError) as problem:
        log.error("Redis refused to settle message %s (%s); it comes back after DIGITS_REDELIVER_SECONDS",
                  request.id, problem)  # fmt: skip


def _files_in(message: Message) -> int:
    """How many files a ``digits.recognize`` message carries, from its body as Kombu decoded it (1 if unsure)."""
    try:
        carried = message.payload[0][0]  # Celery's message protocol 2: (args, kwargs, embed)
    except (TypeError, IndexError, KeyError):
        return 1
    if not isinstance(carried, dict) or not carried.get("ids"):
        return 1
    return len(carried["ids"])


def _files_of(requests: list[Request]) -> list[str]:
    """The ids of the files ``requests`` carry (a message that is no file: its own id)."""
    ids = []
    for request in requests:
        try:
            ids += [file_id for file_id, _ in files_of(request.args[0], request.id)]
        except (ValidationError, IndexError):
            ids.append(request.id)
    return ids
