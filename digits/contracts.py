"""The contracts every part of the service shares: the message that carries a file, and a result row.

Each is defined once, here. The ingester and ``submit`` build a ``FileTask``
(files that arrive together travel as one ``FileChunk``); a worker reads it
back (checked, as it comes from Redis), reads the file, and answers with a
``FileResult`` of ``Row``s, which the CSV writer writes (``digits.results``)
and the ingester and ``Job`` read. Messages are plain JSON data on the wire:
nothing from the queue is ever unpickled.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OK, REVIEW, EMPTY, ERROR, DUPLICATE = "ok", "review", "empty", "error", "duplicate"
"""Row statuses: read fine; a person should look; no digits found; the file could not be read;
the same bytes already came through the inbox (``error`` names the first)."""

Status = Literal["ok", "review", "empty", "error", "duplicate"]
"""What the ``status`` column may hold."""

WHOLE_PAGE = "all"
"""``field`` of a row that covers a whole page (no layout), and of an error row."""

INBOX, JOB = "inbox", "job"
"""Where a file came from: dropped into the inbox, or submitted as part of a job."""


def utc_now() -> str:
    """The current time as ISO 8601 UTC, as in ``processed_at``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Row(BaseModel):
    """One CSV row: a page of a file, or a field of a page. The fields are the CSV's columns, in order.

    Values are as the CSV holds them (confidences formatted to four places,
    boxes as ``x,y,w,h;…``), so that a row reads the same from the CSV, from
    ``Job.rows()`` and from ``digits recognize``.
    """

    model_config = ConfigDict(frozen=True)

    job_id: str
    source: str
    page: int = 1
    field: str = WHOLE_PAGE
    digits: str = ""
    """The digits read, left to right, 0-9 only."""
    confidence: str = ""
    """How sure the readers are of the whole reading (``digits.recognition.pipeline.sureness``): where only the
    string models vouch for it, their probability of it; else the lowest digit confidence. Empty when no digit
    was read."""
    status: Status
    digit_confidences: str = ""
    """Each digit's confidence, ``;``-separated."""
    boxes: str = ""
    """Each digit's box on the page, ``x,y,w,h``, ``;``-separated."""
    model: str = ""
    """The models that read the row, ``name@version`` (joined with ``+`` for an ensemble)."""
    sha256: str = ""
    processed_at: str = Field(default_factory=utc_now)
    error: str = ""
    """What went wrong, with which file, and what to do (error rows); why a person should look (review rows)."""
    annotation: str = ""
    """The review picture's path, relative to the CSV's folder."""

    @classmethod
    def failed(cls, job_id: str, source: str, sha256: str, model: str, message: str) -> Row:
        """The one row a file that could not be read gets."""
        return cls(job_id=job_id, source=source, status=ERROR, model=model, sha256=sha256, error=message)

    def box_list(self) -> list[tuple[int, int, int, int]]:
        """``boxes`` as ``(x, y, w, h)`` tuples."""
        return [tuple(int(v) for v in box.split(",")) for box in self.boxes.split(";") if box]


COLUMNS = tuple(Row.model_fields)
"""The CSV header, in order. Later columns may be added after these, never between."""


class FileTask(BaseModel):
    """The message of ``digits.recognize``: one file, carried whole, and where its rows go.

    The file travels inside the message, so a worker on another machine needs
    no access to the inbox.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["inbox", "job"]
    job_id: str
    """The job's id; for an inbox file, its drop id (also the task's id)."""
    source: str
    """The name rows carry: the path relative to the inbox, or the name given at submit."""
    layout: str | None = None
    """The layout whose fields are read; None: each page is one field."""
    annotate: bool = False
    """A review picture for every row, not only for rows sent to review."""
    inbox: str = ""
    """For an inbox file, the inbox folder: the same bytes dropped again into it are duplicates."""
    queued_at: float | None = None
    """When the message was sent (Unix time), for the latency metric."""
    data: str = ""
    """The file's bytes, base64."""

    @classmethod
    def carrying(cls, content: bytes, **fields: object) -> FileTask:
        """A message carrying ``content``, stamped with the time it is made."""
        return cls(data=base64.b64encode(content).decode("ascii"), queued_at=time.time(), **fields)

    def content(self) -> bytes:
        """The file's bytes."""
        return base64.b64decode(self.data)


class FileChunk(BaseModel):
    """The message of ``digits.recognize`` for files that arrived together: one message for them all.

    Each file keeps the id its result is stored under (its drop id, or its
    task id in a job), as if it had come alone: a worker pays for fetching
    and acknowledging a message once per chunk instead of once per file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ids: list[str] = Field(min_length=1)
    files: list[FileTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_id_each(self) -> FileChunk:
        if len(self.ids) != len(self.files):
            raise ValueError(f"{len(self.ids)} ids for {len(self.files)} files")
        return self


def files_of(message: object, message_id: str) -> list[tuple[str, FileTask]]:
    """The files a ``digits.recognize`` message carries, each with the id its result is stored under.

    A ``FileTask`` is one file under the message's own id; a ``FileChunk``
    lists its files' ids. Raises ``pydantic.ValidationError`` for anything else.
    """
    if isinstance(message, dict) and "ids" in message:
        chunk = FileChunk.model_validate(message)
        return list(zip(chunk.ids, chunk.files, strict=True))
    return [(message_id, FileTask.model_validate(message))]


class PageTask(BaseModel):
    """The message of ``digits.recognize_page``: one page of a long document that is read page by page."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: FileTask
    """The document's own message, without its data."""
    sha256: str
    """Hash of the whole document's bytes, as its rows carry it."""
    page: int = Field(ge=1)
    """The page's number in the document, from 1: the only page this task renders."""
    document_key: str
    """The Redis key holding the document's bytes, stored once for all its pages."""


class FileResult(BaseModel):
    """What a file's task returns (kept in Redis): its rows, the CSV they went to, and its errors."""

    rows: list[Row]
    csv: str
    error: str = ""
    """The ``error`` of its error rows, ``;``-joined; empty when the file was read."""

    @classmethod
    def of(cls, rows: list[Row], csv: str) -> FileResult:
        return cls(rows=rows, csv=csv, error="; ".join(row.error for row in rows if row.status == ERROR))

    @property
    def failed(self) -> bool:
        """Whether the file could not be read (it goes to ``failed/``)."""
        return bool(self.error)


class SampleTask(BaseModel):
    """The message of ``digits.read_sample``: a form's sample, read for the layout designer. Nothing is written.

    Without ``fields`` or ``layout``, the worker decodes the file's first page,
    checked as an inbox file is, and sends it back as a PNG: the layout's
    reference image to be. With ``fields``, it reads that page with them, as a
    layout without a reference: the page is the sample they were drawn on. With
    ``layout``, it reads the page with that saved layout, as the service would.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    """The name errors and rows carry."""
    fields: list[dict] = Field(default_factory=list)
    """Layout ``[[fields]]`` entries (``digits.layouts.drawn_fields`` checks them)."""
    layout: str = ""
    """A saved layout's name, instead of ``fields``."""
    data: str = ""
    """The file's bytes, base64."""

    @classmethod
    def carrying(cls, content: bytes, **fields: object) -> SampleTask:
        return cls(data=base64.b64encode(content).decode("ascii"), **fields)

    def content(self) -> bytes:
        return base64.b64decode(self.data)


class SampleResult(BaseModel):
    """What ``digits.read_sample`` returns: the first page and its size, or the fields as read on it, or why not."""

    width: int = 0
    height: int = 0
    page: str = ""
    """The first page as a grey PNG, base64; only when no fields were sent."""
    rows: list[Row] = Field(default_factory=list)
    """A row per field, as the service would write it."""
    error: str = ""
    """Why the file cannot be read, or the fields make no layout; what to do."""


REVIEW_KIND, AUDIT_KIND = "review", "audit"
"""Why a row is before a person: the machine doubts it (a ``review`` row), or it was drawn,
``ok``, for the blind audit that measures the error rate among ``ok`` rows."""

CONFIRMED, CORRECTED, UNREADABLE, UNDONE = "confirmed", "corrected", "unreadable", "undone"
"""A decision's verdict: the person read what the machine read; read other digits; found no
digits anyone could read. ``undone`` takes back the decision before it (the reviewer undid it)."""


class ReviewItem(BaseModel):
    """A row before a person: what the machine read, and the two pictures a reviewer looks at."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Opaque: a hash of the row's identity, so the same row is one item however often it is enqueued."""
    kind: Literal["review", "audit"]
    job_id: str
    source: str
    page: int
    field: str
    sha256: str
    digits: str
    """What the machine read (never shown for an audit item)."""
    confidences: list[float]
    crop: str
    """The field as it was read, a PNG, relative to the results folder."""
    page_image: str
    """The whole page, small, with the field outlined, relative to the results folder."""
    queued_at: float
    reason: str = ""
    """Why the machine doubts the row (a ``review`` item): its ``error``, such as "digit 2 (3) at 0.62, below 0.90"."""


class Decision(BaseModel):
    """A line of ``results/reviewed/YYYY-MM-DD.csv``: what a person decided about an item. Fields in column order."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    source: str
    page: int
    field: str
    kind: Literal["review", "audit"]
    machine_digits: str
    digits: str
    """The person's reading (empty when unreadable, or undone)."""
    verdict: Literal["confirmed", "corrected", "unreadable", "undone"]
    reviewer: str
    seconds: float
    """From the item being shown to the decision."""
    reviewed_at: str = Field(default_factory=utc_now)
    sha256: str
    crop: str


REVIEWED_COLUMNS = tuple(Decision.model_fields)
"""The reviewed CSV's header, in order."""
