"""Random changes that make one training digit into many: distorted, rescanned, small bitmaps, coarse scans.

Each returns an ink-high image that is then normalised exactly as a scanned
digit is (``prepare``), so the classifier learns from what the pipeline gives it.
"""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.segment import ink_image, normalise_digit


def prepare(raw: np.ndarray) -> np.ndarray:
    """A raw ink-high digit image, normalised exactly as the pipeline does a scan."""
    ink = ink_image(raw)
    return normalise_digit(ink if ink is not None else np.zeros_like(raw))


def distort(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly slanted, rotated, stretched and thickened copy of a digit image.

    The image is enlarged 4x first so that a stroke can be thickened by a
    fraction of an MNIST pixel.
    """
    side = raw.shape[0] * 4
    big = cv2.resize(raw, (side, side), interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, side // 4, side // 4, side // 4, side // 4, cv2.BORDER_CONSTANT)
    centre = np.array([big.shape[1] / 2, big.shape[0] / 2])
    angle = np.radians(rng.uniform(-12, 12))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1.0, rng.uniform(-0.3, 0.3)], [0.0, 1.0]])
    stretch = np.diag([rng.uniform(0.75, 1.2), 1.0])
    linear = rotation @ shear @ stretch
    matrix = np.hstack([linear, (centre - linear @ centre)[:, None]])
    out = cv2.warpAffine(big, matrix, (big.shape[1], big.shape[0]), flags=cv2.INTER_LINEAR)
    stroke = int(rng.choice([-2, 0, 0, 2, 4]))
    if stroke > 0:
        out = cv2.dilate(out, np.ones((stroke, stroke), np.uint8))
    elif stroke < 0:
        thinner = cv2.erode(out, np.ones((-stroke, -stroke), np.uint8))
        if (thinner > 64).sum() > 0.5 * (out > 64).sum():
            out = thinner
    return out


def rescan(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit image as a scanner at another resolution would give it: resampled, maybe recompressed.

    Scans come at any size; a digit 20 pixels high loses strokes that one 100
    pixels high keeps, and JPEG adds its own ringing.
    """
    side = int(rng.integers(20, 120))
    scale = side / raw.shape[0]
    interpolation = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(3))]
    out = cv2.resize(raw, None, fx=scale, fy=scale, interpolation=interpolation)
    if rng.random() < 0.5:
        _, data = cv2.imencode(".jpg", 255 - out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))])
        out = 255 - cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return out


SMALL_BITMAP_INK = 30
"""Grey level (of 255) above which a pixel counts as ink when a digit is cut out for a small bitmap."""


def semeion_bitmap(raw: np.ndarray, threshold: float = 128, keep_shape: bool = False) -> np.ndarray:
    """A digit as Semeion kept its own: stretched to fill 16x16, binarised at a fixed threshold.

    ``raw`` is ink high; so is the result (0 or 255). ``keep_shape`` centres
    the digit on a square first instead of stretching it.
    """
    small = cv2.resize(_ink_crop(raw, keep_shape), (16, 16), interpolation=cv2.INTER_AREA)
    return np.where(small > threshold, 255, 0).astype(np.uint8)


def optdigits_bitmap(raw: np.ndarray, threshold: float = 128, keep_shape: bool = False) -> np.ndarray:
    """A digit as UCI optdigits keeps it: binarised at 32x32, its ink counted in 4x4 blocks (8x8, 0-16 made 0-255)."""
    bitmap = cv2.resize(_ink_crop(raw, keep_shape), (32, 32), interpolation=cv2.INTER_AREA) > threshold
    counts = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    return (counts * 255 // 16).astype(np.uint8)


def small_bitmap(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random `semeion_bitmap` or `optdigits_bitmap` of ``raw`` (unchanged if it has no ink).

    A "1" stretched to fill its box, or a digit 8 pixels high, looks like
    nothing in MNIST: a model that never saw such bitmaps misreads them, above
    all a stretched "1".
    """
    if not (raw > SMALL_BITMAP_INK).any():
        return raw
    keep_shape = rng.random() >= 0.5
    kind = semeion_bitmap if rng.random() < 0.5 else optdigits_bitmap
    return kind(raw, rng.uniform(90, 160), keep_shape)


COARSE_GRIDS = (12, 16, 20, 24, 32)
"""Sides, in pixels, of the square a coarse scan keeps a digit in: 16x16 and 32x32 bitmaps and the sizes between."""


def coarse_scan(
    raw: np.ndarray, rng: np.random.Generator, grid: int | None = None, threshold: float | None = None
) -> np.ndarray:
    """``raw`` scanned coarsely: shrunk into a small square, thresholded to pure black and white, enlarged again.

    Fax machines, a scanner's line-art mode and archives of 16x16 or 32x32
    bitmaps keep digits this way: the enlargement repeats pixels (stair-stepped
    edges, no grey), which no smooth resampling of a grey digit looks like.
    ``grid`` is the square's side (one of ``COARSE_GRIDS`` at random if None);
    ``threshold`` the grey level above which a pixel is ink (at random between
    80 and 170, a light or a heavy hand on the scanner's dial, if None).
    Unchanged if ``raw`` has no ink.
    """
    if not (raw > SMALL_BITMAP_INK).any():
        return raw
    grid = int(rng.choice(COARSE_GRIDS)) if grid is None else grid
    side = max(4, round(grid * rng.uniform(0.7, 1.0)))
    small = cv2.resize(_ink_crop(raw, keep_shape=True), (side, side), interpolation=cv2.INTER_AREA)
    top, left = (int(v) for v in rng.integers(0, grid - side + 1, size=2))
    bitmap = np.zeros((grid, grid), np.uint8)
    bitmap[top : top + side, left : left + side] = np.where(
        small > (rng.uniform(80, 170) if threshold is None else threshold), 255, 0
    )
    scale = rng.uniform(1.0, 6.0)
    return cv2.resize(bitmap, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def _ink_crop(raw: np.ndarray, keep_shape: bool) -> np.ndarray:
    """The inked part of ``raw``; with ``keep_shape``, centred on a square."""
    ys, xs = np.nonzero(raw > SMALL_BITMAP_INK)
    crop = raw[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    if not keep_shape:
        return crop
    side = max(crop.shape)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    return cv2.copyMakeBorder(
        crop, top, side - crop.shape[0] - top, left, side - crop.shape[1] - left, cv2.BORDER_CONSTANT
    )
