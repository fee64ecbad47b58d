"""From a file's bytes to result rows: decode, cut digits, classify, judge confidence.

Used by the Celery task and, in-process, by ``digits recognize``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from digits.results import EMPTY, OK, REVIEW, error_row, utc_now
from worker.imaging import UnreadableImage, decode_pages
from worker.model import Classifier
from worker.segment import find_digits

WHOLE_PAGE = "all"
"""Field name of a page read as one field (no layout)."""


def recognize_bytes(
    data: bytes, source: str, job_id: str, classifier: Classifier, review_threshold: float
) -> list[dict]:
    """One row per page for a file; a single error row when it cannot be read."""
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        pages = decode_pages(data)
    except UnreadableImage as problem:
        return [error_row(job_id, source, sha256, classifier.label, f"{source}: {problem}")]

    cut = [find_digits(page) for page in pages]
    images = [digit.image for digits in cut for digit in digits]
    # One model call for every digit of the file, whatever its page count.
    probabilities = classifier.probabilities(np.stack(images)) if images else np.zeros((0, 10))

    rows, start = [], 0
    for page_number, digits in enumerate(cut, start=1):
        page_probs = probabilities[start : start + len(digits)]
        start += len(digits)
        labels = page_probs.argmax(axis=1) if len(digits) else []
        confidences = page_probs.max(axis=1) if len(digits) else []
        lowest = float(min(confidences)) if len(digits) else None
        status = EMPTY if lowest is None else OK if lowest >= review_threshold else REVIEW
        rows.append(
            {
                "job_id": job_id,
                "source": source,
                "page": page_number,
                "field": WHOLE_PAGE,
                "digits": "".join(str(int(label)) for label in labels),
                "confidence": f"{lowest:.4f}" if lowest is not None else "",
                "status": status,
                "digit_confidences": ";".join(f"{c:.4f}" for c in confidences),
                "boxes": ";".join(str(digit.box) for digit in digits),
                "model": classifier.label,
                "sha256": sha256,
                "processed_at": utc_now(),
                "error": "",
            }
        )
    return rows
