"""The inbox ingester: take each new scan once it is stable, queue it, file it away when done.

A file's life: ``inbox/<folder>/<name>`` -> ``processing/<folder>/<drop_id>__<name>``
(task sent with the file's bytes, task id = drop id) -> ``done/<folder>/<name>`` or
``failed/<folder>/<name>`` with ``failed/<folder>/<name>.error.txt``. The drop id in the
processing path is what lets a restarted ingester pick up where it left off: it asks
Redis about each file still in ``processing/`` and re-sends those whose task left no
result (a re-sent task that did run anyway writes no second row; see
``digits.results``). Files an earlier version left as ``processing/<drop_id>/<rel>``
are picked up too.

No TensorFlow here: the worker is reached by task name only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from celery import Celery, states
from redis import Redis
from redis.exceptions import RedisError
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from digits.capacity import check_room
from digits.celery_app import PUBLISH_CHUNK, send_files, task_states
from digits.contracts import INBOX, FileResult, FileTask, Row, utc_now
from digits.layouts import layout_for_inbox_path
from digits.results import append_rows, file_sha256, inbox_csv
from digits.settings import MEGABYTE, Settings

log = logging.getLogger(__name__)

IGNORED_PATTERNS = (
    ".*",  # hidden files, .DS_Store, editors' and rsync's temporaries
    "~$*",  # Office lock files
    "*.part",  # browsers' and scanners' partial downloads
    "*.partial",
    "*.crdownload",
    "*.tmp",
    "*.swp",
    "Thumbs.db",
    "desktop.ini",
)
"""File names never taken from the inbox: temporary, hidden or system files."""

TICK_SECONDS = 0.1
"""How often the main loop checks candidates and sends them (and collects, every ``COLLECT_SECONDS``)."""

RESEND_BACKOFF_SECONDS = (1, 2, 5, 10, 30)
"""Waits between attempts to queue a file while Redis is unreachable."""

COLLECT_SECONDS = 0.5
"""How often the ingester asks Redis which of its files are finished. Each ask fetches the state of
every file in flight, too much to do every tick during a burst; the rows are the workers' to write,
so this paces only the move to ``done/``."""

COLLECT_RETRY_SECONDS = 5.0
"""Wait before trying again to file away a finished file that could not be (a full results disk)."""

HEARTBEAT_FILE = ".ingester-alive"
"""File in the archive folder the ingester touches every ``HEARTBEAT_SECONDS`` while it runs (for health checks)."""

HEARTBEAT_SECONDS = 1.0
"""How often the heartbeat file is touched."""

QUEUED_KEY = "digits:ingest:queued"
"""Redis set of the drop ids this ingester queued and has not filed away yet.

Written just after their messages, so a Redis restarted without them (no
append-only file, or a crash in its last second) has lost both; see ``notice_restart``."""

RESTART_CHECK_SECONDS = 5.0
"""How often the ingester asks Redis whether it restarted (its ``run_id`` changed)."""

DROP_NAME = re.compile(r"(?P<drop_id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})__(?P<name>.+)")
"""A file's name in ``processing/``: its drop id before its own name. A folder per drop would
cost making and removing it for every file, half the ingester's time on a burst."""

INBOX_SOURCE_MODEL = "-"
"""``model`` column of an error row the ingester writes itself (no model saw the file)."""


def is_ignored(path: Path, inbox: Path) -> bool:
    """Whether a path in the inbox (or a folder it lies in) is one we never take."""
    parts = path.relative_to(inbox).parts
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in IGNORED_PATTERNS)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class StabilityTracker:
    """Tells when a file has stopped changing: same size and mtime for ``delay`` seconds.

    Scanners and copy tools write a file in several goes, and a network share
    may never send a close event; taking a file mid-write would read half a
    scan, so every file waits here first, whatever event announced it.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._seen: dict[Path, _Seen] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def see(self, path: Path) -> None:
        """Start (or keep) watching a path."""
        if path not in self._seen:
            self._seen[path] = _Seen(-1, -1, time.monotonic())

    def stable(self) -> list[Path]:
        """Files unchanged for the delay; they are forgotten here once returned."""
        now = time.monotonic()
        ready = []
        for path, seen in list(self._seen.items()):
            try:
                info = path.stat()
            except FileNotFoundError:
                del self._seen[path]  # moved away or removed by the user
                continue
            if (info.st_size, info.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self._seen[path] = _Seen(info.st_size, info.st_mtime_ns, now)
            elif now - seen.since >= self.delay:
                ready.append(path)
                del self._seen[path]
        return ready


class _InboxEvents(FileSystemEventHandler):
    """Forwards every path an event names to the main loop (watchdog calls us from its thread)."""

    def __init__(self, paths: queue.SimpleQueue[Path]) -> None:
        self.paths = paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        # Created, modified, closed, moved in: all mean "look at this file".
        target = getattr(event, "dest_path", "") or event.src_path
        self.paths.put(Path(os.fsdecode(target)))


class Ingester:
    """Watches the inbox and drives each file from there to ``done/`` or ``failed/``."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings = settings
        self.celery = celery
        self.inbox = settings.inbox.resolve()
        archive = settings.archive_dir.resolve()
        self.processing = archive / "processing"
        self.done = archive / "done"
        self.failed = archive / "failed"
        self.heartbeat = archive / HEARTBEAT_FILE
        self.tracker = StabilityTracker(settings.stable_seconds)
        self.in_flight: dict[str, Path] = {}
        self.unsent: dict[str, Path] = {}
        self._events: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._send_failures = 0
        self._next_send_try = 0.0
        self._next_collect_try = 0.0
        self._next_restart_check = 0.0
        self._redis_run_id: str | None = None
        self._marks = Redis.from_url(settings.redis_url)

    def run(self, stop: threading.Event) -> None:
        """Ingest until ``stop`` is set. Files in flight stay in ``processing/`` for next time."""
        for folder in (self.inbox, self.processing, self.done, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_InboxEvents(self._events), str(self.inbox), recursive=True)
        observer.start()
        log.debug("watching %s", self.inbox)
        try:
            self.recover()
            self.sweep()  # files that arrived while we were down
            next_sweep = time.monotonic() + self.settings.rescan_seconds
            next_beat = 0.0
            while not stop.is_set():
                self.tick()
                if time.monotonic() >= next_beat:
                    self.heartbeat.touch()
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
                if time.monotonic() >= next_sweep:
                    # Network shares and overflowing event queues lose events;
                    # a periodic look at the whole inbox catches what they missed.
                    self.sweep()
                    next_sweep = time.monotonic() + self.settings.rescan_seconds
                stop.wait(TICK_SECONDS)
        finally:
            observer.stop()
            observer.join()
            log.info("stopped; %d file(s) in flight stay in %s", len(self.in_flight), self.processing)

    def tick(self) -> None:
        """One round: note events, take stable files, queue unsent ones, collect results."""
        while not self._events.empty():
            path = self._events.get()
            if path.is_relative_to(self.inbox) and not is_ignored(path, self.inbox):
                self.tracker.see(path)
        for path in self.tracker.stable():
            self.take(path)
            if len(self.unsent) >= PUBLISH_CHUNK:
                self.send_unsent()  # a burst reaches the workers as it is taken
        self.send_unsent()
        self.collect()
        self.notice_restart()

    def sweep(self) -> None:
        """Put every file in the inbox under watch."""
        for root, dirs, files in os.walk(self.inbox):
            dirs[:] = [d for d in dirs if not is_ignored(Path(root, d), self.inbox)]
            for name in files:
                path = Path(root, name)
                if not is_ignored(path, self.inbox):
                    self.tracker.see(path)

    def take(self, path: Path) -> None:
        """Move a stable file out of the inbox into ``processing/``, to be queued by ``send_unsent``."""
        if not path.is_file() and not path.is_symlink():
            return
        drop_id = str(uuid.uuid4())
        relative = path.relative_to(self.inbox)
        target = self.processing / relative.parent / f"{drop_id}__{relative.name}"
        target.parent.mkdir(parents=True, exist_ok=True)  # mostly there already: no folder per drop
        try:
            if path.is_symlink():
                os.rename(path, target)  # the link itself, never what it points to; _drop refuses it
            else:
                shutil.move(path, target)
        except FileNotFoundError:
            return  # taken away by the user in the meantime
        log.debug("took %s as %s", relative, drop_id)
        self.unsent[drop_id] = target

    def send_unsent(self) -> None:
        """Queue the files not yet on Redis, ``PUBLISH_CHUNK`` at a time; back off while Redis is unreachable."""
        if not self.unsent or time.monotonic() < self._next_send_try:
            return
        waiting = list(self.unsent.items())
        for start in range(0, len(waiting), PUBLISH_CHUNK):
            chunk = waiting[start : start + PUBLISH_CHUNK]
            try:
                self._send(chunk)
            except Exception as problem:
                wait = RESEND_BACKOFF_SECONDS[min(self._send_failures, len(RESEND_BACKOFF_SECONDS) - 1)]
                self._send_failures += 1
                self._next_send_try = time.monotonic() + wait
                log.warning(
                    "cannot queue %s (%s); %d file(s) wait, next try in %ss",
                    chunk[0][1].name, problem, len(self.unsent), wait,
                )  # fmt: skip
                return
        self._send_failures = 0

    def _send(self, chunk: list[tuple[str, Path]]) -> None:
        """Queue a chunk of drops in one round trip; refuse those that must not be read.

        Raises ``RedisFull`` while Redis is nearly full: the files wait, none is lost.
        """
        check_room(self._marks)
        queued, drops = [], []
        for drop_id, path in chunk:
            drop = self._drop(drop_id, path)
            if drop is None:
                del self.unsent[drop_id]  # refused, and in failed/ already
                continue
            drops.append((drop_id, drop))
            queued.append((drop_id, path))
        with self.celery.producer_or_acquire() as producer, producer.batch():
            send_files(self.celery, drops, producer, self.settings.chunk_files)
        # The messages are on Redis once the batch's context has ended (a failure there leaves
        # the whole chunk unsent, to be sent again); only then are their ids noted.
        for drop_id, path in queued:
            del self.unsent[drop_id]
            self.in_flight[drop_id] = path
        if queued:
            try:
                self._marks.sadd(QUEUED_KEY, *(drop_id for drop_id, _ in queued))
            except RedisError as problem:
                # Were Redis to come back without these messages, their missing ids send them again.
                log.warning("queued %d file(s) but could not note them in Redis (%s)", len(queued), problem)

    def _drop(self, drop_id: str, path: Path) -> FileTask | None:
        """The message for a drop; None (the drop failed with its reason) if it must not be read."""
        if path.is_symlink():
            # Never follow a link out of the inbox: keep the link itself, as evidence.
            self._fail(drop_id, path, "symbolic links are not followed; copy the scan itself into the inbox")
            return None
        size = path.stat().st_size
        if size > self.settings.max_file_bytes:
            self._fail(
                drop_id,
                path,
                f"file is {size / MEGABYTE:.1f} MB, over the {self.settings.max_file_mb:g} MB limit; "
                "scan at a lower resolution or raise DIGITS_MAX_FILE_MB",
            )
            return None
        source = self._source(path)
        return FileTask.carrying(
            path.read_bytes(),
            kind=INBOX,
            job_id=drop_id,
            source=source,
            layout=layout_for_inbox_path(source, self.settings.layouts),
            annotate=self.settings.annotate,
            inbox=str(self.inbox),
        )

    def collect(self) -> None:
        """File away every file whose task has finished."""
        if not self.in_flight or time.monotonic() < self._next_collect_try:
            return
        self._next_collect_try = time.monotonic() + COLLECT_SECONDS
        try:
            finished = task_states(self.celery, list(self.in_flight))
        except Exception as problem:
            log.warning("cannot read task results (%s); will ask again", problem)
            return
        filed = []
        for drop_id, meta in finished.items():
            if meta["status"] not in states.READY_STATES:
                continue
            path = self.in_flight[drop_id]
            try:
                if meta["status"] == states.SUCCESS:
                    result = FileResult.model_validate(meta["result"])
                    self._archive(path, self.failed if result.failed else self.done, reason=result.error or None)
                else:
                    self._fail(drop_id, path, failure_reason(meta["result"]))
            except (OSError, RedisError) as problem:
                # A full disk or Redis away: the file waits in processing/ (its result stays in
                # Redis for a week) and the ingester goes on, rather than exit.
                self._next_collect_try = time.monotonic() + COLLECT_RETRY_SECONDS
                log.warning("cannot file %s away (%s); trying again in %ss", path.name, problem, COLLECT_RETRY_SECONDS)
                break
            del self.in_flight[drop_id]
            filed.append(drop_id)
        if filed:
            with contextlib.suppress(RedisError):  # a stale id costs nothing but a few bytes
                self._marks.srem(QUEUED_KEY, *filed)

    def notice_restart(self) -> None:
        """After Redis restarted, send again the files whose messages it lost.

        A Redis that keeps nothing on disk, or one that crashed within a second
        of its last write, comes back without some queued messages; nobody would
        ever read those files. Their ids are missing from ``QUEUED_KEY`` too,
        which is written after their messages, so only they are sent again.
        """
        if time.monotonic() < self._next_restart_check:
            return
        self._next_restart_check = time.monotonic() + RESTART_CHECK_SECONDS
        try:
            run_id = self._marks.info("server").get("run_id")  # None where a server hides it: no check
            if self._redis_run_id in (None, run_id) or not self.in_flight:
                self._redis_run_id = run_id
                return
            drop_ids = list(self.in_flight)
            kept = self._marks.smismember(QUEUED_KEY, drop_ids)
        except RedisError:
            return  # away again: asked next time, still against the run_id seen before
        self._redis_run_id = run_id
        lost = [drop_id for drop_id, is_kept in zip(drop_ids, kept, strict=True) if not is_kept]
        if lost:
            log.warning("Redis restarted and lost the messages of %d file(s); sending them again", len(lost))
        for drop_id in lost:
            self.unsent[drop_id] = self.in_flight.pop(drop_id)

    def recover(self) -> None:
        """Pick up files left in ``processing/`` by an earlier run: file them away or re-send them.

        Empty folders an earlier run left there are removed.
        """
        left: dict[str, Path] = {}
        for root, _, names in os.walk(self.processing):
            for name in names:
                path = Path(root, name)
                drop_id = self._drop_id(path)
                if drop_id is not None:
                    left[drop_id] = path
        # Empty folders: an earlier version's folder per drop, killed between making it and
        # moving its file in (or moving it on and removing the folder), or an inbox folder's.
        for root, _, _ in os.walk(self.processing, topdown=False):
            self._remove_empty_folders(Path(root))
        try:
            finished = task_states(self.celery, list(left))
        except Exception:
            finished = {}
        for drop_id, path in left.items():
            log.info("recovering %s from an earlier run", self._source(path))
            if finished.get(drop_id, {}).get("status") in states.READY_STATES:
                self.in_flight[drop_id] = path  # collect() files it away
            else:
                self.unsent[drop_id] = path

    def _fail(self, drop_id: str, path: Path, reason: str) -> None:
        """Write the error row ourselves (no worker saw the file) and move it to ``failed/``."""
        source = self._source(path)
        digest = "" if path.is_symlink() else file_sha256(path)
        row = Row.failed(drop_id, source, digest, INBOX_SOURCE_MODEL, f"{source}: {reason}")
        append_rows(inbox_csv(self.settings.results, dt.datetime.now(dt.UTC)), [row], drop_id, self._marks)
        self._archive(path, self.failed, reason=row.error)

    def _archive(self, path: Path, folder: Path, reason: str | None = None) -> None:
        """Move a finished file from ``processing/`` to ``folder``, with its reason if it failed."""
        source = self._source(path)
        target = _free_name(folder / source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if reason is not None:
            Path(f"{target}.error.txt").write_text(f"{utc_now()} {reason}\n", encoding="utf-8")
        shutil.move(path, target)
        if _in_processing(path.relative_to(self.processing))[2]:
            self._remove_empty_folders(path.parent)  # an earlier version's folder per drop
        log.info("%s -> %s", source, target)

    def _remove_empty_folders(self, folder: Path) -> None:
        """Remove ``folder`` and the folders above it in ``processing/``, as long as they are empty."""
        for parent in [folder, *folder.parents]:
            if parent == self.processing or not parent.is_relative_to(self.processing):
                return
            try:
                parent.rmdir()
            except OSError:
                return

    def _source(self, path: Path) -> str:
        """The name rows carry: the path relative to the inbox, with ``/``."""
        if path.is_relative_to(self.processing):
            return _in_processing(path.relative_to(self.processing))[1]
        return path.relative_to(self.inbox).as_posix()

    def _drop_id(self, path: Path) -> str | None:
        """The drop id of a file in ``processing/`` (None for a file that is no drop of ours)."""
        return _in_processing(path.relative_to(self.processing))[0]


def _in_processing(relative: Path) -> tuple[str | None, str, bool]:
    """What a path relative to ``processing/`` holds: the drop id (None if no drop of ours), the
    file's source name, and whether it lies in an earlier version's folder per drop."""
    named = DROP_NAME.fullmatch(relative.name)
    if named is not None:
        return named["drop_id"], (relative.parent / named["name"]).as_posix(), False
    # An earlier version's processing/<drop_id>/<rel>.
    drop_id = relative.parts[0] if len(relative.parts) > 1 else None
    return drop_id, Path(*relative.parts[1:]).as_posix(), True


def failure_reason(result: object) -> str:
    """What to tell a person about a task that failed for good, from what Celery stored for it."""
    kind = type(result).__name__
    if kind == "TimeLimitExceeded":
        limit = f" ({result.args[0]:g} s)" if getattr(result, "args", None) else ""
        return (
            f"reading it took longer than the workers' time limit{limit} and was stopped; scan it again "
            "(300 dpi, one document per file) or raise DIGITS_TASK_TIME_LIMIT"
        )
    if kind == "WorkerLostError":
        return "the worker process died while reading it (out of memory?); see the worker's log, then drop it again"
    return f"recognition failed after retries: {result!r}; see the worker's log"


def _free_name(path: Path) -> Path:
    """``path``, or ``name.2.ext``, ``name.3.ext``… if a file of that name is already filed."""
    candidate, n = path, 1
    while candidate.exists() or Path(f"{candidate}.error.txt").exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate
