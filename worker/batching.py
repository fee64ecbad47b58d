"""Celery-batches with the delivery guarantees of our ordinary tasks: the task class of ``digits.recognize``.

A worker gathers the ``digits.recognize`` messages it receives into batches
(celery-batches: at most ``flush_every`` files, none waiting over
``flush_interval``) and a pool process reads each batch in one go
(``worker.tasks.recognize``). ``FileBatches`` adds what celery-batches leaves
out: messages put back when a pool process dies, a failed batch read again file
by file, and batches kept full while every pool process is busy.
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
from redis.exceptions import RedisError

from digits.celery_app import RECOGNIZE_ONE_TASK, app
from worker import metrics

if TYPE_CHECKING:
    from celery import Celery
    from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


class FileBatches(Batches):
    """celery-batches' buffering (at most ``flush_every`` files, none waiting over ``flush_interval``),
    with the delivery guarantees our ordinary tasks have.

    celery-batches acknowledges a batch's messages when its pool job returns and
    does nothing when it fails. Here, as ``task_reject_on_worker_lost`` does
    for one task, a batch whose pool process died goes back to the queue at
    once; a batch stopped by the time limit, or that raised, has its files
    sent again one per task (``RECOGNIZE_ONE_TASK``, same task ids), so that
    only the file to blame fails; and files the batch could neither finish
    nor hand on go back to the queue. Its flush timer survives a lost broker
    connection.
    """

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
        return handler

    def _do_flush(self) -> None:
        # While every pool process is busy, a batch handed over now would only wait in
        # line; keep gathering, so that it is fuller when a process is free (the timer
        # comes back every ``flush_interval``; a full buffer is flushed at once anyway).
        if self._buffer.qsize() < self.flush_every and self._busy_processes() >= self._pool.num_processes:
            return
        super()._do_flush()

    def _one_by_one(self, requests: list[Request]) -> None:
        """Send each file of a failed batch again as ``RECOGNIZE_ONE_TASK`` (same task id), or else requeue it."""
        for request in requests:
            try:
                app.send_task(RECOGNIZE_ONE_TASK, request.args, task_id=request.id)
            except (RedisError, OperationalError):
                request.reject(requeue=True)
                continue
            request.acknowledge()

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
                if request.id in batch.unfinished:
                    request.reject(requeue=True)
                else:
                    request.acknowledge()
            metrics.record(batch, len(requests))

        def on_error(failure: ExceptionInfo) -> None:
            problem = failure.exception
            problem = getattr(problem, "exc", problem)  # billiard may wrap it (ExceptionWithTraceback)
            metrics.BATCH_FAILURES.labels(type(problem).__name__).inc()
            if isinstance(problem, TimeLimitExceeded) and len(requests) > 1:
                log.warning("a batch of %d files ran out of time; reading each on its own", len(requests))
                self._one_by_one(requests)
            elif isinstance(problem, TimeLimitExceeded):
                self.backend.mark_as_failure(requests[0].id, problem)
                requests[0].acknowledge()
            else:
                log.error("a batch of %d files failed with %r; they go back to the queue", len(requests), problem)
                for request in requests:
                    request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task, (self, payload, 0, None), callback=on_return, error_callback=on_error
        )
