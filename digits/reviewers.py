"""The people who review: their names, password hashes (argon2) and roles, kept in Redis for every station.

``digits users add|list|remove`` manage them; the review station checks a
login against them. Passwords are never stored, only their argon2 hashes.
An admin may also draw and save layouts in the station; the first reviewer
``digits up`` creates is one.
"""

from __future__ import annotations

import json
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis import Redis

from digits.contracts import utc_now

USERS_KEY = "digits:review:users"
"""Hash of reviewer name -> JSON with the password's argon2 hash, when it was set, its epoch and ``admin``."""

FIRST_REVIEWER = "admin"
"""The reviewer ``digits up`` creates, with a password it prints once, when there is none yet."""

_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,40}")

_HASHER = PasswordHasher()

_NOBODY = _HASHER.hash("no such reviewer")
"""Checked against when a name is unknown, so that a wrong name takes as long as a wrong password."""


class ReviewerError(ValueError):
    """A reviewer's name or password that cannot be used; the message says why."""


def add(redis: Redis, name: str, password: str, admin: bool | None = None) -> None:
    """Add a reviewer, or set the password of one who exists (which ends their sessions: see ``epoch``).

    ``admin`` makes them an admin (True) or not (False); None keeps the role of
    one who exists, and makes a new reviewer no admin.
    """
    if not valid_name(name):
        raise ReviewerError(f"reviewer name {name!r}: use 1 to 40 letters, digits, '.', '_', '-' or '@'")
    if len(password) < 8:
        raise ReviewerError("the password is too short: use at least 8 characters")
    if admin is None:
        admin = is_admin(redis, name)
    record = {"hash": _HASHER.hash(password), "since": utc_now(), "epoch": secrets.token_hex(8), "admin": admin}
    redis.hset(USERS_KEY, name, json.dumps(record))


def is_admin(redis: Redis, name: str) -> bool:
    """Whether the reviewer ``name`` exists and may draw and save layouts."""
    raw = redis.hget(USERS_KEY, name)
    return bool(raw and json.loads(raw).get("admin"))


def admins(redis: Redis) -> list[str]:
    """The admins' names, sorted."""
    return sorted(name.decode() for name, raw in redis.hgetall(USERS_KEY).items() if json.loads(raw).get("admin"))


def valid_name(name: str) -> bool:
    """Whether ``name`` could be a reviewer's."""
    return bool(_NAME.fullmatch(name))


def remove(redis: Redis, name: str) -> bool:
    """Remove a reviewer (their sessions end with it); whether there was one."""
    return bool(redis.hdel(USERS_KEY, name))


def names(redis: Redis) -> list[str]:
    """Every reviewer's name, sorted."""
    return sorted(name.decode() for name in redis.hkeys(USERS_KEY))


def epoch(redis: Redis, name: str) -> str | None:
    """What a session of this reviewer must carry to stand: new with each password; None for no such reviewer.

    A session keeps the epoch of its login, so that setting a password or
    removing the reviewer ends every session they have, on every station.
    """
    raw = redis.hget(USERS_KEY, name)
    if raw is None:
        return None
    record = json.loads(raw)
    return record.get("epoch", record["since"])


def check(redis: Redis, name: str, password: str) -> bool:
    """Whether ``password`` is this reviewer's (always as slow as an argon2 check, known name or not)."""
    raw = redis.hget(USERS_KEY, name) if valid_name(name) else None
    stored = json.loads(raw)["hash"] if raw else _NOBODY
    try:
        return _HASHER.verify(stored, password) and raw is not None
    except (VerificationError, InvalidHashError):
        return False


def first_reviewer(redis: Redis) -> str | None:
    """Create ``FIRST_REVIEWER``, an admin, with a new random password when there is no reviewer yet; the
    password, or None."""
    if redis.hlen(USERS_KEY):
        return None
    password = secrets.token_urlsafe(12)
    add(redis, FIRST_REVIEWER, password, admin=True)
    return password
