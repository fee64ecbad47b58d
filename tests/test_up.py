"""``digits up``: the whole service in one command, with a Redis of its own when none answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from redis import Redis

from tests.conftest import free_port, wait_until
from tests.synth import draw_digits, encode


def test_up_starts_redis_worker_and_ingester_and_stops_them_all(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers here yet
    env = dict(os.environ, DIGITS_REDIS_URL=url, DIGITS_STABLE_SECONDS="0.3", TF_CPP_MIN_LOG_LEVEL="2")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "digits.cli", "up", "--workers", "1"], cwd=tmp_path, env=env,
                          stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until(lambda: (tmp_path / "inbox").exists() or up.poll() is not None, 30, "the inbox to be created")
        (tmp_path / "inbox" / "up-56.png").write_bytes(encode(draw_digits("56")))
        rows = wait_until(lambda: list((tmp_path / "results" / "inbox").glob("*.csv")), 90, "a result CSV")
        wait_until(lambda: "up-56.png" in rows[0].read_text(), 30, "the row")
        assert ",56," in rows[0].read_text()
        wait_until(lambda: (tmp_path / "done" / "up-56.png").exists(), 10, "the file in done/")
        assert Redis.from_url(url).ping()
        assert (tmp_path / ".digits" / "redis" / "appendonlydir").exists()  # persistent queue
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0, (tmp_path / "up.log").read_text()
    try:
        Redis.from_url(url, socket_connect_timeout=0.5).ping()
        still_up = True
    except Exception:
        still_up = False
    assert not still_up, "the private Redis must stop with `digits up`"


def test_up_says_how_to_get_redis_when_it_cannot_start_one(tmp_path):
    env = dict(os.environ, DIGITS_REDIS_URL="redis://:s3cret@redis.invalid:6379/0")
    done = subprocess.run([sys.executable, "-m", "digits.cli", "up"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "no Redis answers at redis://:***@redis.invalid:6379/0" in done.stderr
    assert "s3cret" not in done.stderr, "a password never appears in a message"
    assert "DIGITS_REDIS_URL" in done.stderr
