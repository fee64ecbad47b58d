"""Ink that is not a digit, for the classifier to learn as its own class (``NOT_A_DIGIT``).

Real pages carry marks beside the digits: crosses in unused boxes, dashes and
underlines, ticks, specks, pieces of printed frames, ditto marks, letters. Cut
out like digits, each would be read as the digit it looks least unlike, and
often surely. Two sources teach the classifier otherwise:

- ``drawn_marks``: such marks drawn at random, as a pen or a printer makes them;
- ``register_marks``: the ink of register rows that hold no digit at all (a dash,
  a ditto mark, letters), cut from the real crops as the pipeline cuts them.

Shapes a digit can take are never taught here: no lone upright stroke or
bracket (a "1"), no ring (a "0"), and no frame of a box, which is a square "0"
in the block digits forms ask for. The real rows hold all of these (a rule's
remains, a frame, a page number beside the row), so of their pieces only those
as wide as a digit's body and enclosing no hole are kept (``unlike_a_digit``).
"""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.segment import CANVAS

LETTERS = "acefhkmnprtuvwxy"
"""Letters drawn as marks: those that look like no digit (no o, l, i, z, s, g, q, b)."""

FONTS = (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX, cv2.FONT_HERSHEY_SIMPLEX)
"""OpenCV's stroke fonts letters are drawn in: two handwriting-like ones and a plain one."""


def drawn_marks(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` marks drawn at random, as ink-high uint8 images of (CANVAS, CANVAS), like raw training digits."""
    kinds = (_cross, _dash, _specks, _tick, _letter, _ditto, _scribble, _crossed_box)
    return np.stack([kinds[int(rng.integers(len(kinds)))](rng) for _ in range(count)])


def register_marks(images: list[np.ndarray]) -> np.ndarray:
    """The ink of register crops that hold no digit (as the pipeline cuts it), as raw (CANVAS, CANVAS) images."""
    from digits.recognition.clean import clean_page
    from digits.recognition.segment import find_pieces

    marks = []
    for gray in images:
        pieces = find_pieces(clean_page(gray))
        if pieces is not None:
            cut = (np.round(digit.image * 255).astype(np.uint8) for digit in pieces.digits())
            marks += [image for image in cut if unlike_a_digit(image)]
    return np.stack(marks) if marks else np.zeros((0, CANVAS, CANVAS), np.uint8)


MARK_WIDTH = 14
"""Pixels of the (CANVAS, CANVAS) image a real mark's ink spans across, at least: narrower, it may be a "1",
a bracket or a rule's remains, which a "1" can look like."""

HOLE_AREA = 20
"""Pixels of the smallest hole that makes ink ring-like (a "0", a frame, a loop of an 8)."""


def unlike_a_digit(image: np.ndarray) -> bool:
    """Whether a cut piece (ink high, (CANVAS, CANVAS)) can be taught as no digit: wide, and enclosing no hole."""
    ink = (image > 80).astype(np.uint8)
    columns = np.flatnonzero(ink.any(axis=0))
    return len(columns) > 0 and columns[-1] - columns[0] + 1 >= MARK_WIDTH and holes(image) == 0


def holes(image: np.ndarray) -> int:
    """How many holes of at least ``HOLE_AREA`` pixels the ink of a digit image (ink high) encloses."""
    contours, hierarchy = cv2.findContours((image > 80).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return 0
    return sum(h[3] >= 0 and cv2.contourArea(c) >= HOLE_AREA for c, h in zip(contours, hierarchy[0], strict=True))


def _canvas() -> np.ndarray:
    return np.zeros((CANVAS * 3, CANVAS * 3), np.uint8)


def _pen(rng: np.random.Generator) -> int:
    return int(rng.integers(2, 7))


def _point(rng: np.random.Generator, low: float = 0.15, high: float = 0.85) -> tuple[int, int]:
    side = CANVAS * 3
    return int(rng.uniform(low, high) * side), int(rng.uniform(low, high) * side)


def _finish(canvas: np.ndarray) -> np.ndarray:
    """A drawn mark brought down to a raw digit's size, ink high."""
    return cv2.resize(canvas, (CANVAS, CANVAS), interpolation=cv2.INTER_AREA)


def _cross(rng: np.random.Generator) -> np.ndarray:
    """An X, as unused boxes are crossed out: two strokes crossing near their middles."""
    canvas, pen = _canvas(), _pen(rng)
    side = CANVAS * 3
    a, b = rng.uniform(0.05, 0.3, 2), rng.uniform(0.7, 0.95, 2)
    jitter = rng.uniform(-0.08, 0.08, 4)
    cv2.line(canvas, (int((a[0] + jitter[0]) * side), int(a[1] * side)), (int(b[0] * side), int(b[1] * side)), 255, pen)
    cv2.line(canvas, (int(b[0] * side), int((a[1] + jitter[1]) * side)), (int(a[0] * side), int(b[1] * side)), 255, pen)
    return _finish(canvas)


def _crossed_box(rng: np.random.Generator) -> np.ndarray:
    """An X with what is left of a printed box's frame around it (a side or two)."""
    canvas = _cross(rng).astype(np.float32)
    width = int(rng.integers(1, 3))
    for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
        if side == 0:
            canvas[:width] = 255
        elif side == 1:
            canvas[-width:] = 255
        elif side == 2:
            canvas[:, :width] = 255
        else:
            canvas[:, -width:] = 255
    return canvas.astype(np.uint8)


def _dash(rng: np.random.Generator) -> np.ndarray:
    """A dash, an underline or an equals sign: near-horizontal strokes, wider than high."""
    canvas, pen = _canvas(), _pen(rng)
    side = CANVAS * 3
    y = int(rng.uniform(0.3, 0.7) * side)
    for k in range(int(rng.integers(1, 3))):
        x0, x1 = int(rng.uniform(0.05, 0.35) * side), int(rng.uniform(0.65, 0.95) * side)
        dy = int(rng.uniform(-0.08, 0.08) * side)
        cv2.line(canvas, (x0, y + k * side // 5), (x1, y + dy + k * side // 5), 255, pen)
    return _finish(canvas)


def _specks(rng: np.random.Generator) -> np.ndarray:
    """Dust, a full stop, a blot: a few small round spots."""
    canvas = _canvas()
    for _ in range(int(rng.integers(1, 5))):
        cv2.circle(canvas, _point(rng), int(rng.integers(2, 9)), 255, -1)
    return _finish(canvas)


def _tick(rng: np.random.Generator) -> np.ndarray:
    """A tick: a short stroke down, then a long one up."""
    canvas, pen = _canvas(), _pen(rng)
    side = CANVAS * 3
    start = (int(rng.uniform(0.1, 0.3) * side), int(rng.uniform(0.45, 0.65) * side))
    bottom = (int(rng.uniform(0.35, 0.5) * side), int(rng.uniform(0.75, 0.9) * side))
    end = (int(rng.uniform(0.75, 0.95) * side), int(rng.uniform(0.1, 0.3) * side))
    cv2.polylines(canvas, [np.array([start, bottom, end])], False, 255, pen)
    return _finish(canvas)


def _letter(rng: np.random.Generator) -> np.ndarray:
    """A letter that looks like no digit, in one of OpenCV's stroke fonts."""
    canvas = _canvas()
    text = "".join(rng.choice(list(LETTERS), size=int(rng.integers(1, 3))))
    font = FONTS[int(rng.integers(len(FONTS)))]
    scale = rng.uniform(1.2, 2.2)
    (w, h), _ = cv2.getTextSize(text, font, scale, 2)
    side = CANVAS * 3
    origin = (max(0, (side - w) // 2), min(side - 1, (side + h) // 2))
    cv2.putText(canvas, text, origin, font, scale, 255, int(rng.integers(2, 5)), cv2.LINE_AA)
    return _finish(canvas)


def _ditto(rng: np.random.Generator) -> np.ndarray:
    """A ditto mark: two short slanted strokes side by side."""
    canvas, pen = _canvas(), _pen(rng)
    side = CANVAS * 3
    x, y = int(rng.uniform(0.2, 0.4) * side), int(rng.uniform(0.3, 0.5) * side)
    length, gap, slant = int(rng.uniform(0.15, 0.3) * side), int(rng.uniform(0.12, 0.25) * side), rng.uniform(0.2, 0.8)
    for k in range(2):
        top = (x + k * gap + int(slant * length), y)
        cv2.line(canvas, top, (x + k * gap, y + length), 255, pen)
    return _finish(canvas)


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """A strike-through or a scribble: a zigzag of at least five strokes, up and down across."""
    canvas, pen = _canvas(), _pen(rng)
    side = CANVAS * 3
    turns = int(rng.integers(6, 10))
    xs = np.linspace(0.05, 0.95, turns) * side
    ys = np.where(np.arange(turns) % 2, rng.uniform(0.6, 0.9, turns), rng.uniform(0.1, 0.4, turns)) * side
    cv2.polylines(canvas, [np.stack([xs, ys], axis=1).astype(np.int32)], False, 255, pen)
    return _finish(canvas)
