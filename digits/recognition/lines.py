"""Prepare a line of handwriting (a cheque's amount, a field) for the string model.

The string model reads a whole line at once, so touching digits, separators
and a security-pattern background need no cutting rules: it only needs the
line brought into a fixed form, ink high, paper flattened to black.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from digits.recognition.borders import box_border_mask
from digits.recognition.segment import MIN_INK_CONTRAST, Box, grey_percentiles, greys, ink_is_dark

LINE_HEIGHT = 32
"""Height of the image the string model sees."""

LINE_WIDTH = 160
"""Width of the image the string model sees; wider lines are squeezed to fit."""

FRAME_PIXELS = 4
"""Columns of the input behind each time step (the string model halves the width twice)."""

FRAMES = LINE_WIDTH // FRAME_PIXELS
"""Time steps the string model outputs."""

LINE_VIEWS = (1.0, 1.15, 0.87)
"""Horizontal stretches each line is read at; the readings vote (test-time augmentation):
a view read wider or narrower gets right some lines the plain view misreads, so together
they read more amounts exactly than the plain view alone."""

INK_LEVEL = 0.35
"""Ink map level above which a pixel is ink for placing the line (and finding box borders)."""

BACKGROUND_KERNEL = 15
"""Side of the window that estimates the paper under the ink (wider than a stroke)."""

MAX_STROKE = 12
"""Pages whose strokes are wider than this (pixels; a 1200 dpi scan) are shrunk first, so
that the paper window stays wider than a stroke and the lines look like those the string
model learnt from (cheque amounts have strokes of 4 to 7 pixels)."""

THINNEST_STROKE = 4
"""Pages whose strokes are narrower than this (pixels: a fine pen, or a scan at 150 dpi) are read
enlarged until they are about this wide (``reading_scale``): at 1 or 2 pixels a stroke's thin parts
break off, and the line reader drops them as dust."""

WIDEST_STROKE = 7
"""Pages whose strokes are wider than this (a felt pen, or a scan at 600 dpi) are read shrunk until they
are ``SHRUNK_STROKE`` wide (``reading_scale``): the window that finds the paper under the ink
(``BACKGROUND_KERNEL``) and cutting's gaps and specks were set on strokes of 3 to 6 pixels. A scan
slightly out of focus measures 7, and reads better as it is."""

SHRUNK_STROKE = 6
"""The width strokes wider than ``WIDEST_STROKE`` are read at."""

MOST_ENLARGEMENT = 3.0
"""Pages are enlarged at most this many times over (a stroke of 1 pixel is as often noise as a pen)."""

MOST_ENLARGED_PIXELS = 4_000_000
"""A page is never enlarged beyond this many pixels (a Letter page at about 230 dpi): a whole page
of fine writing read as one line gains little and would cost several times the memory."""


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Ink high (float32 in [0, 1]) with paper, its shading and faint patterns near 0."""
    whole_levels = gray.dtype == np.uint8
    gray = dark_on_light(gray).astype(np.float32)
    # The paper is the brightest thing around each pixel: a grey-level closing
    # with a window wider than any stroke removes the ink and keeps the paper.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (BACKGROUND_KERNEL, BACKGROUND_KERNEL))
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, kernel)
    ink = np.clip(paper - gray, 0, None)
    # Where ink is sparse (a short number on a large crop), its top percent is the paper's grain:
    # ink is measured against a contrast no grain reaches. (Of whole grey levels, the ink is whole levels too.)
    if whole_levels:
        low, top = grey_percentiles(ink.astype(np.uint8), (50, 99.9))
    else:
        low, top = np.percentile(ink, (50, 99.9))
    high = max(float(top), MIN_INK_CONTRAST)
    return np.clip((ink - low) / (high - low), 0, 1)


def dark_on_light(gray: np.ndarray) -> np.ndarray:
    """The page with dark ink on light paper, whichever way round it was scanned (``ink_is_dark``)."""
    return gray if ink_is_dark(gray) else 255 - gray


STROKE_CONTRAST = 30.0
"""Grey levels below the paper's (the median) at which a pixel counts towards a stroke's width: a shade on
the paper never gets that dark, a pen's stroke does."""


def stroke_width(gray: np.ndarray) -> int:
    """Roughly how wide (pixels) the widest strokes of dark ink on light paper are.

    Only ink at least ``STROKE_CONTRAST`` levels darker than the paper counts:
    where ink is sparse, as a small number on a tall crop, Otsu's split falls
    between the paper and any shade on it (the strip beside a page's edge, a
    fold), which is far wider than a stroke.
    """
    _, ink = cv2.threshold(255 - gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if not ink.any() or np.mean(ink > 0) > 0.5:
        return 0  # blank paper, where Otsu splits the paper's own noise
    (paper,) = greys(gray, (50,))
    ink[gray > float(paper) - STROKE_CONTRAST] = 0
    if not ink.any():
        return 0
    # Twice the distance from a stroke's middle to its edge, at the thick end of the strokes.
    inside = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    return round(2 * float(np.percentile(inside[ink > 0], 95)))


def reading_scale(gray: np.ndarray) -> float:
    """How many times over to resize ``gray`` (a cleaned page, dark on light) before it is read, so that its
    strokes are from ``THINNEST_STROKE`` to ``WIDEST_STROKE`` wide: 1 where they are already, or where there
    are none; an enlargement stays within ``MOST_ENLARGEMENT`` and ``MOST_ENLARGED_PIXELS``."""
    stroke = stroke_width(gray)
    if stroke > WIDEST_STROKE:
        return SHRUNK_STROKE / stroke
    if not 0 < stroke < THINNEST_STROKE:
        return 1.0
    room = (MOST_ENLARGED_PIXELS / max(1, gray.shape[0] * gray.shape[1])) ** 0.5
    return max(1.0, min(THINNEST_STROKE / stroke, MOST_ENLARGEMENT, room))


FRAME_LEVEL = 0.5
"""Ink map level above which a pixel frames the line: faint remains of a rule or a margin's edge do not."""

EDGE_REACH = 0.03
"""How near the crop's border, as a share of its longer side, a piece must come to touch it."""

EDGE_LINE_LENGTH = 0.5
"""A thin piece touching the crop's border and reaching across this share of it is what is left of a line."""

EDGE_LINE_THICKNESS = 2.5
"""Pixels of ink per pixel of length, at most, of such a piece: a printed line's, thinner than a pen's stroke."""

SPECK_AREA = 0.05
"""Pieces of ink with less than this share of the largest piece's pixels do not widen the line's frame."""


def _strokes(ink: np.ndarray) -> np.ndarray:
    """The pixels of ``ink`` (a mask) that frame the line: not dust, nor the remains of a rule or a page's edge
    along the crop's border (long thin pieces near it), which would frame the whole crop instead."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if count <= 2:
        return ink
    x, y, w, h, areas = (stats[:, i] for i in range(5))
    height, width = ink.shape
    near = max(2, round(EDGE_REACH * max(height, width)))
    at_border = (x < near) | (y < near) | (x + w > width - near) | (y + h > height - near)
    long = np.maximum(w, h) >= EDGE_LINE_LENGTH * np.where(w > h, width, height)
    thin = areas <= EDGE_LINE_THICKNESS * np.maximum(w, h)  # a line, or two meeting at a corner
    areas = np.where((at_border & long & thin) | _broken_rule(stats, height), 0, areas)
    areas[0] = 0
    if not areas.any():
        return ink
    kept = areas >= SPECK_AREA * areas.max()
    return _near_the_writing(stats, kept, height)[labels] & ink


RULE_PIECE_SLANT = 3
"""Pixels sideways, at most, between the middles of two pieces of one upright rule a scan has broken (it may
lean)."""

RULE_PIECE_HEIGHT = 4
"""Pixels high, at least, of a piece of such a rule: dust is no part of one."""

RULE_OVER_WRITING = 2
"""Such a rule reaches at least this many times as high as any other piece: the writing beside it."""


def _broken_rule(stats: np.ndarray, height: int) -> np.ndarray:
    """Which pieces (rows of ``stats``) are the remains of an upright rule broken into short dashes: thin upright
    pieces that line up, one above the other, from top to bottom over ``EDGE_LINE_LENGTH`` of the crop's height
    and ``RULE_OVER_WRITING`` times the height of any other piece.

    A faint printed line beside the writing (a register's column rule, a page's
    border) breaks into dashes each as tall as a digit; taken for writing, one of
    them seeds the line and the whole rule frames it, the number a speck beside it.
    A digit's thin strokes stack no higher than the digits beside them.
    """
    x, y, w, h, areas = (stats[:, i].astype(np.int64) for i in range(5))
    upright = (w * 2 <= h) & (h >= RULE_PIECE_HEIGHT) & (areas <= EDGE_LINE_THICKNESS * h)
    upright[0] = False
    out = np.zeros(len(stats), bool)
    pieces = np.flatnonzero(upright)
    if len(pieces) < 2:
        return out
    # A column is the pieces whose middles lie within ``RULE_PIECE_SLANT`` of one piece's middle: a window, not a
    # chain, so that pieces side by side never link a rule to the writing beside it.
    pieces = pieces[np.argsort(2 * x[pieces] + w[pieces], kind="stable")]
    middles = (2 * x[pieces] + w[pieces]) / 2
    starts = np.searchsorted(middles, middles - RULE_PIECE_SLANT, side="left")
    ends = np.searchsorted(middles, middles + RULE_PIECE_SLANT, side="right")
    tallest_first = np.argsort(-h[1:], kind="stable") + 1
    for start, end in zip(starts, ends, strict=True):
        if end - start < 2:
            continue
        column = pieces[start:end]
        extent = (y + h)[column].max() - y[column].min()
        inside = set(column.tolist())
        tallest_other = next((int(h[i]) for i in tallest_first if i not in inside), 0)
        if extent >= EDGE_LINE_LENGTH * height and extent >= RULE_OVER_WRITING * tallest_other:
            out[column] = True
    return out


CLUSTER_GAP_ACROSS = 1.5
"""Pieces this many times the writing's height apart, across, at most, are one line with it."""

CLUSTER_GAP_DOWN = 0.5
"""Pieces this share of the writing's height above or below it, at most, are of its line."""


SEED_EDGE_DISCOUNT = 0.6
"""How much less a piece at the crop's top or bottom edge weighs as the line's seed than one at its middle: an
archive's crop holds its neighbours' feet and the form's printed foot there, and its own writing in between."""

FLAT = 4
"""A piece this many times as wide as it is tall, or more, is a dash or an underline, and one this squared
(16) times as tall as it is wide is a line's remains: neither seeds a line."""


def _near_the_writing(stats: np.ndarray, kept: np.ndarray, page_height: int) -> np.ndarray:
    """Of the ``kept`` pieces (rows of ``stats``), those of the line around the largest upright one (weighed less
    towards the top and bottom of a crop ``page_height`` high): each within ``CLUSTER_GAP_ACROSS`` of the
    writing's height across from the pieces already in it, its middle within ``CLUSTER_GAP_DOWN`` of it above
    or below them, and no thin line twice the writing's height.

    A crop cut as an archive cuts it holds other ink far from the number (a rule's
    remains, a neighbour's stroke, a note): framed with it, the number would be
    a speck in the string model's input.
    """
    if not kept.any():
        return kept
    x, y, w, h, areas = (stats[:, i].astype(np.int64) for i in range(5))
    chosen = np.zeros(len(stats), bool)
    # The seed is the largest piece that is no dash or underline, whose height says little of the writing's,
    # and no thin upright line (a rule's or a page edge's remains), whose height says nothing of it. A thin
    # piece (a stroke's width of ink along its length) wider than tall, a slanted underline, seeds only where
    # nothing else could.
    upright = kept & (w <= FLAT * h) & (h < FLAT * FLAT * w)
    thin = areas <= EDGE_LINE_THICKNESS * np.maximum(w, h)
    seeds = next(s for s in (upright & ~(thin & (w > h)), upright, kept) if s.any())
    centred = 1 - SEED_EDGE_DISCOUNT * np.abs(2 * (y + h / 2) / max(1, page_height) - 1)
    first = int(np.argmax(np.where(seeds, areas * centred, -1)))
    chosen[first] = True
    left, top, right, bottom = x[first], y[first], x[first] + w[first], y[first] + h[first]
    grew = True
    while grew:
        # The writing's height, not the frame's: a frame grown by an underline or a flourish would reach ever further.
        height = int(np.where(chosen & upright, h, 0).max()) or int(h[first])
        across = np.maximum(0, np.maximum(x - right, left - (x + w)))
        # A piece's middle, not its nearest end: a rule's remains reach into the line from far above or below it.
        middle = y + h / 2
        down = np.maximum(0, np.maximum(middle - bottom, top - middle))
        # A thin upright line twice the writing's height is a rule's remains, however near.
        ruled = thin & (h > 2 * height)
        near = kept & ~chosen & ~ruled & (across <= CLUSTER_GAP_ACROSS * height) & (down <= CLUSTER_GAP_DOWN * height)
        grew = bool(near.any())
        if grew:
            chosen |= near
            left, top = min(left, x[near].min()), min(top, y[near].min())
            right, bottom = max(right, (x + w)[near].max()), max(bottom, (y + h)[near].max())
    return chosen


@dataclass(frozen=True, eq=False)
class Placement:
    """Where the model's input came from on the page, to map frames back to page pixels."""

    x: int
    y: int
    w: int
    h: int
    width: int
    shrink: float = 1.0
    """Factor the page was shrunk by before ``x``, ``y``, ``w`` and ``h`` were measured."""
    ink: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    """Which pixels of the ``w`` x ``h`` crop are ink, to fit each digit's box to its strokes."""

    @property
    def frame(self) -> Box:
        """The page rectangle the line was read in."""
        return self._page_box(0, 0, self.w, self.h)

    def box(self, first_frame: int, end_frame: int) -> Box:
        """The page rectangle under frames ``[first_frame, end_frame)``."""
        scale = self.w / self.width * FRAME_PIXELS
        return self._page_box(first_frame * scale, 0, min(self.w, end_frame * scale), self.h)

    def digit_boxes(self, spans: list[tuple[int, int]]) -> list[Box]:
        """Page boxes of the digits read at frame ``spans``, each fitted to the strokes of its digit.

        The string model marks a digit at one or two frames, a strip narrower
        than the digit. Each digit's share of the line reaches halfway to its
        neighbours' (as far out at the ends). A piece of ink belongs whole to
        the digit whose share holds its middle; a piece that spans several
        digits' marks (touching digits) is split between their shares.
        """
        if not spans:
            return []
        scale = self.w / self.width * FRAME_PIXELS
        centres = np.array([(first + end) / 2 * scale for first, end in spans])
        halves = np.diff(centres) / 2
        reach = float(np.median(halves)) if len(halves) else self.w
        edges = np.concatenate([[centres[0] - reach], centres[:-1] + halves, [centres[-1] + reach]])
        owner = self._owners(centres, edges)
        boxes = []
        for k, span in enumerate(spans):
            ys, xs = np.nonzero(owner == k)
            boxes.append(self._page_box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else self.box(*span))
        return boxes

    def _owners(self, centres: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """For each ink pixel of the crop, the index of the digit it belongs to (-1: none, or paper)."""
        share = np.searchsorted(edges, np.arange(self.w) + 0.5) - 1  # each column's digit
        share[(share < 0) | (share >= len(centres))] = -1
        count, labels, stats, _ = cv2.connectedComponentsWithStats(self.ink.astype(np.uint8), connectivity=8)
        owner = np.full(self.ink.shape, -1)
        for piece in range(1, count):
            left, width = stats[piece, cv2.CC_STAT_LEFT], stats[piece, cv2.CC_STAT_WIDTH]
            mine = labels == piece
            if np.count_nonzero((centres >= left) & (centres < left + width)) > 1:
                owner[mine] = np.broadcast_to(share, owner.shape)[mine]  # touching digits: split by shares
            else:
                owner[mine] = share[min(self.w - 1, left + width // 2)]
        return owner

    def _page_box(self, left: float, top: float, right: float, bottom: float) -> Box:
        """A box given in crop pixels, in page pixels."""
        page = [round(v / self.shrink) for v in (self.x + left, self.y + top, right - left, bottom - top)]
        return Box(page[0], page[1], max(1, page[2]), max(1, page[3]))


def prepare_line(gray: np.ndarray, stretch: float = 1.0) -> tuple[np.ndarray, Placement]:
    """A line image as the string model's (32, 160) float32 input, and where it lies on the page.

    ``stretch`` widens (or, under 1, narrows) the line, as in ``LINE_VIEWS``.
    """
    return prepare_views(gray, (stretch,))[0]


def prepare_views(
    gray: np.ndarray, stretches: tuple[float, ...], framed: bool = True
) -> list[tuple[np.ndarray, Placement]]:
    """``prepare_line`` at each stretch, finding the ink once for all of them (``framed`` as for ``find_pieces``)."""
    shrink = min(1.0, MAX_STROKE / max(1, stroke_width(dark_on_light(gray))))
    if shrink < 1:
        gray = cv2.resize(gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    ink = ink_map(gray)
    # A form field's printed box would be read as "1"s at both ends.
    border = box_border_mask(ink > INK_LEVEL) if framed else np.zeros(ink.shape, bool)
    if border.any():
        ink[cv2.dilate(border.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 0
    # Lone pixels are dust or sensor noise, never part of a stroke.
    ink_pixels = (ink > INK_LEVEL).astype(np.uint8)
    neighbours = cv2.filter2D(ink_pixels, -1, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT)
    ink[(ink_pixels == 1) & (neighbours == 1)] = 0
    ys, xs = np.nonzero(_strokes(ink > FRAME_LEVEL))
    x0, y0 = 0, 0
    if len(ys):
        pad = 2
        y0, x0 = max(0, ys.min() - pad), max(0, xs.min() - pad)
        ink = ink[y0 : ys.max() + pad + 1, x0 : xs.max() + pad + 1]
    h, w = ink.shape
    views = []
    for stretch in stretches:
        width = min(LINE_WIDTH, max(1, round(w * LINE_HEIGHT / h * stretch)))
        line = np.zeros((LINE_HEIGHT, LINE_WIDTH), np.float32)
        line[:, :width] = np.clip(cv2.resize(ink, (width, LINE_HEIGHT), interpolation=cv2.INTER_AREA), 0, 1)
        views.append((line, Placement(int(x0), int(y0), w, h, width, shrink, ink > INK_LEVEL)))
    return views
