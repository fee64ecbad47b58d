"""Pictures a reviewer can check: the page or field, each digit's box, the digit read and its confidence.

A row sent to ``review`` gets one always; every row gets one when asked
(``--annotate``). The PNG goes into an ``annotations/`` folder beside the CSV,
and the row's ``annotation`` column holds its path relative to the CSV's folder,
so results stay valid when the folder is moved or shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digits.contracts import OK, REVIEW, Row
from digits.recognition.imaging import rescaled
from digits.reviews import image_names, kind_of, picture_stem

FOLDER_NAME = "annotations"
"""Folder, beside the CSV, that the pictures go into."""

MIN_HEIGHT = 160
"""Fields smaller than this (pixels) are enlarged, so that a reviewer sees the strokes."""

MAX_WIDTH = 1600
"""Pages wider than this are reduced, to keep pictures small."""

MARGIN = 0.15
"""Share of a field's size shown around it, so that a digit written over the box is seen too."""

TITLE_HEIGHT = 34
"""Height of the band above the picture that says what was read."""

COLOURS = {OK: (40, 160, 40), REVIEW: (0, 140, 255)}
"""Box colour (BGR) by row status; anything else is drawn red."""

PAGE_WIDTH = 700
"""Width a reviewer's page picture is reduced to: enough to see where the field lies."""

OUTLINE = (0, 0, 220)
"""Colour (BGR) of the field's outline on the page picture."""


@dataclass(frozen=True)
class Pictures:
    """Where a drop's pictures go, and for which rows."""

    csv_folder: Path
    every_row: bool = False
    """Also draw rows that are ``ok`` or ``empty`` (``--annotate``), not only those to review."""
    audit_share: float = 0.0
    """Share of ``ok`` rows drawn for the blind audit, which get a reviewer's pictures too."""

    def wanted(self, status: str) -> bool:
        return self.every_row or status == REVIEW

    def write(self, row: Row, image: np.ndarray, left: int, top: int) -> str:
        """Draw ``row`` on ``image`` (whose corner lies at ``left, top`` on the page); return the relative path."""
        folder = self.csv_folder / FOLDER_NAME
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{picture_stem(row)}.png"
        picture = draw(row, image, left, top)
        _write_png(folder / name, picture)
        return f"{FOLDER_NAME}/{name}"

    def keep_for_review(self, row: Row, page: np.ndarray, region: tuple[int, int, int, int] | None) -> None:
        """Save what a reviewer of ``row`` looks at, if a person should see it (``digits.reviews.kind_of``).

        The crop is the field as it was read, with nothing drawn on it (also the
        training example a decision makes); the page is the whole page, small,
        with the field outlined. Their names are ``digits.reviews.image_names``.
        """
        if kind_of(row, self.audit_share) is None:
            return
        x0, y0, x1, y1 = region or (0, 0, page.shape[1], page.shape[0])
        crop_name, page_name = image_names(row)
        (self.csv_folder / crop_name).parent.mkdir(parents=True, exist_ok=True)
        _write_png(self.csv_folder / crop_name, page[y0:y1, x0:x1])
        _write_png(self.csv_folder / page_name, page_outline(page, (x0, y0, x1, y1)))


def draw(row: Row, image: np.ndarray, left: int = 0, top: int = 0) -> np.ndarray:
    """A colour picture of ``image`` with the row's digit boxes, digits and confidences, and a title band."""
    height, width = image.shape
    scale = min(MIN_HEIGHT / height if height < MIN_HEIGHT else 1.0, MAX_WIDTH / width)
    picture = cv2.cvtColor(rescaled(image, scale), cv2.COLOR_GRAY2BGR)
    colour = COLOURS.get(row.status, (0, 0, 220))
    confidences = [c for c in row.digit_confidences.split(";") if c]
    for digit, box, confidence in zip(row.digits, row.box_list(), confidences, strict=False):
        x, y, w, h = box
        corner = (round((x - left) * scale), round((y - top) * scale))
        far = (round((x - left + w) * scale), round((y - top + h) * scale))
        cv2.rectangle(picture, corner, far, colour, 2)
        label_at = (corner[0], max(14, corner[1] - 4))
        _text(picture, f"{digit} {float(confidence):.2f}", label_at, 0.5, colour)
    band = np.full((TITLE_HEIGHT, picture.shape[1], 3), 255, np.uint8)
    title = f"{row.source} p{row.page} {row.field}: {row.digits or '-'}  {row.status}"
    if row.confidence:
        title += f" ({float(row.confidence):.2f})"
    _text(band, title, (6, 23), 0.6, colour)
    return np.vstack([band, picture])


def page_outline(page: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """The page, at most ``PAGE_WIDTH`` wide, in colour, with ``region`` (left, top, right, bottom) outlined."""
    scale = min(1.0, PAGE_WIDTH / page.shape[1])
    picture = cv2.cvtColor(rescaled(page, scale), cv2.COLOR_GRAY2BGR)
    x0, y0, x1, y1 = (round(v * scale) for v in region)
    cv2.rectangle(picture, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), OUTLINE, max(2, round(3 * scale)))
    return picture


def field_frame(page: np.ndarray, region: tuple[int, int, int, int] | None) -> tuple[np.ndarray, int, int]:
    """The part of ``page`` a picture shows: the field's region with a margin (or the whole page), and its corner."""
    if region is None:
        return page, 0, 0
    x0, y0, x1, y1 = region
    dx, dy = round(MARGIN * (x1 - x0)), round(MARGIN * (y1 - y0))
    left, top = max(0, x0 - dx), max(0, y0 - dy)
    return page[top : min(page.shape[0], y1 + dy), left : min(page.shape[1], x1 + dx)], left, top


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write the review picture {path}; is the results folder writable?")


def _text(picture: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: tuple[int, int, int]) -> None:
    # OpenCV's fonts have no accents or other scripts; a reviewer still finds the file by its hash in the name.
    printable = text.encode("ascii", "replace").decode()
    cv2.putText(picture, printable, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
