"""Rows a person looks at: the review queue in Redis, its leases, and the decisions people make.

A worker that writes a ``review`` row, or an ``ok`` row drawn for the blind
audit, saves the field's crop and its page beside the CSV and enqueues a
``ReviewItem`` (``enqueue``). Reviewers lease items one at a time (``next``):
two never hold the same item, and a lease that expires (a closed tab) returns
its item to the queue. A decision is taken in Redis by one script, which
accepts it only from the reviewer holding the item and only once, so that of
racing decisions exactly one stands; its line is then appended to
``results/reviewed/YYYY-MM-DD.csv`` exactly once, under the same lock and marks
as the result CSVs. The script also notes the line as unwritten until it is
appended, so that a station that dies between the two writes it at its next
start (``write_unwritten``). A decision undone appends a line that takes it
back, so that history is never rewritten. No TensorFlow here: the station shows
the pictures the worker saved.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import statistics
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from digits.contracts import (
    AUDIT_KIND,
    COLUMNS,
    CONFIRMED,
    CORRECTED,
    OK,
    REVIEW,
    REVIEW_KIND,
    REVIEWED_COLUMNS,
    UNDONE,
    UNREADABLE,
    Decision,
    ReviewItem,
    Row,
    utc_now,
)
from digits.results import append_drops, read_rows

ITEMS_KEY = "digits:review:items"
"""Hash of item id -> ``ReviewItem`` JSON."""

PENDING_KEYS = {REVIEW_KIND: "digits:review:pending:review", AUDIT_KIND: "digits:review:pending:audit"}
"""Sorted sets of the items waiting for a person, by kind, scored by the time they were queued."""

LEASES_KEY = "digits:review:leases"
"""Sorted set of leased item ids, scored by when the lease runs out."""

HOLDERS_KEY = "digits:review:holders"
"""Hash of leased item id -> the reviewer who holds it."""

DECIDED_KEY = "digits:review:decided"
"""Hash of item id -> the standing ``Decision`` JSON."""

SHOWN_KEY = "digits:review:shown"
"""Hash of item id -> when it was last leased (Unix time), to time each decision."""

VERSIONS_KEY = "digits:review:versions"
"""Hash of item id -> how often its decision was undone (names each decision of an item apart)."""

COUNTS_KEY = "digits:review:counts"
"""Hash of counters behind the statistics: ``decided``, ``reviewer:<name>``, ``audit_checked``, ``audit_wrong``."""

SECONDS_KEY = "digits:review:seconds"
"""List of the seconds the latest decisions took, newest first."""

SECONDS_KEPT = 1000
"""Decisions whose time is kept for the median."""

UNWRITTEN_KEY = "digits:review:unwritten"
"""Hash of reviewed-CSV line id -> the line (``Decision`` JSON), from its taking in Redis until it is appended."""

GROUP_KEY = "digits:review:group:{reviewer}"
"""Set of the items a reviewer was given as one group: only these can be confirmed together."""

ALONE_KEY = "digits:review:alone"
"""Set of the items sent back from a group as wrong: they are keyed alone, never grouped again."""

REVIEWED_FOLDER = "reviewed"
"""Folder of the results folder that holds the reviewers' decisions, a CSV a day."""

IMAGES_FOLDER = "review"
"""Folder, beside a result CSV, of the pictures its items show: the field's crop and its page."""

_NEXT = """
local now = tonumber(redis.call('TIME')[1])
-- Leases that ran out give their items back to their queues.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
  local item = redis.call('HGET', KEYS[1], id)
  if item and redis.call('HEXISTS', KEYS[6], id) == 0 then
    local decoded = cjson.decode(item)
    redis.call('ZADD', decoded.kind == 'audit' and KEYS[3] or KEYS[2], decoded.queued_at, id)
  end
end
local queue
if ARGV[3] == 'review' then queue = KEYS[2]
elseif ARGV[3] == 'audit' then queue = KEYS[3]
else
  local r = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local a = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if #r == 0 or (#a > 0 and tonumber(a[2]) < tonumber(r[2])) then queue = KEYS[3] else queue = KEYS[2] end
end
local picked = ARGV[4]
if picked == '' then
  local head = redis.call('ZRANGE', queue, 0, 0)
  if #head == 0 then return nil end
  picked = head[1]
elseif redis.call('ZREM', KEYS[2], picked) + redis.call('ZREM', KEYS[3], picked) == 0 then
  return nil
end
redis.call('ZREM', queue, picked)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), picked)
redis.call('HSET', KEYS[5], picked, ARGV[1])
redis.call('HSET', KEYS[7], picked, now)
return redis.call('HGET', KEYS[1], picked)
"""
"""Lease the oldest waiting item (of one kind, or of either), or the one named, to a reviewer; its JSON."""


_COUNT = """
-- The statistics' counters, moved by a decision (sign 1) or its undoing (sign -1).
local function count(counts, decision, sign)
  redis.call('HINCRBY', counts, 'decided', sign)
  redis.call('HINCRBY', counts, 'reviewer:' .. decision.reviewer, sign)
  if decision.kind == 'audit' and decision.verdict ~= 'unreadable' then
    redis.call('HINCRBY', counts, 'audit_checked', sign)
    if decision.verdict == 'corrected' then redis.call('HINCRBY', counts, 'audit_wrong', sign) end
  end
end
"""

_DECIDE = (
    _COUNT
    + """
local item, reviewer, line, grouped = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
if redis.call('HEXISTS', KEYS[6], item) == 1 then return 'decided' end
local holder = redis.call('HGET', KEYS[5], item)
local live = tonumber(redis.call('ZSCORE', KEYS[4], item) or '0') > tonumber(redis.call('TIME')[1])
if holder ~= reviewer or not live then
  if holder and live then return 'held' end
  return 'not-held'
end
if grouped and redis.call('SISMEMBER', KEYS[11], item) == 0 then return 'not-grouped' end
local version = redis.call('HGET', KEYS[7], item) or '0'
redis.call('HSET', KEYS[6], item, line)
redis.call('ZREM', KEYS[4], item)
redis.call('HDEL', KEYS[5], item)
redis.call('ZREM', KEYS[2], item)
redis.call('ZREM', KEYS[3], item)
redis.call('SREM', KEYS[11], item)
local decision = cjson.decode(line)
count(KEYS[8], decision, 1)
redis.call('LPUSH', KEYS[9], decision.seconds)
redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[5]) - 1)
local line_id = 'decision:' .. item .. ':' .. version
redis.call('HSET', KEYS[10], line_id, line)
return line_id
"""
)
"""Take a decision (``ARGV[3]``, its reviewed-CSV line) on an item the reviewer holds; the line's id.

Else ``decided``, ``held`` (by another), ``not-held``, or ``not-grouped`` (a group
confirmation, ``ARGV[4]``, of an item not in the reviewer's group)."""

_UNDO = (
    _COUNT
    + """
local item, reviewer = ARGV[1], ARGV[2]
local raw = redis.call('HGET', KEYS[1], item)
if not raw then return 'not-decided' end
local decision = cjson.decode(raw)
if decision.reviewer ~= reviewer then return 'not-theirs' end
local version = redis.call('HGET', KEYS[2], item) or '0'
local now = redis.call('TIME')
redis.call('HDEL', KEYS[1], item)
redis.call('HINCRBY', KEYS[2], item, 1)
redis.call('ZADD', KEYS[3], tonumber(now[1]) + tonumber(ARGV[3]), item)
redis.call('HSET', KEYS[4], item, reviewer)
redis.call('HSET', KEYS[5], item, tonumber(now[1]) + tonumber(now[2]) / 1e6)
count(KEYS[6], decision, -1)
decision.digits = ''
decision.verdict = 'undone'
decision.seconds = 0
decision.reviewed_at = ARGV[4]
local line_id = 'undo:' .. item .. ':' .. version
redis.call('HSET', KEYS[7], line_id, cjson.encode(decision))
return line_id
"""
)
"""Take back a reviewer's standing decision on an item and lease it to them again; the undo line's id.

Else ``not-decided`` or ``not-theirs``."""

_GIVE_BACK = """
local item, reviewer = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[5], item) ~= reviewer or redis.call('HEXISTS', KEYS[6], item) == 1 then
  return 'not-held'
end
local decoded = cjson.decode(redis.call('HGET', KEYS[1], item))
local queue = decoded.kind == 'audit' and KEYS[3] or KEYS[2]
local score = decoded.queued_at
if ARGV[3] == '1' then
  local last = redis.call('ZRANGE', queue, -1, -1, 'WITHSCORES')
  if #last > 0 then score = math.max(score, tonumber(last[2]) + 1e-3) end
end
redis.call('ZREM', KEYS[4], item)
redis.call('HDEL', KEYS[5], item)
redis.call('SREM', KEYS[8], item)
redis.call('ZADD', queue, score, item)
if ARGV[4] == '1' then redis.call('SADD', KEYS[7], item) end
return 'ok'
"""
"""Give a held item back to its queue: where it was, or behind the others (``ARGV[3]``), marked
to be keyed alone (``ARGV[4]``). Else ``not-held``."""

_REFUSALS = {
    "decided": "the item is decided already",
    "held": "another reviewer holds the item",
    "not-held": "you do not hold the item (its lease may have run out): ask for it again with GET /api/next",
    "not-grouped": "the item is not in your group: GET /api/group gives you one",
    "not-decided": "the item is not decided: there is nothing to undo",
    "not-theirs": "only the reviewer who decided an item can undo it",
}
"""What each refusal of the scripts tells the reviewer."""


class Conflict(RuntimeError):
    """The item cannot be decided by this reviewer now: another holds it, or it is decided already."""


class UnknownItem(LookupError):
    """No item has this id."""


def item_id(job_id: str, source: str, page: int, field: str, sha256: str) -> str:
    """The opaque id of a row's item: the same row gives the same id, whoever enqueues it and however often."""
    identity = "\x00".join([job_id, source, str(page), field, sha256])
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def id_of(row: Row | Decision | dict) -> str:
    """The item id of a result row or a decision (or of such a row read from a CSV)."""
    get = row.get if isinstance(row, dict) else lambda key: getattr(row, key)
    return item_id(get("job_id"), get("source"), int(get("page")), get("field"), get("sha256"))


def drawn_for_audit(row: Row, share: float) -> bool:
    """Whether an ``ok`` row is drawn for the blind audit: ``share`` of them, by a hash of the row (stable)."""
    draw = int(hashlib.sha256(f"audit:{id_of(row)}".encode()).hexdigest()[:12], 16) / 16**12
    return row.status == OK and draw < share


def kind_of(row: Row, audit_share: float) -> str | None:
    """Whether a person should see ``row``: ``review``, ``audit``, or None."""
    if row.status == REVIEW:
        return REVIEW_KIND
    if drawn_for_audit(row, audit_share):
        return AUDIT_KIND
    return None


def picture_stem(row: Row) -> str:
    """The start of the name of every picture of ``row``: source, file hash, page and field, file-name safe."""
    return f"{plain_name(row.source)}-{row.sha256[:10]}-p{row.page}-{plain_name(row.field)}"


def image_names(row: Row) -> tuple[str, str]:
    """Where the crop and the page picture of ``row``'s item go, relative to its CSV's folder."""
    stem = picture_stem(row)
    return f"{IMAGES_FOLDER}/{stem}.png", f"{IMAGES_FOLDER}/{stem}-page.png"


def items_of(rows: Iterable[Row], csv_folder: str, audit_share: float, now: float) -> list[ReviewItem]:
    """The items of the rows a person should see; ``csv_folder`` is their CSV's folder within the results folder."""
    items = []
    for row in rows:
        kind = kind_of(row, audit_share)
        if kind is None:
            continue
        crop, page = image_names(row)
        items.append(
            ReviewItem(
                id=id_of(row), kind=kind, job_id=row.job_id, source=row.source, page=row.page, field=row.field,
                sha256=row.sha256, digits=row.digits, confidences=_floats(row.digit_confidences),
                crop=f"{csv_folder}/{crop}", page_image=f"{csv_folder}/{page}", queued_at=now,
                reason=row.error if kind == REVIEW_KIND else "",
            )
        )  # fmt: skip
    return items


@dataclass(frozen=True)
class AuditFigures:
    """The blind audit so far: ``ok`` rows a person keyed, how many the machine had wrong, and the error rate."""

    checked: int
    wrong: int

    @property
    def error_rate(self) -> float | None:
        return self.wrong / self.checked if self.checked else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        """Wilson's 95% interval of the error rate among ``ok`` rows (sound for few errors and few checks)."""
        if not self.checked:
            return None
        z, n, p = 1.959964, self.checked, self.wrong / self.checked
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


class ReviewQueue:
    """The items waiting for a person, leased one at a time, and the decisions made on them.

    Args:
        redis: where the queue lives (the service's Redis).
        results: the results folder, where decisions are appended to ``reviewed/``.
        lease_seconds: how long a reviewer holds an item before it returns to the queue.
    """

    def __init__(self, redis: Redis, results: Path, lease_seconds: float) -> None:
        self.redis = redis
        self.results = Path(results)
        self.lease_seconds = lease_seconds
        self._next = redis.register_script(_NEXT)
        self._decide = redis.register_script(_DECIDE)
        self._undo = redis.register_script(_UNDO)
        self._give = redis.register_script(_GIVE_BACK)

    def enqueue(self, items: list[ReviewItem]) -> None:
        """Put items in the queue; an item queued or decided before is left as it is."""
        if not items:
            return
        known = self.redis.hmget(ITEMS_KEY, [item.id for item in items])
        fresh = [item for item, seen in zip(items, known, strict=True) if seen is None]
        if not fresh:
            return
        with self.redis.pipeline() as pipe:
            for order, item in enumerate(fresh):
                pipe.hsetnx(ITEMS_KEY, item.id, item.model_dump_json())
                # Items of one batch share their time: a microsecond apiece keeps them in file order.
                pipe.zadd(PENDING_KEYS[item.kind], {item.id: item.queued_at + order * 1e-6}, nx=True)
            pipe.execute()

    def next(self, reviewer: str, kind: str | None = None) -> ReviewItem | None:
        """The item this reviewer should look at now, leased to them: one they hold already, else the oldest waiting."""
        held = self.held_by(reviewer, kind)
        if held:
            self._renew(held[0].id)
            return held[0]
        return self._lease(reviewer, kind or "", "")

    def lease(self, item: str, reviewer: str) -> ReviewItem | None:
        """Lease the item ``item`` to a reviewer if it is waiting; None if it is not (held or decided)."""
        return self._lease(reviewer, "", item)

    def waiting(self, kind: str, count: int) -> list[ReviewItem]:
        """The oldest ``count`` waiting items of a kind, not leased."""
        ids = self.redis.zrange(PENDING_KEYS[kind], 0, count - 1)
        return [ReviewItem.model_validate_json(raw) for raw in self.redis.hmget(ITEMS_KEY, ids) if raw] if ids else []

    def held_by(self, reviewer: str, kind: str | None = None) -> list[ReviewItem]:
        """The undecided items a reviewer holds a live lease on, oldest first."""
        holders = self.redis.hgetall(HOLDERS_KEY)
        ids = [key.decode() for key, holder in holders.items() if holder.decode() == reviewer]
        if not ids:
            return []
        now = self.redis.time()[0]
        expiries = self.redis.zmscore(LEASES_KEY, ids)
        live = [i for i, expiry in zip(ids, expiries, strict=True) if expiry is not None and expiry > now]
        items = [self.item(i) for i in live if not self.redis.hexists(DECIDED_KEY, i)]
        return sorted((i for i in items if kind in (None, i.kind)), key=lambda i: i.queued_at)

    def item(self, item: str) -> ReviewItem:
        raw = self.redis.hget(ITEMS_KEY, item)
        if raw is None:
            raise UnknownItem(f"no review item {item!r}")
        return ReviewItem.model_validate_json(raw)

    def decide(
        self, item: str, reviewer: str, digits: str | None, seconds: float | None = None, grouped: bool = False
    ) -> Decision:
        """Record what a reviewer read on an item they hold (``digits``; None: unreadable); the decision.

        Of decisions racing on one item, exactly one is taken: the first from
        the reviewer holding it. ``seconds`` is how long the decision took; by
        default, since the item was leased. ``grouped``: a confirmation from
        the group view, taken only for an item of the reviewer's group. Raises
        ``Conflict`` when the reviewer does not hold the item (another does, its
        lease ran out, or it is decided already), ``UnknownItem`` for an id no
        item has.
        """
        found = self.item(item)
        if seconds is None:
            shown = self.redis.hget(SHOWN_KEY, item)
            seconds = max(0.0, _now(self.redis) - float(shown)) if shown else 0.0
        verdict = UNREADABLE if digits is None else CONFIRMED if digits == found.digits else CORRECTED
        decision = Decision(
            job_id=found.job_id, source=found.source, page=found.page, field=found.field, kind=found.kind,
            machine_digits=found.digits, digits=digits or "", verdict=verdict, reviewer=reviewer,
            seconds=round(seconds, 2), sha256=found.sha256, crop=found.crop,
        )  # fmt: skip
        keys = [ITEMS_KEY, *PENDING_KEYS.values(), LEASES_KEY, HOLDERS_KEY, DECIDED_KEY, VERSIONS_KEY, COUNTS_KEY,
                SECONDS_KEY, UNWRITTEN_KEY, GROUP_KEY.format(reviewer=reviewer)]  # fmt: skip
        args = [item, reviewer, decision.model_dump_json(), "1" if grouped else "", SECONDS_KEPT]
        self._write(self._taken(self._decide(keys=keys, args=args)), decision)
        return decision

    def undo(self, item: str, reviewer: str) -> ReviewItem:
        """Take back this reviewer's decision on an item; the item is theirs again, to decide anew.

        Raises ``Conflict`` when the item is not decided, or was decided by another reviewer.
        """
        keys = [DECIDED_KEY, VERSIONS_KEY, LEASES_KEY, HOLDERS_KEY, SHOWN_KEY, COUNTS_KEY, UNWRITTEN_KEY]
        line_id = self._taken(self._undo(keys=keys, args=[item, reviewer, self.lease_seconds, utc_now()]))
        self._write(line_id, Decision.model_validate_json(self.redis.hget(UNWRITTEN_KEY, line_id)))
        return self.item(item)

    def skip(self, item: str, reviewer: str) -> None:
        """Give an item back to the queue, behind the others; ``Conflict`` if the reviewer does not hold it."""
        self._give_back(item, reviewer, at_the_back=True, alone=False)

    def lease_group(self, reviewer: str, size: int, lookahead: int) -> list[ReviewItem]:
        """Up to ``size`` waiting single digits the machine read as the same digit, leased to the reviewer as a group.

        A reviewer who holds a group gets it back. Only ``review`` items are
        grouped (audit items are keyed blind), and never one sent back from a
        group as wrong. The most common reading among the oldest ``lookahead``
        waiting items is the group's.
        """
        group = GROUP_KEY.format(reviewer=reviewer)
        members = {member.decode() for member in self.redis.smembers(group)}
        held = [i for i in self.held_by(reviewer, REVIEW_KIND) if i.id in members]
        if held:
            return held[:size]
        alone = {member.decode() for member in self.redis.smembers(ALONE_KEY)}
        singles = [i for i in self.waiting(REVIEW_KIND, lookahead) if len(i.digits) == 1 and i.id not in alone]
        if not singles:
            return []
        digit = max({i.digits for i in singles}, key=lambda d: sum(i.digits == d for i in singles))
        chosen = [i for i in singles if i.digits == digit][:size]
        leased = [found for i in chosen if (found := self.lease(i.id, reviewer))]
        with self.redis.pipeline() as pipe:
            pipe.delete(group)
            if leased:
                pipe.sadd(group, *[i.id for i in leased]).expire(group, self.lease_seconds)
            pipe.execute()
        return leased

    def decide_group(self, reviewer: str, confirm: list[str], wrong: list[str]) -> None:
        """Confirm the machine's reading of the ``confirm`` items of the reviewer's group; send ``wrong`` back.

        The items sent back are keyed alone, never grouped again. Raises
        ``UnknownItem`` for an id no item has, and ``Conflict``, before
        anything is decided, for an item not in the reviewer's group or no
        longer held by them; a confirmation that loses a race meanwhile raises
        ``Conflict`` too, the ones before it standing.
        """
        found = [self.item(i) for i in [*confirm, *wrong]]
        members = {member.decode() for member in self.redis.smembers(GROUP_KEY.format(reviewer=reviewer))}
        held = {i.id for i in self.held_by(reviewer, REVIEW_KIND)}
        stray = [i.id for i in found if i.id not in members or i.id not in held]
        if stray:
            raise Conflict(f"{len(stray)} of the items are not in the group you hold: GET /api/group gives it anew")
        for item in found[: len(confirm)]:
            self.decide(item.id, reviewer, item.digits, grouped=True)
        for item in wrong:
            self._give_back(item, reviewer, at_the_back=False, alone=True)

    def write_unwritten(self) -> int:
        """Append the decision lines taken in Redis whose append was cut short (a station that died); how many."""
        lines = self.redis.hgetall(UNWRITTEN_KEY)
        for line_id, line in sorted(lines.items(), key=lambda pair: Decision.model_validate_json(pair[1]).reviewed_at):
            self._write(line_id.decode(), Decision.model_validate_json(line))
        return len(lines)

    def left(self) -> int:
        """Items not decided yet, held ones included (three counts, for every item served)."""
        with self.redis.pipeline() as pipe:
            for key in (*PENDING_KEYS.values(), LEASES_KEY):
                pipe.zcard(key)
            return sum(pipe.execute())

    def pending(self) -> dict[str, int]:
        """Items not decided yet, by kind, held ones included."""
        counts = {kind: self.redis.zcard(key) for kind, key in PENDING_KEYS.items()}
        leased = self.redis.zrange(LEASES_KEY, 0, -1)
        for raw in self.redis.hmget(ITEMS_KEY, leased) if leased else []:
            if raw:
                counts[ReviewItem.model_validate_json(raw).kind] += 1
        return counts

    def stats(self) -> dict:
        """Queue length, decisions (per reviewer), the median seconds per item, and the audit's error rate."""
        counts = {key.decode(): int(value) for key, value in self.redis.hgetall(COUNTS_KEY).items()}
        seconds = [float(s) for s in self.redis.lrange(SECONDS_KEY, 0, -1)]
        audit = AuditFigures(counts.get("audit_checked", 0), counts.get("audit_wrong", 0))
        pending = self.pending()
        reviewers = {key.removeprefix("reviewer:"): n for key, n in counts.items() if key.startswith("reviewer:")}
        return {
            "pending": sum(pending.values()),
            "pending_by_kind": pending,
            "decided": counts.get("decided", 0),
            "median_seconds": round(statistics.median(seconds), 2) if seconds else None,
            "audit": {
                "checked": audit.checked,
                "wrong": audit.wrong,
                "error_rate": audit.error_rate,
                "ci95": list(audit.ci95) if audit.ci95 else None,
            },
            "per_reviewer": {name: n for name, n in reviewers.items() if n},
        }

    def standing(self, items: list[str]) -> dict[str, Decision]:
        """The standing decision on each of ``items`` that has one."""
        return decided(self.redis, items)

    def _lease(self, reviewer: str, kind: str, item: str) -> ReviewItem | None:
        keys = [ITEMS_KEY, *PENDING_KEYS.values(), LEASES_KEY, HOLDERS_KEY, DECIDED_KEY, SHOWN_KEY]
        raw = self._next(keys=keys, args=[reviewer, self.lease_seconds, kind, item])
        return ReviewItem.model_validate_json(raw) if raw else None

    def _renew(self, item: str) -> None:
        self.redis.zadd(LEASES_KEY, {item: self.redis.time()[0] + self.lease_seconds}, xx=True)

    def _give_back(self, item: str, reviewer: str, at_the_back: bool, alone: bool) -> None:
        keys = [ITEMS_KEY, *PENDING_KEYS.values(), LEASES_KEY, HOLDERS_KEY, DECIDED_KEY, ALONE_KEY,
                GROUP_KEY.format(reviewer=reviewer)]  # fmt: skip
        self._taken(self._give(keys=keys, args=[item, reviewer, "1" if at_the_back else "", "1" if alone else ""]))

    @staticmethod
    def _taken(answer: bytes) -> str:
        """A script's answer: what it took (a line id, ``ok``), or ``Conflict`` saying why it refused."""
        said = answer.decode()
        if said in _REFUSALS:
            raise Conflict(_REFUSALS[said])
        return said

    def _write(self, line_id: str, line: Decision) -> None:
        """Append a decision's line to its day's reviewed CSV (once, whoever tries); forget it was unwritten."""
        path = reviewed_csv(self.results, dt.datetime.fromisoformat(line.reviewed_at.replace("Z", "+00:00")))
        append_drops(path, [(line_id, [line])], self.redis, columns=REVIEWED_COLUMNS)
        self.redis.hdel(UNWRITTEN_KEY, line_id)


def decided(redis: Redis, items: list[str]) -> dict[str, Decision]:
    """The standing decision on each of ``items`` that has one, from Redis (no results folder needed)."""
    values = redis.hmget(DECIDED_KEY, items) if items else []
    return {i: Decision.model_validate_json(raw) for i, raw in zip(items, values, strict=True) if raw}


def reviewed_csv(results: Path, when: dt.datetime) -> Path:
    """The CSV that decisions made at ``when`` (UTC) go to."""
    return Path(results) / REVIEWED_FOLDER / f"{when.astimezone(dt.UTC):%Y-%m-%d}.csv"


def standing_decisions(results: Path) -> dict[str, dict]:
    """The standing decision on each item, from the reviewed CSVs (the latest line of an item wins)."""
    standing: dict[str, dict] = {}
    for path in sorted((Path(results) / REVIEWED_FOLDER).glob("*.csv")):
        for line in read_rows(path):
            if line["verdict"] == UNDONE:
                standing.pop(id_of(line), None)
            else:
                standing[id_of(line)] = line
    return standing


FINAL_COLUMNS = (*COLUMNS, "machine_digits", "reviewer", "reviewed_at")
"""The columns of ``digits export``: the result CSV's, then who decided and what the machine had read."""

VERIFIED = "verified"
"""The ``status`` of an exported row a person read (one they found unreadable has ``unreadable``)."""


def final_row(row: dict, decision: dict | Decision | None) -> dict:
    """A result row as it finally stands: a person's reading, where one decided, over the machine's."""
    if decision is None:
        return {**row, "machine_digits": "", "reviewer": "", "reviewed_at": ""}
    get = decision.get if isinstance(decision, dict) else lambda key: getattr(decision, key)
    unreadable = get("verdict") == UNREADABLE
    return {
        **row,
        "digits": "" if unreadable else get("digits"),
        "status": UNREADABLE if unreadable else VERIFIED,
        "machine_digits": row["digits"],
        "reviewer": get("reviewer"),
        "reviewed_at": get("reviewed_at"),
    }


def export_rows(results: Path, since: dt.date | None = None, job_id: str | None = None) -> Iterator[dict]:
    """Every row of the result CSVs (from ``since``, or of one job) as it finally stands, in ``FINAL_COLUMNS``."""
    decisions = standing_decisions(results)
    for path in _result_csvs(Path(results), since, job_id):
        for row in read_rows(path):
            if since and row["processed_at"][:10] < since.isoformat():
                continue
            yield final_row(row, decisions.get(id_of(row)))


def write_export(rows: Iterable[dict], out: Path | None) -> int:
    """Write export rows as CSV to ``out`` (stdout when None); how many were written."""
    handle = open(out, "w", newline="", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.DictWriter(handle, fieldnames=FINAL_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        count = 0
        for row in rows:
            writer.writerow(row)
            count += 1
        return count
    finally:
        if out:
            handle.close()


def _result_csvs(results: Path, since: dt.date | None, job_id: str | None) -> list[Path]:
    if job_id:
        return [results / "jobs" / f"{job_id}.csv"]
    inbox = sorted((results / "inbox").glob("*.csv"))
    if since:
        inbox = [path for path in inbox if path.stem >= since.isoformat()]
    return inbox + sorted((results / "jobs").glob("*.csv"))


def _now(redis: Redis) -> float:
    """Redis's clock, which every station and worker shares, in seconds."""
    seconds, microseconds = redis.time()
    return seconds + microseconds / 1e6


def _floats(joined: str) -> list[float]:
    return [float(value) for value in joined.split(";") if value]


def plain_name(text: str) -> str:
    """``text`` made safe as part of a file name: letters, digits, ``-`` and ``_`` only, at most 40."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(text).stem if "." in text else text)[:40] or "file"
