"""Files written per second, counted in Redis by every worker together and read by ``digits status``."""

from __future__ import annotations

import time

from redis import Redis

WRITTEN_KEY = "digits:files-written:{second}"
"""Files whose rows were written in one second (Unix time), by all workers together."""

WRITTEN_TTL_SECONDS = 3600
"""How long each second's count is kept."""


def count_written(redis: Redis, files: int = 1) -> None:
    """Count files written now (workers call this after each write)."""
    key = WRITTEN_KEY.format(second=int(time.time()))
    redis.pipeline().incrby(key, files).expire(key, WRITTEN_TTL_SECONDS).execute()


def files_written(redis: Redis, seconds: int) -> int:
    """Files written over the last ``seconds`` whole seconds (the current one left out, as it is not over)."""
    now = int(time.time())
    counts = redis.mget([WRITTEN_KEY.format(second=now - back) for back in range(1, seconds + 1)])
    return sum(int(count) for count in counts if count is not None)
