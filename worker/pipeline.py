"""From a file's bytes to result rows: decode, read each page two ways, judge confidence.

Each page is read by cutting it into digits for the digit classifier, and,
when a string model is installed, as a whole line by the string model. The
reading that suits the page is kept: the classifier's for a single digit, the
string model's for a line, where touching digits and separators fool the
cutting. A row is trusted only when its reading is corroborated (see
``choose``) and every digit is sure; otherwise it goes to review.

Used by the Celery task, ``digits recognize`` and ``digits evaluate``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from digits.results import EMPTY, OK, REVIEW, error_row, utc_now
from worker.imaging import UnreadableImage, decode_pages
from worker.lines import LINE_VIEWS, prepare_line
from worker.model import Models
from worker.segment import Box, find_digits

WHOLE_PAGE = "all"
"""Field name of a page read as one field (no layout)."""

SINGLE_DIGIT_ASPECT = 1.5
"""Ink no wider than this times its height has room for one digit only (measured on
held-out sets: single digits stay under 1.35 in 99% of files, amounts over 1.5)."""


@dataclass(frozen=True)
class Reading:
    """Digits read on one page by one model, with a confidence and a page box per digit."""

    digits: str
    confidences: list[float]
    boxes: list[Box]
    model: str
    unanimous: bool = True
    """Whether every model (and view) behind the reading read the same digits on its own."""


def read_by_cutting(pages: list[np.ndarray], models: Models) -> list[Reading]:
    """Cut each page into digits and classify them all in one model call."""
    cut = [find_digits(page) for page in pages]
    images = [digit.image for digits in cut for digit in digits]
    probabilities = models.classifier.probabilities(np.stack(images)) if images else np.zeros((0, 10))
    readings, start = [], 0
    for digits in cut:
        page = probabilities[start : start + len(digits)]
        start += len(digits)
        readings.append(
            Reading(
                "".join(str(int(label)) for label in page.argmax(axis=1)),
                [float(c) for c in page.max(axis=1)],
                [digit.box for digit in digits],
                models.classifier.label,
            )
        )
    return readings


def read_as_lines(pages: list[np.ndarray], models: Models) -> list[Reading | None]:
    """Read each page as one line with the string model (None for all when there is none)."""
    if models.reader is None:
        return [None] * len(pages)
    views = [[prepare_line(page, stretch) for stretch in LINE_VIEWS] for page in pages]
    lines = models.reader.read(np.stack([[line for line, _ in page_views] for page_views in views]))
    readings = []
    for line, page_views in zip(lines, views, strict=True):
        placement = page_views[0][1]  # spans are frames of the first view, the line as it is
        boxes = [placement.box(*span) for span in line.spans]
        readings.append(Reading(line.digits, line.confidences, boxes, models.reader.label, line.unanimous))
    return readings


def choose(cutting: Reading, line: Reading | None) -> tuple[Reading, bool]:
    """The reading to report, and whether it is corroborated (else the row goes to review).

    A reading is corroborated when cutting and the string model agree, or, on a
    line wider than one digit, when the string models read it unanimously:
    cutting fails on touching digits and separators, so its disagreement there
    says little.
    """
    if line is None:
        return cutting, True
    if cutting.digits == line.digits:
        # Each digit is only as sure as the less sure model: when both misread a
        # digit the same way, one of them is rarely confident about it.
        sure = [min(a, b) for a, b in zip(cutting.confidences, line.confidences, strict=True)]
        return Reading(cutting.digits, sure, cutting.boxes, cutting.model), True
    if cutting.boxes and _aspect(cutting.boxes) < SINGLE_DIGIT_ASPECT:
        # Ink with room for one digit only. The classifier reads single digits
        # better than the string model (99.5% against 97.1% on MNIST files), so
        # one cut digit stands; when cutting split a broken digit, the string
        # model's single reading is kept, as it reads the ink whole.
        if len(cutting.digits) == 1 or len(line.digits) != 1:
            return cutting, False
        return line, False
    return line, line.unanimous


def _aspect(boxes: list[Box]) -> float:
    """Width over height of the ink's bounding box."""
    left, right = min(b.x for b in boxes), max(b.x + b.w for b in boxes)
    top, bottom = min(b.y for b in boxes), max(b.y + b.h for b in boxes)
    return (right - left) / max(1, bottom - top)


def recognize_bytes(data: bytes, source: str, job_id: str, models: Models, review_threshold: float) -> list[dict]:
    """One row per page for a file; a single error row when it cannot be read."""
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        pages = decode_pages(data)
    except UnreadableImage as problem:
        return [error_row(job_id, source, sha256, models.label, f"{source}: {problem}")]

    rows = []
    pairs = zip(read_by_cutting(pages, models), read_as_lines(pages, models), strict=True)
    for page_number, (cutting, line) in enumerate(pairs, start=1):
        reading, agreed = choose(cutting, line)
        lowest = min(reading.confidences, default=None)
        status = EMPTY if lowest is None else OK if agreed and lowest >= review_threshold else REVIEW
        rows.append(
            {
                "job_id": job_id,
                "source": source,
                "page": page_number,
                "field": WHOLE_PAGE,
                "digits": reading.digits,
                "confidence": f"{lowest:.4f}" if lowest is not None else "",
                "status": status,
                "digit_confidences": ";".join(f"{c:.4f}" for c in reading.confidences),
                "boxes": ";".join(str(box) for box in reading.boxes),
                "model": reading.model,
                "sha256": sha256,
                "processed_at": utc_now(),
                "error": "",
            }
        )
    return rows
