"""Redis going away: files wait in the ingester, and queued work survives a restart of a persistent Redis."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from digits.celery_app import QUEUE
from ingest.watcher import QUEUED_KEY
from tests.conftest import REDIS_SERVERS, RedisServer, Stack, wait_until
from tests.synth import draw_digits, encode

# Every fault here is tried against Redis and against the Valkey server `digits up` falls back on.
pytestmark = pytest.mark.parametrize("server", REDIS_SERVERS)


@pytest.fixture
def private_redis(tmp_path: Path, server: str) -> Iterator[RedisServer]:
    """A server of the test's own, of the kind the test is run against."""
    redis = RedisServer(tmp_path / "redis", server=server).start()
    yield redis
    redis.stop()


@pytest.fixture
def persistent(tmp_path: Path, server: str) -> Iterator[tuple[RedisServer, Stack]]:
    """A server that keeps its data across restarts (append-only file), as `digits up` runs it, and a stack on it."""
    redis = RedisServer(tmp_path / "redis", appendonly=True, server=server).start()
    (tmp_path / "stack").mkdir()
    stack = Stack(tmp_path / "stack", redis.url)
    yield redis, stack
    stack.stop()
    redis.stop()


def drop_digits(stack: Stack, names: list[str]) -> None:
    for name in names:
        stack.drop(f"{name}.png", encode(draw_digits(name.split("-")[1])))


def assert_each_once_and_right(stack: Stack, count: int) -> None:
    rows = stack.inbox_rows()
    assert sorted(row["source"] for row in rows) == sorted(stack.dropped), "a file lost or doubled"
    assert all(row["digits"] == row["source"].split("-")[1].removesuffix(".png") for row in rows)
    wait_until(
        lambda: len(list(stack.done.iterdir())) == count, 30, f"all {count} files in done/", explain=stack.whereabouts
    )


def test_files_dropped_while_redis_is_down_wait_and_go_when_it_is_back(persistent):
    server, stack = persistent
    stack.start_worker(concurrency=1, name="steady")
    stack.start_ingester()
    drop_digits(stack, ["before-12", "before-34"])
    stack.wait_for_inbox_rows(2, timeout=60)

    server.stop()
    drop_digits(stack, ["during-56", "during-78", "during-90"])
    # The ingester takes them (out of the inbox, into processing/) but cannot queue them.
    wait_until(
        lambda: not list(stack.inbox.glob("*.png")), 20, "the ingester to take the files", explain=stack.whereabouts
    )
    time.sleep(3)
    assert len(stack.inbox_rows()) == 2

    server.start()
    stack.wait_for_inbox_rows(5, timeout=120)
    time.sleep(1)
    assert_each_once_and_right(stack, 5)


def test_files_wait_while_redis_is_nearly_full_and_go_once_it_has_room(persistent):
    server, stack = persistent
    worker = stack.start_worker(concurrency=1, name="full")
    stack.start_ingester()
    drop_digits(stack, ["roomy-13"])
    stack.wait_for_inbox_rows(1, timeout=60)

    # Nearly at its maxmemory, with noeviction: the ingester holds new files back, saying why.
    redis = Redis.from_url(server.url)
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", int(redis.info("memory")["used_memory"] / 0.95))
    drop_digits(stack, ["full-24", "full-57"])
    log = stack.root / "ingest-1.log"
    # The two files may be taken one try apart, so the first warning can say that one file waits.
    both_held = r"cannot queue \S+full-\d+\.png \(Redis is (\d+)% full .* of its maxmemory .*\); 2 file"
    wait_until(lambda: re.search(both_held, log.read_text(errors="replace")), 30,
               "the ingester to say Redis is full and both files wait", explain=stack.whereabouts)  # fmt: skip
    said = log.read_text(errors="replace")
    assert int(re.search(both_held, said)[1]) >= 90, said  # measured when tried: it may have passed 95% by then
    assert "DIGITS_RESULT_DAYS" in said
    assert len(stack.inbox_rows()) == 1 and not list(stack.failed.iterdir())

    redis.config_set("maxmemory", 0)
    stack.wait_for_inbox_rows(3, timeout=120)
    time.sleep(1)
    assert_each_once_and_right(stack, 3)
    assert worker.poll() is None


def test_queued_work_survives_a_restart_of_a_persistent_redis(persistent):
    server, stack = persistent
    stack.start_ingester()  # no worker yet: the tasks wait in Redis
    drop_digits(stack, ["queued-21", "queued-43", "queued-65"])
    wait_until(
        lambda: not list(stack.inbox.glob("*.png")), 20, "the ingester to queue the files", explain=stack.whereabouts
    )
    time.sleep(2)  # the append-only file is written every second

    server.stop()
    server.start()
    stack.start_worker(concurrency=1, name="late")
    stack.wait_for_inbox_rows(3, timeout=120)
    time.sleep(1)
    assert_each_once_and_right(stack, 3)


def test_files_a_worker_gathers_across_a_lost_connection_are_still_read(persistent):
    """Celery clears the event loop's timers when the broker connection drops; a batch's flush timer must come back.

    Without it, a file buffered when Redis went away, and every file after it,
    waited for a full batch that never came (seen on CI as a rare timeout).
    """
    server, stack = persistent
    # A long wait holds the first file in the worker's buffer while Redis goes away.
    stack.start_worker(concurrency=1, name="gathering", DIGITS_BATCH_WAIT="5")
    stack.start_ingester()
    drop_digits(stack, ["gathered-24"])
    redis = Redis.from_url(server.url)
    wait_until(
        lambda: redis.llen(QUEUE) == 0 and redis.hlen("unacked") == 1,
        20,
        "the worker to take the file into its buffer",
        explain=stack.whereabouts,
    )
    server.stop()
    server.start()
    drop_digits(stack, ["after-68", "after-13"])
    stack.wait_for_inbox_rows(3, timeout=120)
    time.sleep(1)
    assert_each_once_and_right(stack, 3)


def test_work_a_redis_that_keeps_nothing_lost_in_a_restart_is_sent_again(private_redis, stack):
    """A Redis without an append-only file comes back empty: the ingester notices and queues the files again."""
    stack.start_ingester()  # no worker yet: the tasks wait in Redis
    drop_digits(stack, ["forgotten-21", "forgotten-43"])
    redis = Redis.from_url(private_redis.url)
    # The ingester notes the files it queued once their messages are on Redis.
    wait_until(lambda: redis.scard(QUEUED_KEY) == 2, 20, "the ingester to queue the files", explain=stack.whereabouts)
    assert redis.llen(QUEUE) >= 1
    private_redis.stop()
    private_redis.start()
    assert redis.llen(QUEUE) == 0, "this Redis was meant to keep nothing"
    stack.start_worker(concurrency=1, name="after-restart")
    stack.wait_for_inbox_rows(2, timeout=120)
    time.sleep(1)
    assert_each_once_and_right(stack, 2)
