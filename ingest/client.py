"""Submitting jobs from Python: ``submit([...])`` returns a ``Job`` to watch and read.

Only Redis has to be reachable; TensorFlow is never imported here. Each file
becomes one task, whose bytes travel in a message (with others of the job, in
chunks); the job remembers its task ids in Redis so that ``Job.load(job_id)``
works from any process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from celery import Celery, states
from redis import Redis

from digits.capacity import check_room
from digits.celery_app import PUBLISH_CHUNK, send_files, task_states
from digits.celery_app import app as default_app
from digits.contracts import JOB, FileResult, FileTask
from digits.layouts import load_layout
from digits.results import job_csv
from digits.reviews import decided, final_row, id_of
from digits.settings import MEGABYTE, get_settings

JOB_KEY = "digits:job:{job_id}"
"""Redis list of a job's task ids, in submit order."""

JOB_SOURCES_KEY = "digits:job:{job_id}:sources"
"""Redis list of a job's source names, parallel to its task ids."""

JOBS_KEY = "digits:jobs"
"""Redis sorted set of job ids by submit time, for ``digits status``."""

WAIT_POLL_SECONDS = 0.2
"""How often ``Job.wait`` asks Redis for progress."""

FileLike = str | Path | tuple[str, bytes]
"""A path to read, or a ``(name, bytes)`` pair."""


class JobTimeout(TimeoutError):
    """``Job.wait`` ran out of time; the job goes on, ``wait`` may be called again."""


@dataclass(frozen=True)
class JobStatus:
    """How many of a job's files are waiting, finished, or finished as errors."""

    pending: int
    done: int
    failed: int

    @property
    def total(self) -> int:
        return self.pending + self.done + self.failed

    @property
    def finished(self) -> bool:
        return self.pending == 0


class Job:
    """A batch of files submitted together; its rows go to ``results/jobs/<id>.csv``."""

    def __init__(self, job_id: str, task_ids: list[str], sources: list[str], celery: Celery) -> None:
        self.id = job_id
        self.task_ids = task_ids
        self.sources = sources
        self.celery = celery

    def __repr__(self) -> str:
        return f"<Job {self.id} files={len(self.task_ids)}>"

    @property
    def csv_path(self) -> Path:
        """Where the workers write this job's rows (under the workers' results folder)."""
        return job_csv(get_settings().results, self.id)

    @classmethod
    def load(cls, job_id: str, celery: Celery | None = None) -> Job:
        """A job submitted earlier, possibly by another process."""
        celery = celery or default_app
        redis = _redis(celery)
        task_ids = [t.decode() for t in redis.lrange(JOB_KEY.format(job_id=job_id), 0, -1)]
        if not task_ids:
            kept = get_settings().result_days
            raise KeyError(f"no job {job_id!r} in Redis (jobs are kept {kept:g} days, DIGITS_RESULT_DAYS)")
        sources = [s.decode() for s in redis.lrange(JOB_SOURCES_KEY.format(job_id=job_id), 0, -1)]
        return cls(job_id, task_ids, sources, celery)

    def status(self) -> JobStatus:
        """Counts of pending, done and failed files (failed: an error row, or the task failed)."""
        finished = task_states(self.celery, self.task_ids)
        done = failed = 0
        for meta in finished.values():
            if meta["status"] == states.SUCCESS and not FileResult.model_validate(meta["result"]).failed:
                done += 1
            elif meta["status"] in states.READY_STATES:
                failed += 1
        return JobStatus(len(self.task_ids) - done - failed, done, failed)

    def wait(self, timeout: float | None = None, progress: Callable[[JobStatus], None] | None = None) -> Job:
        """Block until every file is finished; raise ``JobTimeout`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if progress:
                progress(status)
            if status.finished:
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {self.id}: {status.pending} of {status.total} file(s) still pending")
            time.sleep(WAIT_POLL_SECONDS)

    def rows(self) -> list[dict]:
        """The rows of every finished file, in submit order, as dicts with the CSV columns.

        Read from the task results in Redis, so this works without access to
        the workers' results folder.
        """
        finished = task_states(self.celery, self.task_ids)
        rows = []
        for task_id in self.task_ids:
            meta = finished.get(task_id)
            if meta and meta["status"] == states.SUCCESS:
                rows.extend(row.model_dump() for row in FileResult.model_validate(meta["result"]).rows)
        return rows

    def final_rows(self) -> list[dict]:
        """``rows()`` as they finally stand: where a reviewer decided, their reading (as ``digits export``).

        Adds ``machine_digits``, ``reviewer`` and ``reviewed_at``; a row a person
        read has status ``verified`` (or ``unreadable``).
        """
        rows = self.rows()
        decisions = decided(_redis(self.celery), [id_of(row) for row in rows])
        return [final_row(row, decisions.get(id_of(row))) for row in rows]


def submit(
    files: Iterable[FileLike],
    job_id: str | None = None,
    layout: str | None = None,
    annotate: bool = False,
    celery: Celery | None = None,
) -> Job:
    """Queue files for recognition as one job and return it at once.

    ``files`` holds paths (their name as given becomes ``source``) or
    ``(name, bytes)`` pairs. ``layout`` names the layout whose fields are read
    (one row per page and field); without it each page is one field, ``all``.
    Rows sent to review get a picture of what was read; ``annotate`` asks for
    one for every row.
    Files over the size limit, and layouts that do not exist, are refused
    here, before anything is queued; so is everything while Redis is nearly
    full (``digits.capacity.RedisFull``).
    """
    celery = celery or default_app
    settings = get_settings()
    if layout is not None:
        load_layout(layout, settings.layouts)  # raises LayoutError, saying what is there
    job_id = job_id or str(uuid.uuid4())
    job_csv(settings.results, job_id)  # refuses an id that is no plain file name, before queueing
    named = [_read(item) for item in files]
    if not named:
        raise ValueError("no files to submit: pass at least one path or (name, bytes) pair")
    for name, data in named:
        if len(data) > settings.max_file_bytes:
            raise ValueError(
                f"{name}: {len(data) / MEGABYTE:.1f} MB is over the {settings.max_file_mb:g} MB limit; "
                "scan at a lower resolution or raise DIGITS_MAX_FILE_MB"
            )
    task_ids = [str(uuid.uuid4()) for _ in named]
    redis = _redis(celery)
    check_room(redis)
    # Record the job before queueing, so status() never misses a task that ran fast.
    with redis.pipeline() as pipe:
        pipe.rpush(JOB_KEY.format(job_id=job_id), *task_ids)
        pipe.rpush(JOB_SOURCES_KEY.format(job_id=job_id), *[name for name, _ in named])
        pipe.expire(JOB_KEY.format(job_id=job_id), settings.result_seconds)
        pipe.expire(JOB_SOURCES_KEY.format(job_id=job_id), settings.result_seconds)
        pipe.zadd(JOBS_KEY, {job_id: time.time()})
        pipe.execute()
    files = [
        (task_id, FileTask.carrying(data, kind=JOB, job_id=job_id, source=name, layout=layout, annotate=annotate))
        for task_id, (name, data) in zip(task_ids, named, strict=True)
    ]
    with celery.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_CHUNK):
        send_files(celery, files, producer, settings.chunk_files)
    return Job(job_id, task_ids, [name for name, _ in named], celery)


def _read(item: FileLike) -> tuple[str, bytes]:
    if isinstance(item, tuple):
        name, data = item
        return str(name), bytes(data)
    path = Path(item)
    return path.as_posix(), path.read_bytes()


def _redis(celery: Celery) -> Redis:
    return Redis.from_url(celery.conf.broker_url)
