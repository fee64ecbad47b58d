"""Failed logins slow down the next ones from the same address, so that passwords cannot be guessed at speed."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis import Redis

FAILURES_KEY = "digits:review:failed-logins:{address}"
"""Failed logins from an address in the last ``FORGET_SECONDS``."""

FORGET_SECONDS = 900
"""How long failures are remembered."""

FIRST_WAIT = 0.5
"""Seconds the answer to a first failed login waits; each further failure doubles it..."""

LONGEST_WAIT = 8.0
"""...up to this."""


class LoginThrottle:
    """Answers failed logins late: the more failures from an address, the later (kept in Redis, for every station)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def attempt(self, address: str, check: Callable[[], bool]) -> bool:
        """Run ``check`` (a password check); on failure, wait before answering. Whether it passed."""
        key = FAILURES_KEY.format(address=address)
        if check():
            self.redis.delete(key)
            return True
        failures = self.redis.incr(key)
        self.redis.expire(key, FORGET_SECONDS)
        time.sleep(min(LONGEST_WAIT, FIRST_WAIT * 2 ** (failures - 1)))
        return False
