"""Digits in a hand the data sets lack: the squared block digits that forms print as a template to copy.

Many forms show how to write each digit in their boxes: straight strokes on a
small grid, a square 0, a 1 with a foot, a 7 with a hook. People copy them, and
a classifier that learnt only flowing handwriting reads a square 6 as a 5 and a
footed 1 as a 7. ``block_digits`` draws such digits with a writer's jitter, as
raw images like the other training digits; the usual distortions then apply.
"""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.segment import CANVAS

Stroke = list[tuple[float, float]]
"""A pen stroke through points of a grid two wide and three high (x in 0..1, y in 0..2, y down)."""

SHAPES: dict[int, list[list[Stroke]]] = {
    0: [[[(0, 0), (1, 0), (1, 2), (0, 2), (0, 0)]]],
    1: [
        [[(0.5, 0), (0.5, 2)]],
        [[(0.2, 0.35), (0.5, 0), (0.5, 2)], [(0.2, 2), (0.8, 2)]],
        [[(0.25, 0), (0.75, 0)], [(0.5, 0), (0.5, 2)], [(0.25, 2), (0.75, 2)]],
    ],
    2: [[[(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2)]]],
    3: [[[(0, 0), (1, 0), (1, 2), (0, 2)], [(0.2, 1), (1, 1)]]],
    4: [[[(0, 0), (0, 1), (1, 1)], [(0.8, 0), (0.8, 2)]]],
    5: [[[(1, 0), (0, 0), (0, 1), (1, 1), (1, 2), (0, 2)]]],
    6: [[[(1, 0), (0, 0), (0, 2), (1, 2), (1, 1), (0, 1)]], [[(0, 0), (0, 2), (1, 2), (1, 1), (0, 1)]]],
    7: [[[(0, 0), (1, 0), (1, 2)]], [[(0, 0.35), (0, 0), (1, 0), (1, 2)]], [[(0, 0), (1, 0), (0.4, 2)]]],
    8: [[[(0, 0), (1, 0), (1, 2), (0, 2), (0, 0)], [(0, 1), (1, 1)]]],
    9: [[[(1, 1), (0, 1), (0, 0), (1, 0), (1, 2), (0, 2)]], [[(1, 1), (0, 1), (0, 0), (1, 0), (1, 2)]]],
}
"""Each digit's block shapes: the strokes of each way of writing it."""


def block_digits(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` block digits as raw ink-high uint8 images of (CANVAS, CANVAS), and their labels."""
    labels = rng.integers(0, 10, count)
    return np.stack([_draw(int(label), rng) for label in labels]), labels.astype(np.uint8)


def _draw(digit: int, rng: np.random.Generator) -> np.ndarray:
    side = CANVAS * 4
    canvas = np.zeros((side, side), np.uint8)
    shapes = SHAPES[digit]
    strokes = shapes[int(rng.integers(len(shapes)))]
    width, height = rng.uniform(0.35, 0.6) * side, rng.uniform(0.6, 0.8) * side
    left, top = (side - width) / 2, (side - height) / 2
    pen = int(rng.integers(4, 11))
    for stroke in strokes:
        # A writer's hand: each corner a little off the grid.
        points = [
            (left + (x + rng.normal(0, 0.05)) * width, top + (y + rng.normal(0, 0.05)) * height / 2) for x, y in stroke
        ]
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 255, pen, cv2.LINE_AA)
    return cv2.resize(canvas, (CANVAS, CANVAS), interpolation=cv2.INTER_AREA)
