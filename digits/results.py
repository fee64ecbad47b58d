"""Result CSVs: where they are, and a writer that never doubles a row (the row itself: ``digits.contracts``).

Rows of one drop (one task) are appended in a single ``write`` under an
exclusive lock on the CSV, so two workers never interleave lines. A worker that
dies after writing but before acknowledging its task gets the task again; the
marks kept in Redis make the second attempt see that the rows are already there.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import hashlib
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel
from redis import Redis

from digits.contracts import COLUMNS, Row
from digits.settings import get_settings

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a job id may look like: it names a file, so no separators and no dots."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters that make a spreadsheet treat a cell as a formula."""


def inbox_csv(results: Path, when: dt.datetime) -> Path:
    """The CSV that inbox rows written at ``when`` (UTC) go to."""
    return Path(results) / "inbox" / f"{when.astimezone(dt.UTC):%Y-%m-%d}.csv"


def job_csv(results: Path, job_id: str) -> Path:
    """The CSV of one submitted job (the id becomes a file name, so it must be a plain token)."""
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"job id {job_id!r} is not a plain token (letters, digits, - and _, at most 64)")
    return Path(results) / "jobs" / f"{job_id}.csv"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, as in the ``sha256`` column."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def append_rows(path: Path, rows: list[Row], drop_id: str, marks: Redis) -> bool:
    """Append one drop's rows to ``path`` exactly once; False if they were already there."""
    return append_drops(path, [(drop_id, rows)], marks)[0]


def append_drops(
    path: Path, drops: list[tuple[str, list[BaseModel]]], marks: Redis, columns: tuple[str, ...] = COLUMNS
) -> list[bool]:
    """Append the rows of each ``(drop id, rows)`` to ``path`` exactly once, all in one write; which were written.

    ``marks`` is the Redis that remembers which drops are written; ``columns``
    are the file's (result rows by default; reviewers' decisions have their own). Before
    writing, each drop's offset in the file is noted there; a later attempt
    that finds such a note (the writer died before marking the drop done)
    looks at what stands at that offset instead of writing again. One write
    and one fsync for a whole batch of files: one of each per file would make
    every file wait for the disk. The marks are kept ``DIGITS_MARK_DAYS``.
    """
    keep = get_settings().mark_seconds
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done_keys = [f"digits:written:{drop_id}" for drop_id, _ in drops]
    pending_keys = [f"digits:writing:{drop_id}" for drop_id, _ in drops]
    with _locked(path, exclusive=True):
        done, pending = marks.mget(done_keys), marks.mget(pending_keys)
        offset = path.stat().st_size if path.exists() else 0
        settled, written, blocks, seen = [], {}, [], set()
        at = offset  # where the next block will start
        for i, (drop_id, rows) in enumerate(drops):
            if done[i] is not None or drop_id in seen:
                continue  # written before, or twice in this call (a message delivered again meanwhile)
            seen.add(drop_id)
            if pending[i] is not None and _rows_at(*_parse_pending(pending[i]), rows[0], columns):
                settled.append(i)
                continue
            written[i] = at
            blocks.append(encode_rows(rows, header=at == 0, columns=columns))
            at += len(blocks[-1])
        if blocks:
            notes = marks.pipeline()
            for i, start in written.items():
                # The path goes along: a retry after midnight UTC writes to another day's file.
                notes.set(pending_keys[i], f"{start} {path}", ex=keep)
            notes.execute()
            try:
                with open(path, "ab") as handle:
                    handle.write(b"".join(blocks))
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError:
                # A full disk can leave part of our own block behind; cut it off so
                # the next row does not start mid-line. Only our bytes are removed.
                if path.exists() and path.stat().st_size > offset:
                    os.truncate(path, offset)
                raise
        marked = marks.pipeline()
        for i in [*settled, *written]:
            marked.set(done_keys[i], str(path), ex=keep).delete(pending_keys[i])
        marked.execute()
    return [i in written for i in range(len(drops))]


def read_rows(path: Path) -> list[dict]:
    """All rows of a result CSV, read under a shared lock so no line is half-written."""
    path = Path(path)
    if not path.exists():
        return []
    with _locked(path, exclusive=False), open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def encode_rows(rows: list[BaseModel], header: bool, columns: tuple[str, ...] = COLUMNS) -> bytes:
    """Rows as CSV bytes (header first if asked), with formula-like text neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_neutralise(getattr(row, column)) for column in columns])
    return buffer.getvalue().encode("utf-8")


def _neutralise(value: object) -> object:
    # A file named "=HYPERLINK(...).png" must not run as a formula when a
    # clerk opens the CSV in a spreadsheet (OWASP "CSV injection").
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _parse_pending(value: bytes) -> tuple[Path, int]:
    offset, _, path = value.decode().partition(" ")
    return Path(path), int(offset)


def _rows_at(path: Path, offset: int, first_row: BaseModel, columns: tuple[str, ...]) -> bool:
    """Whether the drop whose first row is ``first_row`` stands at ``offset`` in ``path``."""
    if not path.exists() or path.stat().st_size <= offset:
        return False
    with open(path, "rb") as handle:
        handle.seek(offset)
        block = handle.read(64 * 1024).decode("utf-8", errors="replace")
    found = list(csv.DictReader(io.StringIO(block), fieldnames=columns))
    found = [row for row in found if row["job_id"] != "job_id"]
    if not found:
        return False
    expected = {k: str(_neutralise(getattr(first_row, k))) for k in ("job_id", "source", "page", "sha256")}
    return all(found[0][k] == v for k, v in expected.items())


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[None]:
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
