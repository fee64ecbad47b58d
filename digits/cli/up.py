"""``digits up``: Redis (when none is reachable), one Celery worker and the ingester, stopped in order.

Children run in their own sessions so that Ctrl-C reaches only this process,
which then stops them in the order that loses nothing: first the ingester
(no new files taken), then the worker (warm shutdown: tasks in progress
finish, queued ones stay on Redis), and last the private Redis it started
(append-only file on, so the queue survives until the next ``digits up``).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import RedisError

from digits.settings import Settings, redacted

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Redis hosts for which ``digits up`` may start a private ``redis-server``."""

REDIS_START_SECONDS = 10
"""How long a freshly started ``redis-server`` gets to answer PING."""

WORKER_STOP_SECONDS = 150
"""How long the worker gets to finish its tasks on shutdown before it is killed."""

STATE_DIR = Path(".digits")
"""Working folder for the private Redis's data and append-only file."""


class StackError(RuntimeError):
    """``digits up`` cannot start; the message says what to do."""


def redis_reachable(url: str) -> bool:
    """Whether a Redis answers at ``url``."""
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def start_private_redis(url: str, state_dir: Path) -> subprocess.Popen:
    """Start ``redis-server`` for ``url`` with its data in ``state_dir``, persistent (AOF)."""
    parsed = urlparse(url)
    binary = shutil.which("redis-server")
    if parsed.hostname not in LOCAL_HOSTS or binary is None:
        raise StackError(
            f"no Redis answers at {redacted(url)}, and "
            + ("it is not on this machine" if binary else "no redis-server is on PATH")
            + ": install one (apt-get install redis-server) or set DIGITS_REDIS_URL to a running Redis"
        )
    data_dir = state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        binary,
        "--port", str(parsed.port or 6379),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes",
        "--save", "",
    ]  # fmt: skip
    if parsed.password:
        command += ["--requirepass", parsed.password]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + REDIS_START_SECONDS
    while not redis_reachable(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise StackError(f"redis-server for {redacted(url)} did not start; is port {parsed.port} taken?")
        time.sleep(0.1)
    log.info("started a private Redis at %s (data in %s)", redacted(url), data_dir)
    return process


def start_worker(workers: int, env: dict[str, str]) -> subprocess.Popen:
    """Start ``digits worker`` as a child process."""
    command = [sys.executable, "-m", "digits.cli", "worker", "--concurrency", str(workers)]
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM a child, wait for it, SIGKILL it if it does not go."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stop_when_gone(worker: subprocess.Popen, stopping: threading.Event) -> None:
    # Taking files with no worker to read them would only fill the queue:
    # stop, so that whatever supervises `digits up` sees it and restarts it.
    code = worker.wait()
    if not stopping.is_set():
        log.error("the worker exited with code %s; stopping", code)
        stopping.set()


def run_up(settings: Settings, workers: int) -> int:
    """Run the whole service in the foreground until SIGINT or SIGTERM.

    Returns the exit status: 0 when stopped by a signal, 1 when the worker died.
    """
    from digits.celery_app import app
    from ingest.watcher import Ingester

    redis = None
    if not redis_reachable(settings.redis_url):
        redis = start_private_redis(settings.redis_url, STATE_DIR)
    stopping, asked_to_stop = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        asked_to_stop.set()
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    worker = start_worker(workers, dict(os.environ))
    threading.Thread(target=_stop_when_gone, args=(worker, stopping), daemon=True).start()
    try:
        log.info("inbox %s -> results %s", settings.inbox.resolve(), settings.results.resolve())
        Ingester(settings, app).run(stopping)
    finally:
        log.info("stopping: worker finishes its tasks in progress")
        stop(worker, WORKER_STOP_SECONDS)
        stop(redis, 30)
    return 0 if asked_to_stop.is_set() else 1
