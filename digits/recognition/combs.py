"""Find the printed boxes of a comb field inside its region, and cut out each box's inside, its frame left out.

Forms print a comb two ways: boxes that share their sides (comb + 1 vertical
rules), or separate boxes with a gap between them (two sides each). Either way
the boxes stand in one row under one top rule and over one bottom rule, and a
layout's region need only be roughly around them. ``comb_cells`` finds them:

1. The ink, by a local threshold (photos are unevenly lit).
2. Horizontal rules: rows where straight runs, each at least a share of one
   box's width, cover much of the field. Handwriting has short strokes, in one box.
3. Between a top and a bottom rule, vertical sides: columns inked over nearly
   the whole height. A cross is diagonal; a "1" or a square "0" can be upright.
4. Rows of ``count`` boxes at a regular pitch, of equal width, are looked for
   among the sides (``box_spans``); of those found, the one whose sides hold the
   most ink is the comb: upright strokes are not in the same place in every box.
5. Each box's inside is cut between the inner edges of its rules, a margin in.

The boxes are looked for inside the region, then a little beyond it, where a region
drawn roughly cuts through them (``search_area``); and, where neither shows a row
of boxes, again with sides inked over less of their height (a dark photo's blurred
sides). Where no such row of boxes is found, the region is split at its printed
separators if there are ``count`` + 1 of them, else evenly, with its printed lines erased.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import cv2
import numpy as np

from digits.recognition.borders import erase, find_printed_lines

MIN_BOX_SHARE = 0.5
"""A box is at least this share of the field's width divided by the boxes: a region drawn roughly
around a comb is at most about twice as wide as the comb."""

RULE_RUN = 0.8
"""A straight horizontal run counts towards a rule if it is this share of the narrowest box's width."""

RULE_STRENGTH = 0.4
"""A row holds a rule if its straight runs cover this share of the strongest such row."""

MIN_RULE_SHARE = 0.25
"""…and at least this share of the field's width: a comb's top and bottom rules span all its boxes."""

VERTICAL_COVERAGE = 0.8
"""A column between a top and a bottom rule is a printed side if this share of its height is inked."""

FAINT_COVERAGE = 0.6
"""…or, where no row of boxes stands out at that, this share (``comb_cells``): a dark photo's blurred sides."""

MIN_BOX_ASPECT = 0.5
"""A box is at least this share of its height wide (and high, of the narrowest box the field allows)."""

STEP_TOLERANCE = 0.15
"""Each next box's sides are looked for this share of a box's width either side of one pitch on."""

WIDTH_TOLERANCE = 0.1
"""A comb's boxes are within this share of their median width of it, and of evenly spaced."""

MAX_GAP = 0.6
"""Neighbouring boxes of a comb are at most this share of a box's width apart."""

MAX_SIDES_PER_BOX = 6
"""More upright lines than this per box between two rules is hatching or a ruled grid, not a comb."""

REGION_SLACK = 0.25
"""A comb's boxes are also looked for this share of its region's height beyond the region on every side: a
region drawn roughly may cut through them (``comb_cells``)."""

INSIDE_MARGIN = 0.06
"""Share of a box's shorter side left out inside its frame: the frame's soft edge, a slight tilt."""


@dataclass(frozen=True)
class Cell:
    """One box of a comb field: the image read as its one digit, and where its corner lies in the field."""

    image: np.ndarray
    left: int
    top: int
    framed: bool = False
    """Whether the box's printed frame may still be in ``image`` (the field split evenly, its boxes not found)."""


@dataclass(frozen=True)
class Rule:
    """A printed line's first and last row (horizontal) or column (vertical), inclusive."""

    start: int
    end: int


def comb_cells(gray: np.ndarray, count: int, region: tuple[int, int, int, int] | None = None) -> list[Cell]:
    """The ``count`` boxes of a comb field (dark ink on light paper), left to right, each one digit's image.

    ``region`` (left, top, right, bottom, exclusive) is the field as drawn on
    ``gray``, which may hold some of the form around it (``search_area``; all of
    ``gray`` if None). Found boxes give their insides, frame left out
    (``find_boxes``): inside the region, or, where it cuts through them, in all
    of ``gray`` if their row's middle lies in the region. Otherwise the region
    is split as ``split_evenly`` says. Cells are placed on ``gray``.
    """
    left, top, right, bottom = region or (0, 0, gray.shape[1], gray.shape[0])
    for coverage in (VERTICAL_COVERAGE, FAINT_COVERAGE):
        boxes = find_boxes(gray[top:bottom, left:right], count, coverage)
        if boxes is not None:
            boxes = [(x0 + left, y0 + top, x1 + left, y1 + top) for x0, y0, x1, y1 in boxes]
        elif region and (around := find_boxes(gray, count, coverage)) is not None and top <= _middle(around) < bottom:
            boxes = around
        if boxes is not None:
            return [Cell(gray[y0:y1, x0:x1], x0, y0) for x0, y0, x1, y1 in boxes]
    cells = split_evenly(gray[top:bottom, left:right], count)
    return [replace(cell, left=cell.left + left, top=cell.top + top) for cell in cells]


def search_area(region: tuple[int, int, int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Where a comb field drawn as ``region`` (left, top, right, bottom) on an image of ``shape`` is looked for:
    the region grown by ``REGION_SLACK`` of its height on every side, inside the image."""
    left, top, right, bottom = region
    slack = round(REGION_SLACK * (bottom - top))
    return max(0, left - slack), max(0, top - slack), min(shape[1], right + slack), min(shape[0], bottom + slack)


def _middle(boxes: list[tuple[int, int, int, int]]) -> float:
    """The middle row of a row of boxes."""
    return float(np.mean([(top + bottom) / 2 for _, top, _, bottom in boxes]))


def find_boxes(
    gray: np.ndarray, count: int, coverage: float = VERTICAL_COVERAGE
) -> list[tuple[int, int, int, int]] | None:
    """The inside of each of the ``count`` printed boxes, as (left, top, right, bottom), right and bottom
    exclusive, a margin inside the frame; None where the field shows no such row of boxes. Columns inked over
    ``coverage`` of the height between two rules are taken for the boxes' sides."""
    ink = ink_mask(gray)
    narrowest = MIN_BOX_SHARE * gray.shape[1] / count
    rules = horizontal_rules(ink, narrowest)
    # The tightest pair first: a box's own rules, not a line of the form above it.
    pairs = sorted(itertools.combinations(rules, 2), key=lambda pair: pair[1].start - pair[0].end)
    for top, bottom in pairs:
        if bottom.start - top.end - 1 < MIN_BOX_ASPECT * narrowest:
            continue
        spans = box_spans(ink[top.end + 1 : bottom.start], count, coverage)
        boxes = [_inside(span, Rule(top.end + 1, bottom.start - 1)) for span in spans or []]
        if boxes and all(left < right and top < bottom for left, top, right, bottom in boxes):
            return boxes
    return None


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Where ``gray`` (dark on light) is inked, by a threshold local to about a box's size."""
    block = max(15, (min(gray.shape) // 2) | 1)
    return cv2.adaptiveThreshold(gray, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 10).astype(bool)


def horizontal_rules(ink: np.ndarray, narrowest: float) -> list[Rule]:
    """The horizontal rules of a field, top to bottom: rows where long straight runs of ink cover much of it."""
    length = max(3, round(RULE_RUN * narrowest))
    # A rule a little aslant or wavy (a blurred photo) runs straight once each row takes in its neighbours.
    thick = cv2.dilate(ink.astype(np.uint8), np.ones((3, 1), np.uint8))
    straight = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
    profile = cv2.morphologyEx(thick, cv2.MORPH_OPEN, straight).mean(axis=1)
    strongest = float(profile.max(initial=0.0))
    if strongest < MIN_RULE_SHARE:
        return []
    return _runs(profile >= max(MIN_RULE_SHARE, RULE_STRENGTH * strongest))


def box_spans(strip: np.ndarray, count: int, coverage: float = VERTICAL_COVERAGE) -> list[Rule] | None:
    """The ``count`` boxes in the ink between a top and a bottom rule, left to right, as the columns inside their sides.

    Printed sides stand at a regular pitch; handwriting inside the boxes makes
    upright strokes too (a "1" drawn as an I, a square "0"), but not at the same
    place in every box, and seldom as straight and full as print. Of the regular
    rows of boxes the sides allow, the one whose sides hold the most ink is taken:
    separate boxes rather than box and gap taken together, frames rather than
    strokes. None where there is none.
    """
    # Sides a pixel or two aslant still cover their height, counted with their neighbours.
    inked = cv2.dilate(strip.astype(np.uint8), np.ones((1, 3), np.uint8)).mean(axis=0)
    sides = _runs(inked >= coverage)
    if len(sides) > MAX_SIDES_PER_BOX * count:
        return None  # a hatched or finely ruled strip: no row of boxes to trust, and many to try
    found = {
        row
        for left, right, next_left in itertools.combinations_with_replacement(range(len(sides)), 3)
        if left < right and (row := _row_of_boxes(sides, left, right, next_left, count)) is not None
    }
    regular = [row for row in found if _regular(row, sides, strip.shape[0])]
    if not regular:
        return None

    def held_ink(row: tuple[tuple[int, int], ...]) -> float:
        used = {side for box in row for side in box}
        return sum(float(inked[sides[side].start : sides[side].end + 1].mean()) for side in used)

    best = max(regular, key=held_ink)
    return [Rule(sides[left].end + 1, sides[right].start - 1) for left, right in best]


def _row_of_boxes(
    sides: list[Rule], left: int, right: int, next_left: int, count: int
) -> tuple[tuple[int, int], ...] | None:
    """The sides (left, right) of ``count`` boxes, if the first box lies between ``sides[left]`` and
    ``sides[right]``, the second begins after ``sides[next_left]`` (the first's right side where boxes share
    sides), and each further box has sides about one pitch after the one before.

    Boxes are measured by their sides' inner edges: two sides that run together
    (boxes a blurred gap apart) are one run, the right side of one box and the
    left of the next.
    """
    starts = np.array([side.start for side in sides])
    ends = np.array([side.end for side in sides])
    width = starts[right] - ends[left] - 1
    pitch = ends[next_left] - ends[left]
    if pitch <= width or pitch - width > MAX_GAP * width:
        return None
    tolerance = max(2.0, STEP_TOLERANCE * width)
    boxes = [(left, right)]
    steps = [float(pitch)]
    while len(boxes) < count:
        pitch = float(np.mean(steps))  # the pitch seen so far: print and photos are not exactly even
        before, after = ends[boxes[-1][0]] + pitch, starts[boxes[-1][1]] + pitch
        box = int(np.argmin(np.abs(ends - before))), int(np.argmin(np.abs(starts - after)))
        if abs(ends[box[0]] - before) > tolerance or abs(starts[box[1]] - after) > tolerance:
            return None
        steps += [ends[box[0]] - ends[boxes[-1][0]], starts[box[1]] - starts[boxes[-1][1]]]
        boxes.append(box)
    return tuple(boxes)


def _regular(row: tuple[tuple[int, int], ...], sides: list[Rule], height: int) -> bool:
    """Whether the boxes of ``row`` are wide enough for a digit, about equally wide, and evenly spaced."""
    widths = np.array([sides[right].start - sides[left].end - 1 for left, right in row])
    pitches = np.diff([sides[left].end for left, _ in row])
    typical = float(np.median(widths))
    equal = bool((np.abs(widths - typical) <= WIDTH_TOLERANCE * typical).all())
    even = len(pitches) == 0 or bool((np.abs(pitches - np.median(pitches)) <= WIDTH_TOLERANCE * typical).all())
    return bool(widths.min() >= MIN_BOX_ASPECT * height) and equal and even


def _inside(columns: Rule, rows: Rule) -> tuple[int, int, int, int]:
    """A box's inside between its sides' and rules' inner edges, a margin in: (left, top, right, bottom), exclusive."""
    width, height = columns.end - columns.start + 1, rows.end - rows.start + 1
    margin = max(1, round(INSIDE_MARGIN * min(width, height)))
    return columns.start + margin, rows.start + margin, columns.end + 1 - margin, rows.end + 1 - margin


def _runs(flags: np.ndarray) -> list[Rule]:
    """The runs of True in a 1-D array, as first and last index."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [Rule(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def split_evenly(gray: np.ndarray, count: int) -> list[Cell]:
    """The field cut at its ``count`` + 1 printed separators if all are found, else into equal parts; lines erased.

    Full-height cells with the field's printed lines painted over: the way comb
    fields were read before boxes were looked for, kept for fields whose boxes
    cannot be found.
    """
    lines, columns = find_printed_lines(gray)
    image = erase(gray, lines)
    width = gray.shape[1]
    if len(columns) != count + 1:
        columns = [round(i * width / count) for i in range(count + 1)]
    return [Cell(image[:, a : max(b, a + 1)], a, 0, framed=True) for a, b in itertools.pairwise(columns)]
