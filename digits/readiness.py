"""Pool processes say when their models are warm, so that ``digits up`` can say when the service is ready.

``digits up`` hands the worker it starts a Redis key (in ``READY_KEY_ENV``);
each pool process adds its pid to that set once its models are loaded and
traced for a lone file. A worker started any other way has no key and says nothing.
"""

from __future__ import annotations

import os

from redis import Redis

READY_KEY_ENV = "DIGITS_READY_KEY"
"""Environment variable naming the Redis set that warm pool processes join."""

READY_TTL_SECONDS = 24 * 3600
"""How long the set is kept, should ``digits up`` die without removing it."""


def announce_ready(redis: Redis) -> None:
    """Join the set ``READY_KEY_ENV`` names, if any: this process's models are warm."""
    key = os.environ.get(READY_KEY_ENV)
    if key:
        redis.pipeline().sadd(key, os.getpid()).expire(key, READY_TTL_SECONDS).execute()


def warm_processes(redis: Redis, key: str) -> int:
    """How many pool processes have joined ``key``."""
    return int(redis.scard(key))
