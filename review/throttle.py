"""Failed logins, counted per account and per client address in moving windows in Redis (the ``limits`` library).

An account that failed ``ACCOUNT_FAILURES`` times in the window is refused,
whatever the password, until its oldest failure leaves the window; an address
that failed ``ADDRESS_FAILURES`` times likewise, for every account. Nothing
sleeps: a refused login is answered at once with the seconds to wait, so that
a flood of guesses never holds a thread that other reviewers need. Every
station on one Redis shares the counts.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from digits import reviewers

ACCOUNT_FAILURES = parse("10 per 15 minutes")
"""Failed logins after which an account is refused until the window passes (other accounts are unaffected)."""

ADDRESS_FAILURES = parse("50 per 15 minutes")
"""Failed logins after which a client address is refused, for every account: higher, as an office shares one."""

KEY_PREFIX = "digits:review:logins"
"""Where the windows live in Redis."""


class LoginThrottle:
    """The failed-login windows of every account and client address, in the service's Redis."""

    def __init__(self, redis: Redis) -> None:
        # The URL only names the kind of storage: the connections are the station's own pool.
        storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=KEY_PREFIX, connection_pool=redis.connection_pool
        )
        self.windows = MovingWindowRateLimiter(storage)

    async def refusal(self, account: str, address: str) -> int | None:
        """Seconds until a login to ``account`` from ``address`` may be tried again; None if it may be now.

        A login that may go ahead counts as a failure of its account until it
        succeeds (``succeeded``): racing guesses cannot all pass the check
        before any of them is counted.
        """
        if not await self.windows.test(ADDRESS_FAILURES, "address", address):
            return await self._wait(ADDRESS_FAILURES, "address", address)
        if reviewers.valid_name(account) and not await self.windows.hit(ACCOUNT_FAILURES, "account", account):
            return await self._wait(ACCOUNT_FAILURES, "account", account)
        return None

    async def failed(self, address: str) -> None:
        """Count a wrong password against the address (the account's attempt is counted already)."""
        await self.windows.hit(ADDRESS_FAILURES, "address", address)

    async def succeeded(self, account: str) -> None:
        """The account's failures are forgiven once its password is given (the address's are not)."""
        await self.windows.clear(ACCOUNT_FAILURES, "account", account)

    async def _wait(self, limit, *identity: str) -> int:
        stats = await self.windows.get_window_stats(limit, *identity)
        return max(1, math.ceil(stats.reset_time - time.time()))
