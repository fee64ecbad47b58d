"""Find the printed border of a form field's box, so that it is not read as ink.

A box drawn around handwritten digits joins any digit that touches it into one
shape, and its sides look like "1"s to a line reader. A border is recognised by
what digits never are: a shape whose bounding rectangle is inked along nearly
the whole length of all four sides.
"""

from __future__ import annotations

import cv2
import numpy as np

SIDE_COVERAGE = 0.9
"""Share of a side's length that must be inked for it to count as a printed border."""

MIN_BOX_SIDE = 12
"""Shapes smaller than this (pixels) in either direction are never boxes."""

MAX_BORDER_SHARE = 0.25
"""A border's sides are at most this share of the box's shorter side thick."""


def box_border_mask(ink: np.ndarray) -> np.ndarray:
    """The pixels of ``ink`` (a boolean mask) that belong to rectangular box borders."""
    border = np.zeros(ink.shape, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
            continue
        shape = labels[y : y + h, x : x + w] == label
        sides = _side_thickness(shape)
        if sides is None:
            continue
        top, bottom, left, right = sides
        frame = np.zeros_like(shape)
        frame[:top], frame[h - bottom :], frame[:, :left], frame[:, w - right :] = True, True, True, True
        border[y : y + h, x : x + w] |= frame & shape
    return border


def _side_thickness(shape: np.ndarray) -> tuple[int, int, int, int] | None:
    """How many rows or columns thick each side (top, bottom, left, right) is, or None if not a box.

    A printed side is straight: one row near the edge is inked almost end to
    end. A handwritten "0" or "4" curves away from its bounding rectangle.
    """
    h, w = shape.shape
    limit = max(1, int(MAX_BORDER_SHARE * min(h, w)))
    thickness = []
    for side in (shape, shape[::-1], shape.T, shape.T[::-1]):
        coverage = side[:limit].mean(axis=1)
        end = int(np.argmax(coverage))
        if coverage[end] < SIDE_COVERAGE:
            return None
        # Rows past the fully inked one still carry the border's soft edge.
        while end + 1 < limit and coverage[end + 1] >= 0.5:
            end += 1
        thickness.append(end + 1)
    return thickness[0], thickness[1], thickness[2], thickness[3]


HORIZONTAL_RULE = 0.5
"""In a form field, a straight horizontal run of ink longer than this share of the field's width is printed."""

VERTICAL_RULE = 0.9
"""A straight vertical run this share of the height between a box's top and bottom rules is printed:
a comb box's separator spans the box, a handwritten "1" stays inside it."""

VERTICAL_RULE_WITHOUT_BOX = 0.85
"""Without top and bottom rules, a vertical run must span this share of the field's height."""


def find_printed_lines(gray: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The printed lines and boxes of a form field (dark ink on light paper), and where its vertical ones stand.

    Printed lines are straight and long: an opening along a long thin window
    keeps them and nothing handwritten. Returns the lines' pixels (their soft
    edges included) and the x of each vertical line, left to right.
    """
    _, mask = cv2.threshold(255 - gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    h, w = gray.shape
    across = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(HORIZONTAL_RULE * w)), 1))
    horizontal = cv2.morphologyEx(mask, cv2.MORPH_OPEN, across)
    rows = np.nonzero(horizontal.any(axis=1))[0]
    span = rows.max() - rows.min() if len(rows) else 0
    tall = VERTICAL_RULE * span if span > 0.3 * h else VERTICAL_RULE_WITHOUT_BOX * h
    down = cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(3, int(tall))))
    vertical = cv2.morphologyEx(mask, cv2.MORPH_OPEN, down)
    lines = cv2.dilate(horizontal | vertical, np.ones((3, 3), np.uint8)) > 0
    columns = np.nonzero(vertical.any(axis=0))[0]
    runs = np.split(columns, np.nonzero(np.diff(columns) > 1)[0] + 1) if len(columns) else []
    return lines, [round(float(run.mean())) for run in runs]


def erase(gray: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """``gray`` with the pixels of ``lines`` painted over with the paper's grey."""
    if not lines.any():
        return gray
    out = gray.copy()
    out[lines] = int(np.median(gray[~lines])) if (~lines).any() else 255
    return out
