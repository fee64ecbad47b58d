"""Find the handwritten digits on a grayscale page and normalise each like MNIST.

MNIST digits are white ink on black, fitted into a 20x20 box that keeps their
aspect ratio, then placed in a 28x28 canvas so that their centre of mass sits
in the middle. A model trained on MNIST only works on our scans if they are
brought into exactly that form, so every digit goes through `normalise_digit`,
and training feeds MNIST through the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digits.recognition.borders import box_border_mask

PREPROCESSING_VERSION = "1"
"""Bumped whenever what a model is fed changes (``ink_image``, ``normalise_digit``,
``digits.recognition.lines.prepare_line``); stored with each model, checked by the tests."""

CANVAS = 28
"""Side of the square image the model sees, as in MNIST."""

DIGIT_BOX = 20
"""Side of the box the digit's longer side is scaled to, as in MNIST."""

MIN_CONTRAST = 40
"""Grey-level spread below which a page counts as blank (paper only)."""

BLANK_BOX_SHADE = 15.0
"""Grey levels below its paper that a comb box's inside, taken for blank (``MIN_CONTRAST``), may still reach once
smoothed (``shaded``): blank paper in photos stays within a few levels, a stroke blurred under the bar does not."""

MIN_INK_CONTRAST = 60.0
"""Grey levels below the paper at which ink counts in full, however little of it a page holds: ink that
never gets that dark is faint (``faint``)."""

SPECK_FRACTION = 0.25
"""A piece shorter and narrower than this fraction of the tallest digit is a speck."""

MERGE_OVERLAP = 0.5
"""Pieces whose column ranges overlap by this much of the narrower belong together."""

PIECE_HEIGHT = 0.5
"""A piece shorter than this fraction of its neighbour is part of a digit, not a digit."""

STACKED_OVERLAP = 0.3
"""Pieces sharing less than this fraction of the shorter one's rows stand over each other."""

GAP_FRACTION = 0.1
"""Stacked pieces this close sideways (fraction of the taller) are one broken stroke."""

SLIVER_AREA = 0.1
"""A short piece with less ink than this fraction of the largest digit's is a scratch."""


@dataclass(frozen=True)
class Box:
    """A rectangle in page pixels."""

    x: int
    y: int
    w: int
    h: int

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


@dataclass(frozen=True)
class Digit:
    """One digit cut from a page: where it was, and its 28x28 MNIST-like image."""

    box: Box
    image: np.ndarray


def grey_percentiles(levels: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(levels, q)`` (linear interpolation) of an array of whole grey levels, 0 to 255.

    Counted, not sorted: a page has millions of pixels and 256 levels, and
    sorting them to find a few percentiles was most of the cost of reading a
    blank page.
    """
    if levels.size < 2**24:  # OpenCV counts in float32, exact up to 2**24
        counts = cv2.calcHist([np.ascontiguousarray(levels).reshape(-1, 1)], [0], None, [256], [0, 256]).ravel()
    else:
        counts = np.bincount(levels.ravel(), minlength=256)
    cumulative = np.cumsum(counts.astype(np.int64))
    position = np.asarray(q, np.float64) / 100 * (cumulative[-1] - 1)
    below = np.floor(position)
    # The k-th smallest level (from 0) is the first whose cumulative count passes k.
    low = np.searchsorted(cumulative, below, side="right")
    high = np.searchsorted(cumulative, np.minimum(below + 1, cumulative[-1] - 1), side="right")
    return low + (high - low) * (position - below)


def greys(gray: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """Percentiles ``q`` of a grey image's levels: counted for whole grey levels (``grey_percentiles``)."""
    return grey_percentiles(gray, q) if gray.dtype == np.uint8 else np.percentile(gray, q)


def ink_is_dark(gray: np.ndarray) -> bool:
    """Whether the ink on a page is darker than its paper.

    The paper covers most of a page, so the median is the paper's grey; the ink
    lies at whichever end of the greys is farther from it. A dim photo of white
    paper is still dark ink on lighter paper, however grey the paper came out.
    """
    low, paper, high = greys(gray, (1, 50, 99))
    return paper - low >= high - paper


def faint(gray: np.ndarray) -> bool:
    """Whether no pixel of ``gray`` (dark ink on light paper) is ``MIN_INK_CONTRAST`` levels darker than its
    paper (the median: paper covers most of a page).

    A page cleaned of its margin can keep the shade beside the page's edge,
    darker than the paper but never as dark as a pen's stroke; stretched to
    full contrast, it is a tall smear a classifier can take for a sure "1".
    """
    (paper,) = greys(gray, (50,))
    return float(paper) - float(gray.min()) < MIN_INK_CONTRAST


def shaded(gray: np.ndarray) -> bool:
    """Whether ``gray`` (dark ink on light paper), too flat to hold ink (``ink_image``), still holds a shade a
    blurred or faint stroke would leave: a smoothed pixel ``BLANK_BOX_SHADE`` levels darker than its paper.

    Smoothing first, so that the specks of a photo's noise and of JPEG, which
    reach as far on blank paper, do not count.
    """
    (paper,) = greys(gray, (50,))
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    return float(paper) - float(smooth.min()) >= BLANK_BOX_SHADE


def ink_image(gray: np.ndarray) -> np.ndarray | None:
    """Return the page as ink-high uint8 with the paper set to 0, or None if blank (see ``ink_is_dark``)."""
    if int(gray.max()) - int(gray.min()) < MIN_CONTRAST:
        return None
    ink = 255 - gray if ink_is_dark(gray) else gray.copy()
    ink = cv2.normalize(ink, None, 0, 255, cv2.NORM_MINMAX)
    threshold, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink[ink <= threshold] = 0
    return ink


def find_digits(gray: np.ndarray, as_one: bool = False) -> list[Digit]:
    """Cut a line of separate digits into MNIST-like images, left to right.

    With ``as_one``, all the ink but specks outside it is one digit, normalised
    whole as in training: for ink with room for one digit, where cutting could
    only split a broken digit or drop a faint stroke of it.
    """
    pieces = find_pieces(gray)
    return pieces.digits(as_one) if pieces else []


def find_pieces(gray: np.ndarray, framed: bool = True) -> Pieces | None:
    """The pieces of ink on a page, found once for both ways of cutting them (``Pieces.digits``); None if blank.

    ``framed`` says the image may hold a printed box's frame, which is taken
    out first. The inside of a comb box, cut without its frame, is not: a
    square "0" written in it would look like one.
    """
    ink = ink_image(gray)
    if ink is None:
        return None
    if framed:
        # A form field's printed box would join every digit touching it into one shape.
        ink[box_border_mask(ink > 0)] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    strength = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count) / np.maximum(stats[:, 4], 1)
    pieces = _without_underlines(_without_remnants([_Span.of(stats, i) for i in range(1, count)], strength), labels)
    if not pieces:
        return None
    # Specks go first: stacked over each other they would pass for a stroke.
    tallest = max(p.h for p in pieces)
    return Pieces(
        ink,
        labels,
        [p for p in pieces if not _is_speck(p, tallest)],
        [p for p in pieces if _is_speck(p, tallest)],
    )


@dataclass(frozen=True)
class Pieces:
    """A page's ink (paper 0), its connected pieces' labels, and the pieces apart from the specks."""

    ink: np.ndarray
    labels: np.ndarray
    strokes: list[_Span]
    specks: list[_Span]

    def digits(self, as_one: bool = False) -> list[Digit]:
        """The digits the pieces make, left to right; with ``as_one``, one digit of them all (see ``find_digits``)."""
        pieces = [piece.copy() for piece in self.strokes]
        if as_one:
            groups = pieces[:1]
            for piece in pieces[1:]:
                groups[0].absorb(piece)
            # Inside the digit's own box a speck is a piece of it: a skipped pen, or a thin stroke that a coarse
            # black-and-white scan broke up. Outside, it is dust or a neighbour's stroke.
            for speck in self.specks:
                if _within(speck, groups[0]):
                    groups[0].absorb(speck)
        else:
            groups = _group_pieces(pieces)
            tallest, largest = max(g.h for g in groups), max(g.area for g in groups)
            groups = [g for g in groups if not _is_sliver(g, tallest, largest)]
        return [self._digit(group) for group in groups]

    def is_one_stroke(self) -> bool:
        """Whether the ink is a single piece with no specks inside it: then cutting it and reading it whole agree."""
        return len(self.strokes) == 1 and not any(_within(speck, self.strokes[0]) for speck in self.specks)

    def _digit(self, group: _Span) -> Digit:
        x0, y0, x1, y1 = group.x, group.y, group.x + group.w, group.y + group.h
        # Keep only this group's own pixels: a neighbour reaching into the
        # bounding box must not leak into the digit.
        own = np.isin(self.labels[y0:y1, x0:x1], group.labels)
        crop = np.where(own, self.ink[y0:y1, x0:x1], 0)
        return Digit(Box(x0, y0, group.w, group.h), normalise_digit(crop))


def normalise_digit(crop: np.ndarray) -> np.ndarray:
    """Fit ink-high pixels into MNIST's form: 20x20 box, centre of mass at the centre.

    Returns a float32 array of shape (28, 28) with values in [0, 1].
    """
    ys, xs = np.nonzero(crop)
    if len(ys) == 0:
        return np.zeros((CANVAS, CANVAS), np.float32)
    crop = crop[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(crop, size, interpolation=interpolation)
    peak = small.max()
    if peak > 0:
        small /= peak

    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    total = small.sum()
    rows, cols = np.indices(small.shape)
    cy = (rows * small).sum() / total if total else small.shape[0] / 2
    cx = (cols * small).sum() / total if total else small.shape[1] / 2
    top = int(np.clip(round(CANVAS / 2 - cy), 0, CANVAS - small.shape[0]))
    left = int(np.clip(round(CANVAS / 2 - cx), 0, CANVAS - small.shape[1]))
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


@dataclass
class _Span:
    """The bounding box, pixel count and component labels of one or more ink pieces."""

    x: int
    y: int
    w: int
    h: int
    area: int
    labels: list[int]

    @classmethod
    def of(cls, stats: np.ndarray, label: int) -> _Span:
        x, y, w, h, area = (int(v) for v in stats[label, :5])
        return cls(x, y, w, h, area, [label])

    def copy(self) -> _Span:
        """A span of its own to grow (``absorb`` changes the span it is called on)."""
        return _Span(self.x, self.y, self.w, self.h, self.area, list(self.labels))

    def absorb(self, other: _Span) -> None:
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        self.x, self.y = min(self.x, other.x), min(self.y, other.y)
        self.w, self.h = x1 - self.x, y1 - self.y
        self.area += other.area
        self.labels += other.labels


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return min(a1, b1) - max(a0, b0)


def _belong_together(group: _Span, piece: _Span) -> bool:
    """Whether ``piece`` is part of the digit in ``group`` rather than the next digit.

    Digits on a line stand side by side at about the same height. The pieces of
    one broken digit (a 5's detached bar, a 7's crossbar, a pen that skipped)
    stand over each other, or one is much shorter than the other.
    """
    across = _overlap(group.x, group.x + group.w, piece.x, piece.x + piece.w)
    narrower = min(group.w, piece.w)
    if across > MERGE_OVERLAP * narrower:
        return True
    shorter = min(group.h, piece.h)
    up_down = _overlap(group.y, group.y + group.h, piece.y, piece.y + piece.h)
    taller = max(group.h, piece.h)
    if across > 0 and (shorter < PIECE_HEIGHT * taller or up_down < STACKED_OVERLAP * shorter):
        return True
    # A pen that skipped on a slanted stroke leaves two pieces, one above the other.
    return across > -GAP_FRACTION * taller and up_down < STACKED_OVERLAP * shorter


def _group_pieces(pieces: list[_Span]) -> list[_Span]:
    """Pieces merged into digits, left to right."""
    groups: list[_Span] = []
    for piece in sorted(pieces, key=lambda p: p.x):
        if groups and _belong_together(groups[-1], piece):
            groups[-1].absorb(piece)
        else:
            groups.append(piece)
    return groups


REMNANT_FAINTNESS = 0.65
"""A piece whose mean ink is under this share of the darkest piece's is faint beside the writing."""

REMNANT_LINE = 10
"""A piece this many times as long as it is thick is line-like."""

REMNANT_OVER_WRITING = 2.0
"""A faint or line-like piece this many times as long as the longest piece of writing is no writing."""


def _without_remnants(pieces: list[_Span], strength: np.ndarray) -> list[_Span]:
    """``pieces`` without what cleaning a page can leave of its edge or its rules: faint shade and thin lines,
    far longer than any piece of the writing (``strength`` is each label's mean ink).

    Beside a few small digits on a large crop, such a remnant would be the
    tallest piece: the digits would pass for specks, and the remnant be read
    as a "1".
    """
    mean = [float(strength[p.labels[0]]) for p in pieces]
    darkest = max(mean, default=0.0)
    odd = [m < REMNANT_FAINTNESS * darkest or max(p.w, p.h) >= REMNANT_LINE * min(p.w, p.h)
           for p, m in zip(pieces, mean, strict=True)]  # fmt: skip
    writing = [max(p.w, p.h) for p, is_odd in zip(pieces, odd, strict=True) if not is_odd]
    if not writing:
        return pieces
    longest = max(writing)
    return [p for p, is_odd in zip(pieces, odd, strict=True)
            if not (is_odd and max(p.w, p.h) >= REMNANT_OVER_WRITING * longest)]  # fmt: skip


UNDERLINE_FLATNESS = 2.5
"""A piece at least this many times as wide as it is tall is flat: a rule, a dash, or an underline."""

UNDERLINE_STRAIGHTNESS = 5.0
"""An underline is at least this many times as long as it is thick along its own slant: a pen's straight
stroke. A digit's lower part that a coarse scan broke off (a 5's or a 3's bowl) is as flat but curved."""

UNDERLINE_WIDTH = 0.75
"""An underline is at least this share of the tallest upright piece wide: a digit's own flat stroke is
narrower than the digit is tall."""


def _without_underlines(pieces: list[_Span], labels: np.ndarray) -> list[_Span]:
    """``pieces`` without the straight strokes drawn under the writing (``labels`` are the page's
    component labels): an underline is no digit.

    Reaching under two digits, an underline would join them into one group
    (``_belong_together``), which the classifier takes for no digit; under a
    single digit, it would be read with it. It lies wholly below the writing
    above it, and is straight: a 2's base that a coarse scan broke off reaches
    up into the digit, a 5's or a 3's bowl is curved, and a 5's bar, a 7's
    crossbar and a strike-through lie higher, so they stay.
    """
    flat = [p.w >= UNDERLINE_FLATNESS * p.h for p in pieces]
    upright = [p for p, is_flat in zip(pieces, flat, strict=True) if not is_flat]
    if not upright:
        return pieces
    tallest = max(p.h for p in upright)

    def underline(piece: _Span) -> bool:
        above = [q for q in upright if _overlap(piece.x, piece.x + piece.w, q.x, q.x + q.w) > 0]
        below = piece.y >= max((q.y + q.h for q in above), default=piece.y + 1)
        return piece.w >= UNDERLINE_WIDTH * tallest and below and _straight(piece, labels)

    return [p for p, is_flat in zip(pieces, flat, strict=True) if not (is_flat and underline(p))]


def _straight(piece: _Span, labels: np.ndarray) -> bool:
    """Whether a piece's pixels lie along a straight stroke (``UNDERLINE_STRAIGHTNESS``), at whatever slant."""
    own = (labels[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w] == piece.labels[0]).astype(np.uint8)
    _, sides, _ = cv2.minAreaRect(cv2.findNonZero(own))
    return max(sides) + 1 >= UNDERLINE_STRAIGHTNESS * (min(sides) + 1)


def _is_speck(piece: _Span, tallest: int) -> bool:
    # Dust and dots are short in both directions; a "1" is short in width only
    # and a 5's bar in height only.
    return piece.h < SPECK_FRACTION * tallest and piece.w < SPECK_FRACTION * tallest


def _within(piece: _Span, group: _Span) -> bool:
    """Whether ``piece`` lies wholly inside ``group``'s bounding box."""
    inside_x = group.x <= piece.x and piece.x + piece.w <= group.x + group.w
    return inside_x and group.y <= piece.y and piece.y + piece.h <= group.y + group.h


def _is_sliver(group: _Span, tallest: int, largest: int) -> bool:
    # A short stroke with a tenth of the ink of the largest digit is a scratch.
    return group.area < SLIVER_AREA * largest and group.h < PIECE_HEIGHT * tallest
