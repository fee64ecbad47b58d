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

PREPROCESSING_VERSION = "1"
"""Bumped whenever the output of this module changes; stored with each model."""

CANVAS = 28
"""Side of the square image the model sees, as in MNIST."""

DIGIT_BOX = 20
"""Side of the box the digit's longer side is scaled to, as in MNIST."""

MIN_CONTRAST = 40
"""Grey-level spread below which a page counts as blank (paper only)."""

SPECK_FRACTION = 0.25
"""A component shorter than this fraction of the tallest one, and thin, is a speck."""

MERGE_OVERLAP = 0.5
"""Components whose column ranges overlap by this much of the narrower belong together."""


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


def ink_image(gray: np.ndarray) -> np.ndarray | None:
    """Return the page as ink-high uint8 with the paper set to 0, or None if blank.

    Polarity is decided by the paper, which covers most of a page: a bright
    median means dark ink on light paper, which is inverted.
    """
    if int(gray.max()) - int(gray.min()) < MIN_CONTRAST:
        return None
    ink = 255 - gray if np.median(gray) > 127 else gray.copy()
    ink = cv2.normalize(ink, None, 0, 255, cv2.NORM_MINMAX)
    threshold, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink[ink <= threshold] = 0
    return ink


def find_digits(gray: np.ndarray) -> list[Digit]:
    """Cut a line of separate digits into MNIST-like images, left to right."""
    ink = ink_image(gray)
    if ink is None:
        return []
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    components = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] > 0]
    if not components:
        return []
    tallest = max(stats[i, cv2.CC_STAT_HEIGHT] for i in components)
    kept = [i for i in components if not _is_speck(stats[i], tallest)]

    digits = []
    for group in _group_by_columns(kept, stats):
        x0 = min(stats[i, cv2.CC_STAT_LEFT] for i in group)
        y0 = min(stats[i, cv2.CC_STAT_TOP] for i in group)
        x1 = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in group)
        y1 = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in group)
        # Keep only this group's own pixels: a neighbour reaching into the
        # bounding box must not leak into the digit.
        own = np.isin(labels[y0:y1, x0:x1], group)
        crop = np.where(own, ink[y0:y1, x0:x1], 0)
        digits.append(Digit(Box(int(x0), int(y0), int(x1 - x0), int(y1 - y0)), normalise_digit(crop)))
    return digits


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


def _is_speck(stat: np.ndarray, tallest: int) -> bool:
    height = stat[cv2.CC_STAT_HEIGHT]
    width = stat[cv2.CC_STAT_WIDTH]
    # Dust and dots are short in both directions; a "1" is short in width only
    # and a detached bar of a "5" is short in height only.
    return height < SPECK_FRACTION * tallest and width < SPECK_FRACTION * tallest


def _group_by_columns(components: list[int], stats: np.ndarray) -> list[list[int]]:
    """Group components that stand over each other (a 5's bar, a broken stroke)."""
    ordered = sorted(components, key=lambda i: stats[i, cv2.CC_STAT_LEFT])
    groups: list[list[int]] = []
    spans: list[tuple[int, int]] = []
    for i in ordered:
        left = int(stats[i, cv2.CC_STAT_LEFT])
        right = left + int(stats[i, cv2.CC_STAT_WIDTH])
        if spans:
            g_left, g_right = spans[-1]
            overlap = min(right, g_right) - max(left, g_left)
            narrower = min(right - left, g_right - g_left)
            if overlap > MERGE_OVERLAP * narrower:
                groups[-1].append(i)
                spans[-1] = (min(left, g_left), max(right, g_right))
                continue
        groups.append([i])
        spans.append((left, right))
    return groups
