"""``digits up``: Redis (when none answers), the workers, the ingester and the review station, stopped in order.

Two Celery workers run: one reads files, the other the pages of long
documents (``digits worker --pages``), started once the first is warm.
Children run in their own sessions so that Ctrl-C reaches only this process,
which then stops them in the order that loses nothing: first the ingester (no
new files taken), then the workers (warm shutdown: tasks in progress finish,
queued ones stay on Redis), and last the private Redis it started (append-only
file on, so the queue survives until the next ``digits up``).

It says in a line which Redis it uses (and, with no reviewer yet, how to log
in to the station), and ends its start-up with one line, ``ready``, once every
pool process of the file worker has its models warm (a second line says when
the page worker's are). The workers' banners and informational logs, and
TensorFlow's own, are shown with ``-v`` only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from digits import reviewers
from digits.celery_app import app
from digits.cli.redis_server import answers, start_server
from digits.readiness import READY_KEY_ENV, warm_processes
from digits.settings import Settings, redacted
from ingest.watcher import Ingester

log = logging.getLogger(__name__)

WORKER_STOP_SECONDS = 150
"""How long the worker gets to finish its tasks on shutdown before it is killed."""

STATE_DIR = Path(".digits")
"""Working folder of ``digits up``: the private Redis's data and append-only file are in ``redis/``."""

READY_POLL_SECONDS = 0.2
"""How often ``digits up`` asks Redis whether the pool processes are warm."""


def start_worker(workers: int, env: dict[str, str], verbose: bool, pages: bool = False) -> subprocess.Popen:
    """Start ``digits worker`` (``--pages``: the page worker) as a child process; without ``verbose``, it says
    only warnings and errors."""
    command = [sys.executable, "-m", "digits.cli", "worker", "--concurrency", str(workers), *(["--pages"] * pages)]
    if not verbose:
        command += ["--quiet", "--loglevel", "WARNING"]
    return subprocess.Popen(command, env=env, start_new_session=True)


def start_station(env: dict[str, str], verbose: bool) -> subprocess.Popen:
    """Start ``digits review`` (the review station) as a child process."""
    command = [sys.executable, "-m", "digits.cli", "review", *(["--verbose"] if verbose else [])]
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop(*processes: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM children (together), wait for them, SIGKILL those that do not go within ``timeout`` seconds."""
    running = [process for process in processes if process is not None and process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _stop_when_gone(worker: subprocess.Popen, stopping: threading.Event, name: str) -> None:
    # Taking files with no worker to read them would only fill the queue:
    # stop, so that whatever supervises `digits up` sees it and restarts it.
    code = worker.wait()
    if not stopping.is_set():
        log.error("the %s exited with code %s; stopping", name, code)
        stopping.set()


class PageWorker:
    """The page worker of ``digits up``: started once the file worker is warm, stopped with it.

    Loading its models beside the file worker's would double the cold start of
    a small machine, and the pages of a long document can wait on Redis meanwhile.
    """

    def __init__(self, processes: int, env: dict[str, str], verbose: bool, stopping: threading.Event) -> None:
        self.processes, self.env, self.verbose, self.stopping = processes, env, verbose, stopping
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start it, unless it runs already or ``digits up`` is stopping."""
        with self._lock:
            if self._closed or self.process is not None:
                return
            self.process = start_worker(self.processes, self.env, self.verbose, pages=True)
        threading.Thread(target=_stop_when_gone, args=(self.process, self.stopping, "page worker"), daemon=True).start()

    def close(self) -> subprocess.Popen | None:
        """Never start it from now on; the process to stop, if it was started."""
        with self._lock:
            self._closed = True
            return self.process


def _warm_up_in_turn(
    redis: Redis, key: str, workers: int, pages: PageWorker, settings: Settings, stopping: threading.Event
) -> None:
    """Say ``ready`` once the file worker's processes are warm, then start the page worker and say when it is."""
    try:
        if not _warm(redis, key, workers, stopping):
            return
        station = f"; review at {station_url(settings)}" if settings.review_port else ""
        log.info("ready: drop scans into %s; rows in %s%s", _shown(settings.inbox), _shown(settings.results), station)
        pages.start()
        if _warm(redis, key, workers + pages.processes, stopping):
            log.info("long documents: the page worker is warm too")
    except RedisError as problem:
        log.warning("cannot tell when the workers are warm (%s); they start all the same", problem)
        pages.start()


def _warm(redis: Redis, key: str, processes: int, stopping: threading.Event) -> bool:
    """Wait until ``processes`` pool processes have their models warm; False if ``digits up`` stops first."""
    while not stopping.is_set() and warm_processes(redis, key) < processes:
        stopping.wait(READY_POLL_SECONDS)
    return not stopping.is_set()


def station_url(settings: Settings) -> str:
    """Where a person on this machine opens the review station."""
    host = "127.0.0.1" if settings.review_host in ("0.0.0.0", "::") else settings.review_host
    return f"http://{host}:{settings.review_port}"


def _first_reviewer(redis: Redis) -> None:
    """Make a first reviewer when there is none, and say once how to log in as them."""
    password = reviewers.first_reviewer(redis)
    if password:
        log.info(
            "review station: log in as %s with password %s (shown this once; an admin, who may draw layouts; "
            "`digits users add NAME` adds reviewers or sets a password)", reviewers.FIRST_REVIEWER, password,
        )  # fmt: skip


def _shown(folder: Path) -> str:
    """``folder`` as a person would type it here: ``./inbox`` below the working folder, else in full."""
    folder = folder.resolve()
    return f"./{folder.relative_to(Path.cwd())}" if folder.is_relative_to(Path.cwd()) else str(folder)


def run_up(settings: Settings, workers: int, verbose: bool = False, page_workers: int = 1) -> int:
    """Run the whole service in the foreground until SIGINT or SIGTERM.

    ``workers`` pool processes read files, and ``page_workers`` the pages of long documents.
    Returns the exit status: 0 when stopped by a signal, 1 when a worker died.
    Raises ``RedisUnavailable`` when no Redis answers and none can be started.
    """
    url = settings.redis_url
    private_server = None
    if answers(url):
        log.info("Redis: the one answering at %s", redacted(url))
    else:
        data_dir = STATE_DIR / "redis"
        private_server, server = start_server(url, data_dir)
        log.info("Redis: %s at %s (data in %s)", server.described, redacted(url), data_dir)
    stopping, asked_to_stop = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        asked_to_stop.set()
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    ready_key = f"digits:up:{uuid.uuid4()}:ready"
    env = dict(os.environ, **{READY_KEY_ENV: ready_key})
    if verbose:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # TensorFlow's own logs too
    log.info("starting workers: %d pool process(es) for files, then %d for long documents' pages, each loading "
             "the models", workers, page_workers)  # fmt: skip
    worker = start_worker(workers, env, verbose)
    next_port = str(settings.metrics_port + 1) if settings.metrics_port else "0"  # one node per port
    pages = PageWorker(page_workers, env | {"DIGITS_METRICS_PORT": next_port}, verbose, stopping)
    marks = Redis.from_url(url)
    station = None
    if settings.review_port:
        _first_reviewer(marks)
        station = start_station(env, verbose)
    threading.Thread(target=_stop_when_gone, args=(worker, stopping, "worker"), daemon=True).start()
    warming = (marks, ready_key, workers, pages, settings, stopping)
    threading.Thread(target=_warm_up_in_turn, args=warming, daemon=True).start()
    try:
        Ingester(settings, app).run(stopping)
    finally:
        log.info("stopping: the workers finish their tasks in progress")
        stop(station, timeout=10)
        stop(worker, pages.close(), timeout=WORKER_STOP_SECONDS)
        with contextlib.suppress(RedisError):  # else it expires
            marks.delete(ready_key)
        stop(private_server, timeout=30)
    return 0 if asked_to_stop.is_set() else 1
