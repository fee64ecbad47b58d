"""A network share that sends no file events: the periodic rescan alone finds files, and only once they are whole."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from redis import Redis

import ingest.watcher
from digits.celery_app import QUEUE, make_app
from digits.settings import Settings
from ingest.watcher import Ingester
from tests.conftest import wait_until
from tests.synth import draw_digits, encode


class DeafObserver:
    """A watchdog observer on a share that never reports a change (SMB, NFS, an overflowing queue)."""

    def schedule(self, *_: object, **__: object) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self) -> None: ...


@pytest.fixture
def deaf_ingester(tmp_path, private_redis, monkeypatch):
    monkeypatch.setattr(ingest.watcher, "Observer", DeafObserver)
    settings = Settings(
        redis_url=private_redis.url, inbox=tmp_path / "inbox", archive=tmp_path, results=tmp_path / "results",
        stable_seconds=2, rescan_seconds=1,
    )  # fmt: skip
    ingester = Ingester(settings, make_app(private_redis.url))
    stop = threading.Event()
    thread = threading.Thread(target=ingester.run, args=(stop,))
    thread.start()
    wait_until(lambda: (tmp_path / "processing").exists(), 10, "the ingester to start")
    yield settings, Redis.from_url(private_redis.url)
    stop.set()
    thread.join(10)


def queued_files(redis: Redis) -> dict[str, bytes]:
    """``{source: file bytes}`` of every recognition task waiting in the queue."""
    queued = {}
    for message in redis.lrange(QUEUE, 0, -1):
        args, _, _ = json.loads(base64.b64decode(json.loads(message)["body"]))
        queued[args[0]["source"]] = base64.b64decode(args[0]["data"])
    return queued


def test_without_events_the_rescan_takes_a_file_once_it_stops_growing(deaf_ingester):
    settings, redis = deaf_ingester
    data = encode(draw_digits("5309"))
    path = settings.inbox / "share" / "slow-5309.png"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        # Written over several rescans, pausing longer than one rescan but less than
        # DIGITS_STABLE_SECONDS, as over a slow share.
        for start in range(0, len(data), len(data) // 3 + 1):
            handle.write(data[start : start + len(data) // 3 + 1])
            handle.flush()
            time.sleep(1.2)
            assert queued_files(redis) == {}, "taken while still growing"
    wait_until(lambda: queued_files(redis), 10, "the rescan to queue the file")
    assert queued_files(redis) == {"share/slow-5309.png": data}
    assert not path.exists()
