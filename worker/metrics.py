"""Prometheus metrics of a worker node, served by its main process on ``DIGITS_METRICS_PORT``.

Pool processes read the batches; each batch's summary comes back to the main
process with its result (``Batch``), and is counted here, so one endpoint
covers every pool process without Prometheus' multi-process mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram, start_http_server

from digits.contracts import Row

log = logging.getLogger(__name__)

FILES = Counter("digits_files", "Files read and written, by the status of their first row.", ["status"])
ROWS = Counter("digits_rows", "Rows written, by status (ok, review, empty, error, duplicate).", ["status"])
DIGITS = Counter("digits_digits", "Digits read.")
BATCH_FILES = Histogram("digits_batch_files", "Files per batch.", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
BATCH_SECONDS = Histogram(
    "digits_batch_seconds", "Time a pool process spent on a batch.", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)
)
LATENCY = Histogram(
    "digits_file_latency_seconds",
    "From a file's task being queued to its rows being written (clocks of sender and worker).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
BATCH_FAILURES = Counter("digits_batch_failures", "Batches that failed as a whole, by reason.", ["reason"])
HANDED_ON = Counter("digits_files_handed_on", "Files of a batch sent again on their own (to retry them).")


@dataclass
class Batch:
    """What a pool process did with a batch, returned to the main process (plain data, as Celery pickles it)."""

    size: int = 0
    """Files the batch's messages carried."""
    unfinished: list[str] = field(default_factory=list)
    """Task ids of the messages of files that could neither be finished nor handed on: they go back to the queue."""
    handed_on: int = 0
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    digits: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def written(self, rows: list[Row], queued_at: float | None, now: float) -> None:
        """Count one file's rows, written at ``now``."""
        status = rows[0].status
        self.files[status] = self.files.get(status, 0) + 1
        for row in rows:
            self.rows[row.status] = self.rows.get(row.status, 0) + 1
            self.digits += len(row.digits)
        if queued_at is not None:
            self.latencies.append(max(0.0, now - queued_at))


def record(batch: Batch) -> None:
    """Count a finished batch."""
    BATCH_FILES.observe(batch.size)
    BATCH_SECONDS.observe(batch.seconds)
    for status, count in batch.files.items():
        FILES.labels(status).inc(count)
    for status, count in batch.rows.items():
        ROWS.labels(status).inc(count)
    DIGITS.inc(batch.digits)
    HANDED_ON.inc(batch.handed_on)
    for seconds in batch.latencies:
        LATENCY.observe(seconds)


def serve(port: int, host: str) -> None:
    """Serve ``/metrics`` on ``host``:``port`` (port 0: not at all); a port in use is reported, not fatal."""
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as problem:
        log.warning("metrics: cannot listen on port %d (%s); set DIGITS_METRICS_PORT to a free port", port, problem)
        return
    log.info("metrics at http://%s:%d/metrics", host, port)
