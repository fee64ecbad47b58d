"""Prepare a line of handwriting (a cheque's amount, a field) for the string model.

The string model reads a whole line at once, so touching digits, separators
and a security-pattern background need no cutting rules: it only needs the
line brought into a fixed form, ink high, paper flattened to black.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from worker.segment import Box

LINE_HEIGHT = 32
"""Height of the image the string model sees."""

LINE_WIDTH = 160
"""Width of the image the string model sees; wider lines are squeezed to fit."""

FRAME_PIXELS = 4
"""Columns of the input behind each time step (the string model halves the width twice)."""

FRAMES = LINE_WIDTH // FRAME_PIXELS
"""Time steps the string model outputs."""

BACKGROUND_KERNEL = 15
"""Side of the window that estimates the paper under the ink (wider than a stroke)."""


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Ink high (float32 in [0, 1]) with paper, its shading and faint patterns near 0."""
    gray = gray.astype(np.float32)
    if np.median(gray) < 128:
        gray = 255 - gray  # light ink on dark paper
    # The paper is the brightest thing around each pixel: a grey-level closing
    # with a window wider than any stroke removes the ink and keeps the paper.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (BACKGROUND_KERNEL, BACKGROUND_KERNEL))
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, kernel)
    ink = np.clip(paper - gray, 0, None)
    low, high = np.percentile(ink, 50), np.percentile(ink, 99.5)
    if high - low < 1:
        return np.zeros_like(ink)
    return np.clip((ink - low) / (high - low), 0, 1)


@dataclass(frozen=True)
class Placement:
    """Where the model's input came from on the page, to map frames back to page pixels."""

    x: int
    y: int
    w: int
    h: int
    width: int

    def box(self, first_frame: int, end_frame: int) -> Box:
        """The page rectangle under frames ``[first_frame, end_frame)``."""
        scale = self.w / self.width * FRAME_PIXELS
        left = self.x + round(first_frame * scale)
        right = self.x + min(self.w, round(end_frame * scale))
        return Box(left, self.y, max(1, right - left), self.h)


def prepare_line(gray: np.ndarray) -> tuple[np.ndarray, Placement]:
    """A line image as the string model's (32, 160) float32 input, and where it lies on the page."""
    ink = ink_map(gray)
    ys, xs = np.nonzero(ink > 0.35)
    x0, y0 = 0, 0
    if len(ys):
        pad = 2
        y0, x0 = max(0, ys.min() - pad), max(0, xs.min() - pad)
        ink = ink[y0 : ys.max() + pad + 1, x0 : xs.max() + pad + 1]
    h, w = ink.shape
    width = min(LINE_WIDTH, max(1, round(w * LINE_HEIGHT / h)))
    line = np.zeros((LINE_HEIGHT, LINE_WIDTH), np.float32)
    line[:, :width] = np.clip(cv2.resize(ink, (width, LINE_HEIGHT), interpolation=cv2.INTER_AREA), 0, 1)
    return line, Placement(int(x0), int(y0), w, h, width)
