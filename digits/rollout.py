"""Which models the workers read with: roll a model version out to running workers, and back.

The choice lives in Redis, beside the queue, so that every worker node sees the
same one; ``DIGITS_MODEL`` and ``DIGITS_STRING_MODEL`` hold until a roll-out
overrides them. Rolling out restarts the workers' pool processes (Celery's
``pool_restart``): each finishes the batch it is reading, then a new one loads
the models the rollout names. Queued files wait on Redis meanwhile, so none is
lost, and the ``model`` column of each row says which models read it.

No TensorFlow here: ``digits models`` is a light command.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from celery import Celery
from redis import Redis

from digits.contracts import utc_now
from digits.settings import Settings

ROLLOUT_KEY = "digits:models"
"""The models rolled out (JSON ``Choice``); absent: the settings' own."""

HISTORY_KEY = "digits:models:history"
"""Earlier choices, newest first, for ``roll_back`` (an empty JSON object stands for the settings' own)."""

HISTORY_LENGTH = 20
"""How many earlier choices are kept."""


@dataclass(frozen=True)
class Choice:
    """The digit models and string models workers read with (specs as in ``DIGITS_MODEL``)."""

    model: str
    string_model: str
    since: str = ""
    """When it was rolled out (empty for the settings' own)."""
    note: str = ""
    """How it came to be rolled out, when not by hand: ``digits models promote`` says whether its gate passed."""


def active(redis: Redis, settings: Settings) -> Choice:
    """The models workers read with now."""
    stored = redis.get(ROLLOUT_KEY)
    if stored is None:
        return Choice(settings.model, settings.string_model)
    return Choice(**json.loads(stored))


def roll_out(redis: Redis, celery: Celery, choice: Choice) -> list[str]:
    """Make ``choice`` the workers' models and restart their pools; the names of the workers that answered."""
    previous = redis.get(ROLLOUT_KEY) or b"{}"
    chosen = Choice(choice.model, choice.string_model, since=utc_now(), note=choice.note)
    redis.pipeline().set(ROLLOUT_KEY, json.dumps(asdict(chosen))).lpush(HISTORY_KEY, previous).ltrim(
        HISTORY_KEY, 0, HISTORY_LENGTH - 1
    ).execute()
    return restart_pools(celery)


def roll_back(redis: Redis, celery: Celery, settings: Settings) -> tuple[Choice, list[str]]:
    """Go back to the models used before the last roll-out; returns them and the workers that answered."""
    previous = redis.lpop(HISTORY_KEY)
    if previous is None:
        raise LookupError("nothing to roll back: no roll-out is on record")
    earlier = json.loads(previous)
    if earlier:
        redis.set(ROLLOUT_KEY, json.dumps(earlier))
    else:
        redis.delete(ROLLOUT_KEY)
    return active(redis, settings), restart_pools(celery)


def restart_pools(celery: Celery) -> list[str]:
    """Ask every worker to replace its pool processes once their batches are done."""
    replies = celery.control.pool_restart(reply=True, timeout=5)
    return sorted(name for reply in replies for name in reply)
