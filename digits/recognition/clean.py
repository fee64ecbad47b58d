"""What on a page is not handwriting, taken away before any digit is looked for.

Real scans and photos hold more than paper and digits: the dark margin beyond
the page's edge or a binding's shadow, light that falls off across a photo,
and printed rules that run from edge to edge. Each would be read as ink, and a
dark margin or a rule as a "1". ``clean_page`` leaves them out, keeping the
page's size so that digit boxes stay in page pixels (a page turned a few
degrees is cleaned straightened, then turned back):

1. margins: dark bands along an edge of the image, far darker than the paper,
   and the shaded strip beside them, become paper, and so does the ink that
   touches a wide one (a ragged edge's remains), once the rules are gone;
2. light: the page is divided by its paper (the brightest level around each
   pixel), so that ink is as dark under a lamp as in a shadow;
3. rules: straight lines crossing nearly the whole page are erased, except
   where a handwritten stroke crosses them;
4. other lines: a field holds one line of digits, so ink away from the line
   that holds the most of it (printed text at a crop's foot, a note above) is
   left out too.

The inside of a comb box, cut without its printed frame, holds one digit and
none of these: it is only flattened (``clean_box``).
"""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.align import MIN_SKEW_DEGREES, sharpest_rows
from digits.recognition.imaging import rescaled
from digits.recognition.lines import dark_on_light, stroke_width
from digits.recognition.segment import greys

MARGIN_CONTRAST = 0.45
"""An edge column or row whose median is darker than this share of the paper's is margin, not paper."""

SHADE_CONTRAST = 0.92
"""Beyond the margin, columns still darker than this share of the paper are its shaded edge."""

MARGIN_FILL = 0.9
"""A margin is dark along at least this share of its column or row (a digit's stroke never fills one)."""

PROFILE_SIDE = 600
"""Longest side of the reduced copy on which margins are measured."""

EDGE_TOUCH = 5
"""Pixels within which ink beside a margin touches it (the side of the square the margin is widened by)."""

EDGE_MARGIN_SHARE = 0.12
"""A margin at least this share of the image across is beyond a page's edge, whose remains beside it go; a
narrower one may be a stroke along a tight crop's side (a neighbour's digit), which the digit beside it touches."""

MAX_MARGIN_SHARE = 0.7
"""Margins together cover at most this share of a side: more, and the dark is the paper itself
(light ink on dark paper), which ``dark_on_light`` turns round instead."""

PAPER_KERNEL_STROKES = 3
"""The window that finds the paper under the ink is this many strokes wide (and at least ``MIN_PAPER_KERNEL``)."""

MIN_PAPER_KERNEL = 15
"""Smallest side of that window, in pixels."""

RULE_SPAN = 0.85
"""A straight run of ink across this share of the page's width (or height) is a printed rule."""

EDGE_RULE_SPAN = 0.4
"""A straight run this share of the page long that reaches an edge of the image is a rule too."""

EDGE_REACH = 0.04
"""How near an edge, as a share of the side, a run must come to reach it."""

LINE_INK = 0.8
"""Grey level, as a share of the paper's, below which a pixel counts as ink for finding the main line: faint
ink too, since a faint number beside a bold printed foot is what the line is."""

LINE_EDGE_DISCOUNT = 0.6
"""How much less a row at the page's top or bottom edge counts towards the main line than one at its middle."""

LINE_RULE_THICKNESS = 3.0
"""Pixels of ink per pixel of length, at most, of a line across half the page that is left of a rule."""

LINE_THIN_STROKE = 0.5
"""A line (``RULE_ASPECT`` times as long as thick) at most this share of the page's widest strokes thick is
left of a rule or of a page's edge: no pen's stroke. At most, not under: on a page written 2 pixels wide (a
register row scanned at 150 dpi) a rule's hairline is 1 pixel, exactly half."""

LINE_GAP = 0.08
"""Bands of inked rows apart by fewer blank rows than this share of the page's height are one line."""

RULE_OVER_WRITING = 2.0
"""A rule is at least this many times as long as any piece of handwriting on its page is along it."""

MIN_RULE_LENGTH = 40
"""Pixels a rule is long at least: shorter straight strokes, in a small scan, are handwriting."""

RULE_ASPECT = 15
"""A rule is at least this many times as long as it is thick; a pen's stroke is thicker for its length."""

LONE_RULE_BREADTH = 0.5
"""A straight run with no other ink on its page is a rule only if the page is at least this share of its
length across it."""

RULE_INK = 0.8
"""Grey level, as a share of the paper's, below which a pixel of the flattened page may be part of a rule
(rules are often printed faint, and fade along their length on an old page)."""


SKEW_DRIFT = 3.0
"""Pixels a line along the page's longer side drifts sideways at least for the page to be straightened: less,
and the rules are found as they are (each straightening resamples the page twice, blurring thin strokes)."""

SKEW_LINE = 0.5
"""A straight line at least this share of the image's longer side long (and ``MIN_RULE_LENGTH``) is a rule or
an edge, whose slant is the page's: a digit's stroke, even in a tight crop of a number, is shorter."""


def clean_page(gray: np.ndarray) -> np.ndarray:
    """The page, dark ink on light paper, without its margins and what is left of its edge, its uneven light,
    its printed rules, and ink off its main line.

    A page turned a little (its edge or rules drifting ``SKEW_DRIFT`` pixels
    or more, up to ``align.MAX_SKEW_DEGREES``) is cleaned straightened, then turned back: margins
    and rules are found only where they run along the rows and columns. Its size
    is kept, so that a rule along its side stays along the side; the corners
    turned out of it come back as paper.
    """
    angle = skew(gray)
    if not angle:
        return _clean_straight(gray, _margins(gray))
    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)
    # The corners turned in: a margin's dark goes on into them, so that its columns are still dark end to
    # end; for the rest of the cleaning they are paper, where a rule along a side would make a thick block.
    margins = _margins(
        cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    )
    (paper,) = greys(gray, (50,))
    straight = cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_CUBIC, borderValue=float(paper))
    cleaned = _clean_straight(straight, margins)
    # Cubic, not linear: a stroke a pixel or two wide, resampled twice, keeps its darkness.
    return cv2.warpAffine(
        cleaned, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderValue=255
    )


def skew(gray: np.ndarray) -> float:
    """How many degrees ``gray``'s longest straight lines (its edge, its rules) are turned anticlockwise from
    upright or level; 0 where it has none, or they are straight enough already.

    The lines are the borders of what is darker than the paper (a rule's two
    sides, a margin's inner side) on a copy at most ``PROFILE_SIDE`` across.
    Their slant is the angle that gathers those borders into the fewest, fullest
    columns, or rows (``align.sharpest_rows``), whichever then holds the longer
    line; it counts if that line is ``SKEW_LINE`` of the longer side long.
    Handwriting's strokes are rarely as long and straight.
    """
    small, scale = _reduced(gray)
    small = dark_on_light(small)
    dark = (small < RULE_INK * np.percentile(small, 90)).astype(np.uint8)
    ys, xs = np.nonzero(dark - cv2.erode(dark, np.ones((3, 3), np.uint8)))
    if not len(xs):
        return 0.0
    # Columns are the rows of the page turned a quarter, which keeps the angle's sign.
    (angle, rows), (upright, columns) = sharpest_rows(ys, xs), sharpest_rows(xs, -ys)
    longest = rows.max()
    if columns.max() > longest:
        angle, longest = upright, columns.max()
    shortest = max(MIN_RULE_LENGTH * scale, SKEW_LINE * max(small.shape))
    drift = abs(np.tan(np.radians(angle))) * max(gray.shape)
    return angle if longest >= shortest and abs(angle) >= MIN_SKEW_DEGREES and drift >= SKEW_DRIFT else 0.0


def _clean_straight(gray: np.ndarray, margins: tuple[list[Band], float] | None) -> np.ndarray:
    """``clean_page`` of a page whose rules and edges run along its rows and columns, and whose margins
    (as ``_margins`` finds them) are known."""
    gray = dark_on_light(_painted(gray, margins))
    stroke = stroke_width(gray)  # measured once: on a full page it costs a third of the cleaning
    gray = without_rules(flattened(gray, stroke))
    if margins is not None:
        edgeless = _off_the_edge(gray, margins[0])
        if edgeless is not gray:
            # The edge's remains, as long as a rule beside it, made that rule look like one of two strokes alike.
            gray = without_rules(edgeless)
    return main_line(gray, stroke)


def clean_box(gray: np.ndarray) -> np.ndarray:
    """The inside of a comb box, cut without its printed frame, as dark ink on light paper with its uneven light
    flattened: nothing else is taken out.

    A box holds one digit, and the block digits forms ask for are made of straight
    strokes as wide as the box, which ``clean_page`` would take for rules, and of
    strokes a faint corner leaves apart, which it would take for ink off the line.
    Margins are not looked for either: a stroke along the box's side is the digit's.
    """
    return flattened(dark_on_light(gray))


def without_margins(gray: np.ndarray) -> np.ndarray:
    """``gray`` with dark bands along its edges (and their shaded strips) painted the paper's grey."""
    return _painted(gray, _margins(gray))


Band = tuple[int, int, int]
"""A margin along one side of an image: the array axis it runs across (1 for a band of columns, 0 for one of
rows), and its first and end index along that axis."""


def _painted(gray: np.ndarray, margins: tuple[list[Band], float] | None) -> np.ndarray:
    """``gray`` with ``margins`` (as ``_margins`` finds them) painted the paper's grey."""
    if margins is None:
        return gray
    bands, paper = margins
    out = gray.copy()
    out[_mask(gray.shape, bands)] = round(paper)
    return out


def _mask(shape: tuple[int, ...], bands: list[Band]) -> np.ndarray:
    """Where ``bands`` lie on an image of ``shape``."""
    mask = np.zeros(shape[:2], bool)
    for axis, start, stop in bands:
        index = [slice(None), slice(None)]
        index[axis] = slice(start, stop)
        mask[tuple(index)] = True
    return mask


def _reduced(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy of ``gray`` at most ``PROFILE_SIDE`` across (itself if smaller), and the scale it was taken at."""
    scale = min(1.0, PROFILE_SIDE / max(gray.shape))
    return rescaled(gray, scale), scale


def _margins(gray: np.ndarray) -> tuple[list[Band], float] | None:
    """The margins along ``gray``'s sides (see ``without_margins``), and the paper's grey; None where it has none."""
    small, scale = _reduced(gray)
    paper = float(np.percentile(small, 90))
    edges = (small[:, 0], small[:, -1], small[0], small[-1])
    if paper < 1 or all(np.percentile(edge, 100 * MARGIN_FILL) < MARGIN_CONTRAST * paper for edge in edges):
        return None  # dark all round: light ink on dark paper (or a dark page), no margin
    bands = []
    for axis in (0, 1):
        # A margin is dark along nearly all of its column (axis 0) or row (axis 1); ink never is.
        profile = np.percentile(small, 100 * MARGIN_FILL, axis=axis)
        first, last = _dark_run(profile, paper), _dark_run(profile[::-1], paper)
        if first + last == 0 or first + last > MAX_MARGIN_SHARE * len(profile):
            continue
        length = gray.shape[1 - axis]
        for start, stop in ((0, round(first / scale)), (length - round(last / scale), length)):
            if stop > start:
                bands.append((1 - axis, start, stop))
    return (bands, paper) if bands else None


def _off_the_edge(gray: np.ndarray, bands: list[Band]) -> np.ndarray:
    """A flattened page without the ink that touches those of its margins (``bands``) that are wide
    (``EDGE_MARGIN_SHARE``): what is left of the page's edge.

    A bound or torn page's edge is ragged and its shade uneven, so pieces of it
    stay beyond the margin's straight border, often taller than the digits; the
    row's rules are gone by now, so no stroke of writing is joined to the edge by one.
    """
    wide = [(axis, start, stop) for axis, start, stop in bands if stop - start >= EDGE_MARGIN_SHARE * gray.shape[axis]]
    if not wide:
        return gray
    ink = (gray < LINE_INK * 255).astype(np.uint8)
    _, labels = cv2.connectedComponents(ink, connectivity=8)
    near = cv2.dilate(_mask(gray.shape, wide).astype(np.uint8), np.ones((EDGE_TOUCH, EDGE_TOUCH), np.uint8)) > 0
    touching = np.unique(labels[near & (ink > 0)])
    if not len(touching):
        return gray
    out = gray.copy()
    out[np.isin(labels, touching)] = 255
    return out


def _dark_run(profile: np.ndarray, paper: float) -> int:
    """How many entries from the start of ``profile`` are margin: dark, then its shaded edge (0 if none dark)."""
    dark = profile < MARGIN_CONTRAST * paper
    if not dark[0]:
        return 0
    run = int(np.argmin(dark)) if not dark.all() else len(profile)
    while run < len(profile) and profile[run] < SHADE_CONTRAST * paper:
        run += 1
    return run


def flattened(gray: np.ndarray, stroke: int | None = None) -> np.ndarray:
    """Dark ink on light paper divided by the paper around each pixel: paper 255 everywhere, ink by its contrast.

    ``stroke`` is the page's ``stroke_width``, measured here if not given.
    """
    stroke = stroke_width(gray) if stroke is None else stroke
    side = max(MIN_PAPER_KERNEL, PAPER_KERNEL_STROKES * stroke) | 1
    # The paper is the brightest thing around each pixel: a grey-level closing wider than any stroke keeps it.
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    return cv2.divide(gray, np.maximum(paper, 1), scale=255)


def without_rules(gray: np.ndarray) -> np.ndarray:
    """A flattened page with its printed rules erased, the strokes that cross them kept.

    A rule is a straight run of ink across nearly the whole page, or across a
    good part of it from an edge of the image (a crop cut along a page's rules
    keeps pieces of them at its sides). A slant of a pixel or two is allowed:
    photos and scans are never quite square.
    """
    ink = (gray < RULE_INK * 255).astype(np.uint8)
    h, w = ink.shape
    rules = np.zeros(ink.shape, bool)
    for across, length in ((True, w), (False, h)):
        # Thickened sideways first, so that a slightly slanted rule still forms one straight run.
        thick = cv2.dilate(ink, np.ones((3, 1) if across else (1, 3), np.uint8))
        counts = thick.sum(axis=1 if across else 0)
        for share, from_edge in ((RULE_SPAN, False), (EDGE_RULE_SPAN, True)):
            run = max(3, int(share * length))
            found = _straight_runs(thick, counts >= run // 2, run, across)
            if found is None:
                continue
            if from_edge:
                found = _touching_edge(found, across)
            found = _longer_than_the_writing(found, ink, across)
            if found.any():
                found = _with_its_pieces(found, ink, across)
                line = (cv2.dilate(found, np.ones((3, 1) if across else (1, 3), np.uint8)) > 0) & (gray < 255 * 0.9)
                rules |= line & ~_crossing(ink > 0, line, across)
    if not rules.any():
        return gray
    out = gray.copy()
    out[rules] = 255
    return out


def _straight_runs(thick: np.ndarray, candidates: np.ndarray, run: int, across: bool) -> np.ndarray | None:
    """Ink of ``thick`` in straight runs of at least ``run`` pixels along rows (``across``) or columns; None if
    none can be there.

    Only the rows (columns) holding half a run of inked pixels at all are
    opened (OpenCV's opening takes what lies beyond the image for ink, so a
    half run from an edge stays too): on a blank or lightly written page that
    is none, and the long opening of the whole page, the costliest step of
    cleaning it, is skipped.
    """
    if not candidates.any():
        return None
    kernel = np.ones((1, run), np.uint8)
    lines = thick[candidates] if across else thick[:, candidates].T
    found = np.zeros_like(thick)
    opened = cv2.morphologyEx(np.ascontiguousarray(lines), cv2.MORPH_OPEN, kernel)
    if across:
        found[candidates] = opened
    else:
        found[:, candidates] = opened.T
    return found if found.any() else None


def main_line(gray: np.ndarray, stroke: int = 0) -> np.ndarray:
    """A flattened page with only the ink of its main line: of the bands of rows that blank rows keep apart,
    the one holding the most handwriting.

    A band weighs what its weightiest piece does: the piece's height times the
    cube of its height against the tallest's, not its ink nor how many pieces
    stand beside it. A line of small bold print (a register's printed foot), a
    long dash, or a year written above a row's number outweighs no digit,
    however faint. Pieces count less towards the page's top and bottom edges,
    where a crop's neighbours and printed feet lie. A thin line across half the
    page (a rule the cleaning left) counts nothing and joins no bands; an upright
    one stays, for a "1" filling a tight crop is as long and thin. Nor does a
    line, however short, at most half as thick as the page's widest strokes (``stroke``,
    its ``stroke_width``; 0 leaves this out): a hairline of a page's edge or of a
    rule, taller than the digits, would be the main line and paint them. Other pieces
    whose middle lies outside the main band are painted paper; a digit's own
    pieces (a 5's bar, a broken stroke) never stand apart from it by blank rows,
    so they stay. Where the page holds one band, only hairlines off it are painted.
    """
    ink = (gray < LINE_INK * 255).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if count <= 2:
        return gray
    _, y, w, h, area = (stats[:, i] for i in range(5))
    # A rule the cleaning left (faint, broken, or slanted) would join every band it crosses into one.
    length = np.maximum(w, h)
    ruled = (area <= LINE_RULE_THICKNESS * length) & ((h >= ink.shape[0] / 2) | (w >= ink.shape[1] / 2))
    thickness = area / length
    hairline = thickness <= LINE_THIN_STROKE * stroke
    ruled |= (length >= RULE_ASPECT * thickness) & hairline
    ruled[0] = True
    bands = _bands((~ruled)[labels].any(axis=1), max(2, round(LINE_GAP * ink.shape[0])))
    if not bands:
        return gray
    heights = np.where(ruled, 0, h).astype(np.float32)
    middles = y + h / 2
    centred = 1 - LINE_EDGE_DISCOUNT * np.abs(2 * middles / ink.shape[0] - 1)
    weight = heights * (heights / heights.max()) ** 2 * centred
    top, bottom = max(bands, key=lambda band: weight[(middles >= band[0]) & (middles < band[1])].max(initial=0))
    # An upright line is not painted: a "1" filling a tight crop is as long and thin as what is left of a rule.
    away = ((middles < top) | (middles >= bottom)) & ~(ruled & (h > w))
    if len(bands) == 1:
        # No other line of writing to leave out, but a rule's hairline beside the number is no writing
        # either. A thicker line across the page (a pen's underline) is left to cutting, which knows underlines.
        away &= ruled & hairline
    away[0] = False
    if not away.any():
        return gray
    out = gray.copy()
    out[cv2.dilate(away[labels].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 255
    return out


def _bands(inked: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """The (first, end) rows of each run of inked rows, runs closer than ``gap`` blank rows joined."""
    rows = np.flatnonzero(inked)
    if not len(rows):
        return []
    breaks = np.flatnonzero(np.diff(rows) > gap)
    starts = [rows[0], *rows[breaks + 1]]
    ends = [*(rows[breaks] + 1), rows[-1] + 1]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _longer_than_the_writing(found: np.ndarray, ink: np.ndarray, across: bool) -> np.ndarray:
    """The runs of ``found`` that are rules rather than handwriting.

    A rule is long and thin (``MIN_RULE_LENGTH``, ``RULE_ASPECT``), and at
    least ``RULE_OVER_WRITING`` times as long as any other piece
    of ink on the page is wide (``across``) or tall: of two strokes alike (a
    "11") neither is a rule. Alone on its page, a run is a rule only if the
    page is wide enough across it to be more than a tight scan of one stroke
    (a "1" or a dash).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    axis = cv2.CC_STAT_WIDTH if across else cv2.CC_STAT_HEIGHT
    breadth = found.shape[0] if across else found.shape[1]
    keep = np.zeros(count, bool)
    for label in range(1, count):
        # Wide enough sideways to take in the run's own stroke, where a slant leaves slivers beside it.
        near = cv2.dilate((labels == label).astype(np.uint8), np.ones((11, 5) if across else (5, 11), np.uint8)) > 0
        # And the whole line the run lies on: a rule faded or broken in places leaves other pieces along it,
        # which are the rule too, not writing to measure it against.
        x, y, w, h = (int(v) for v in stats[label, :4])
        if across:
            near[max(0, y - 2) : y + h + 2] = True
        else:
            near[:, max(0, x - 2) : x + w + 2] = True
        others = cv2.connectedComponentsWithStats(((ink > 0) & ~near).astype(np.uint8), connectivity=8)[2][1:]
        longest = int(others[:, axis].max()) if len(others) else 0
        run = stats[label, axis]
        thickness = max(1.0, stats[label, cv2.CC_STAT_AREA] / run)
        printed = run >= MIN_RULE_LENGTH and run >= RULE_ASPECT * thickness
        alone = breadth >= LONE_RULE_BREADTH * run
        keep[label] = printed and (run >= RULE_OVER_WRITING * longest if longest else alone)
    return keep[labels].astype(np.uint8)


def _with_its_pieces(found: np.ndarray, ink: np.ndarray, across: bool) -> np.ndarray:
    """The rules ``found`` (runs along rows if ``across``, else columns) with the pieces of ``ink`` that lie
    wholly in line with one of them.

    A rule faded in places, or a page's edge line in a coarse scan, breaks into
    pieces too short to be runs themselves. Left, they are straight strokes as
    tall as a digit, and the line they lie on outweighs a small number. A
    stroke that crosses the rule reaches beyond its line, so it stays.
    """
    if across:
        return _with_its_pieces(found.T, ink.T, False).T
    count, _, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    pieces, labels, boxes, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    left, right = boxes[:, cv2.CC_STAT_LEFT], boxes[:, cv2.CC_STAT_LEFT] + boxes[:, cv2.CC_STAT_WIDTH]
    inline = np.zeros(pieces, bool)
    for x, w in stats[1:count, [cv2.CC_STAT_LEFT, cv2.CC_STAT_WIDTH]]:
        inline |= (left >= x - 1) & (right <= x + w + 1)
    inline[0] = False
    return (found.astype(bool) | inline[labels]).astype(np.uint8)


def _touching_edge(found: np.ndarray, across: bool) -> np.ndarray:
    """The runs of ``found`` (along rows if ``across``, else columns) that reach an end of the image, or lie
    along its side: a rule cut off by the crop, or the page's edge or a rule the crop was cut beside."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    keep = np.zeros(count, bool)
    h, w = found.shape
    for label in range(1, count):
        x, y, bw, bh = (int(v) for v in stats[label, :4])
        along, beside = ((x, bw, w), (y, bh, h)) if across else ((y, bh, h), (x, bw, w))
        keep[label] = _at_an_end(*along) or _at_an_end(*beside)
    return keep[labels].astype(np.uint8)


def _at_an_end(start: int, length: int, side: int) -> bool:
    """Whether a span from ``start``, ``length`` long, comes within ``EDGE_REACH`` of either end of ``side``."""
    reach = max(2, round(EDGE_REACH * side))
    return start < reach or start + length > side - reach


def _crossing(ink: np.ndarray, line: np.ndarray, across: bool) -> np.ndarray:
    """The pixels of ``line`` that a stroke crosses: ink just beyond the line on both sides of it."""
    if not across:
        return _crossing(ink.T, line.T, True).T
    thickness = max(1, int(np.percentile(line.sum(axis=0)[line.any(axis=0)], 90)))
    # A slanted stroke leaves the line a little to one side of where it entered.
    off = cv2.dilate((ink & ~line).astype(np.uint8), np.ones((1, 5), np.uint8)) > 0
    above = np.zeros_like(ink)
    below = np.zeros_like(ink)
    for step in range(1, thickness + 3):
        above[step:] |= off[:-step]  # ink ``step`` rows above
        below[:-step] |= off[step:]  # ink ``step`` rows below
    return line & above & below
