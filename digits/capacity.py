"""Room left in Redis: new files are held back before a full Redis would refuse the writes that keep them safe.

Redis runs with ``maxmemory-policy noeviction``: when full it refuses writes
rather than forget which rows are written. A worker needs room to take a
message and store its result, and a message it cannot record as taken is at
risk; so the ingester and ``submit()`` stop queueing a little before Redis is full.
"""

from __future__ import annotations

from redis import Redis

FULL_SHARE = 0.9
"""Share of Redis's ``maxmemory`` past which no new file is queued: the rest is the workers' room."""


class RedisFull(RuntimeError):
    """Redis is nearly at its ``maxmemory``; the message says how full and what to do."""


def check_room(redis: Redis) -> None:
    """Raise ``RedisFull`` when Redis holds more than ``FULL_SHARE`` of its ``maxmemory`` (none set: always room)."""
    memory = redis.info("memory")
    limit, used = int(memory.get("maxmemory", 0)), int(memory["used_memory"])
    if limit and used > FULL_SHARE * limit:
        raise RedisFull(
            f"Redis is {used / limit:.0%} full ({memory['used_memory_human']} of its maxmemory "
            f"{memory['maxmemory_human']}), so no new file is queued until it has room: raise its maxmemory, or "
            "keep results and marks for fewer days (DIGITS_RESULT_DAYS, DIGITS_MARK_DAYS)"
        )
