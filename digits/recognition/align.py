"""Bring a scanned form upright and to its paper's edges, so that a layout drawn once fits every scan.

Scanners deliver pages rotated a few degrees, shifted on the glass, with the
scanner's lid or bed showing around them, at any resolution. Layout regions are
fractions of the paper, so resolution takes care of itself once the image is the
paper and nothing else. Two steps get it there:

1. ``find_paper``: where a darker bed shows around the paper, the paper's outline
   gives both its place and its rotation; it is cut out and straightened.
2. ``deskew``: where the paper fills the image (an automatic feeder, a cropped
   scan), its printed lines and handwriting give the rotation instead.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 1000
"""Longest side, in pixels, of the reduced copy the paper and the skew are measured on."""

MIN_PAPER_SHARE = 0.25
"""A bright region smaller than this share of the image is not the paper (it is, say, a label)."""

MAX_PAPER_SHARE = 0.95
"""A paper outline larger than this share of the image fills it: there is no bed to cut away."""

BED_CONTRAST = 40
"""How much darker (grey levels) the bed must be than the paper for its edge to be trusted."""

MAX_SKEW_DEGREES = 6.0
"""Largest rotation ``deskew`` looks for; a form fed at a steeper angle needs a rescan."""

MIN_SKEW_DEGREES = 0.2
"""Smaller rotations are left alone: straightening them would only blur the strokes."""


def align_page(gray: np.ndarray) -> np.ndarray:
    """The paper of a scanned page, upright: cut from the scanner bed where one shows, then deskewed."""
    return deskew(find_paper(gray))


def find_paper(gray: np.ndarray) -> np.ndarray:
    """The paper cut out of a scan that shows the scanner bed around it, straightened; else the scan as it is."""
    scale = min(1.0, WORK_SIDE / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    _, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return gray
    outline = max(contours, key=cv2.contourArea)
    rect = cv2.minAreaRect(outline)
    (_, _), (w, h), _ = rect
    share = w * h / small.size
    if not MIN_PAPER_SHARE <= share <= MAX_PAPER_SHARE:
        return gray
    inside = np.zeros_like(small)
    cv2.drawContours(inside, [outline], -1, 255, cv2.FILLED)
    paper, bed = np.median(small[inside > 0]), np.median(small[inside == 0])
    if paper - bed < BED_CONTRAST:
        return gray  # a light bed: its edge against the paper is not reliable
    corners = _clockwise_from_top_left(cv2.boxPoints(rect) / scale)
    width = round(np.linalg.norm(corners[1] - corners[0]))
    height = round(np.linalg.norm(corners[3] - corners[0]))
    target = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    return cv2.warpPerspective(gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def skew_degrees(gray: np.ndarray) -> float:
    """The page's rotation in degrees (counter-clockwise positive), from its dark marks.

    Rows of print and boxes are sharpest in a projection onto the vertical axis
    when the page is straight (``sharpest_rows``).
    """
    scale = min(1.0, WORK_SIDE / max(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    ys, xs = np.nonzero(ink)
    if len(xs) < 50:
        return 0.0
    return sharpest_rows(ys - small.shape[0] / 2, xs - small.shape[1] / 2)[0]


def sharpest_rows(ys: np.ndarray, xs: np.ndarray) -> tuple[float, np.ndarray]:
    """The rotation (degrees, counter-clockwise positive, within ``MAX_SKEW_DEGREES``) that gathers the points
    (``ys``, ``xs``) into the fewest, fullest rows, and how many points each row then holds.

    The angle maximises the projection's energy: a coarse search in quarter
    degrees, then twentieths.
    """

    def rows(degrees: float) -> np.ndarray:
        radians = np.deg2rad(degrees)
        places = np.round(ys * np.cos(radians) + xs * np.sin(radians)).astype(np.int64)
        return np.bincount(places - places.min())

    def energy(degrees: float) -> float:
        counts = rows(degrees)
        return float(np.dot(counts, counts))

    coarse = max(np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 0.01, 0.25), key=energy)
    best = float(max(np.arange(coarse - 0.25, coarse + 0.26, 0.05), key=energy))
    return best, rows(best)


def deskew(gray: np.ndarray) -> np.ndarray:
    """The page rotated upright by ``skew_degrees``; corners the rotation uncovers are paper-coloured."""
    degrees = skew_degrees(gray)
    if abs(degrees) < MIN_SKEW_DEGREES:
        return gray
    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees, 1.0)
    paper = int(np.percentile(gray, 90))
    return cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=paper)


def _clockwise_from_top_left(points: np.ndarray) -> np.ndarray:
    """The four corners of a rectangle turned less than 45 degrees, from top left clockwise."""
    sums, differences = points.sum(axis=1), points[:, 1] - points[:, 0]
    return np.array(
        [points[sums.argmin()], points[differences.argmin()], points[sums.argmax()], points[differences.argmax()]]
    )
