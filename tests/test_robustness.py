"""What real scans do to handwriting, and whether the whole recognition pipeline still reads it.

Each test draws a few digit strings with ``tests.synth.draw_digits``, damages the
page the way a scanner, a form or a pen would, writes it to a real image file and
reads it back through ``recognize_bytes``. A failing case is a known weakness of
the pipeline, not of the test: do not loosen the assertion to make it pass.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from digits.recognition.lines import reading_scale
from digits.recognition.model import Models, get_models
from digits.recognition.pipeline import recognize_bytes
from digits.recognition.segment import find_digits
from digits.settings import Settings
from tests.synth import draw_digits, encode

TEXTS = ("4096", "1357", "28", "7")
"""Digit strings drawn on every page: long, with a "1", short, and a single digit."""

PAPER = 240
"""Paper grey of ``draw_digits`` pages."""

INK = 25
"""Ink grey of ``draw_digits`` pages."""

RULE = 50
"""Grey of a printed ruled line or form box: dark, a little lighter than the ink."""


@pytest.fixture(scope="module")
def models() -> Models:
    return get_models(Settings())


def read(models: Models, data: bytes, name: str) -> str:
    """Digits the pipeline reads from a file's bytes (its first page)."""
    return recognize_bytes(data, name, "t", models, 0.9)[0].digits


def read_page(models: Models, page: np.ndarray, ext: str = ".png") -> str:
    """Digits read from a page, going through a real encoded file like a scan would."""
    return read(models, encode(page, ext), f"t{ext}")


def ink_box(page: np.ndarray) -> tuple[int, int, int, int]:
    """Left, top, right and bottom (inclusive) of the dark ink on a light page."""
    ys, xs = np.nonzero(page < (PAPER + INK) // 2)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def ruled_under(page: np.ndarray) -> np.ndarray:
    _, _, _, bottom = ink_box(page)
    page = page.copy()
    cv2.line(page, (0, bottom + 4), (page.shape[1] - 1, bottom + 4), RULE, 2)
    return page


def ruled_through(page: np.ndarray) -> np.ndarray:
    _, top, _, bottom = ink_box(page)
    y = round(top + 0.7 * (bottom - top))
    page = page.copy()
    cv2.line(page, (0, y), (page.shape[1] - 1, y), RULE, 2)
    return page


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("rule", [ruled_under, ruled_through], ids=["under", "through"])
def test_ruled_line(models: Models, text: str, rule: Callable[[np.ndarray], np.ndarray]) -> None:
    """Ruled paper or a form's writing line: a thin printed line under, or crossing, the digits."""
    assert read_page(models, rule(draw_digits(text))) == text


@pytest.mark.parametrize("text", TEXTS)
def test_form_field_box(models: Models, text: str) -> None:
    """A form field: digits written inside a printed box whose border comes within a few pixels."""
    page = draw_digits(text)
    left, top, right, bottom = ink_box(page)
    cv2.rectangle(page, (left - 6, top - 6), (right + 6, bottom + 6), RULE, 2)
    assert read_page(models, page) == text


def sheared(page: np.ndarray, slant: float) -> np.ndarray:
    """The page with its top moved ``slant`` times the page height to the right (left if negative)."""
    h, w = page.shape
    matrix = np.float32([[1, -slant, max(0.0, slant) * h], [0, 1, 0]])
    return cv2.warpAffine(page, matrix, (w + round(abs(slant) * h), h), borderValue=PAPER)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("slant", [0.25, -0.25], ids=["forward", "backward"])
def test_slanted_handwriting(models: Models, text: str, slant: float) -> None:
    """A writer whose digits lean forward or backward (shear of a quarter of the height)."""
    assert read_page(models, sheared(draw_digits(text), slant)) == text


def rotated(page: np.ndarray, degrees: float) -> np.ndarray:
    """The whole page rotated, enlarged to keep its corners, the new border paper-coloured."""
    h, w = page.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = round(w * cos + h * sin), round(w * sin + h * cos)
    matrix[0, 2] += new_w / 2 - w / 2
    matrix[1, 2] += new_h / 2 - h / 2
    return cv2.warpAffine(page, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderValue=PAPER)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("degrees", [5.0, -5.0], ids=["ccw", "cw"])
def test_skewed_page(models: Models, text: str, degrees: float) -> None:
    """A sheet fed into the scanner crooked: the whole page turned by five degrees."""
    assert read_page(models, rotated(draw_digits(text), degrees)) == text


@pytest.mark.parametrize("text", TEXTS)
def test_thin_pen(models: Models, text: str) -> None:
    """A fine pen or a hard pencil: strokes 2 pixels wide on digits 60 pixels high."""
    assert read_page(models, draw_digits(text, height=60, thickness=2)) == text


@pytest.mark.parametrize("text", TEXTS)
def test_thick_marker(models: Models, text: str) -> None:
    """A felt marker or ink that bled: every stroke grown by a 5x5 window."""
    page = cv2.erode(draw_digits(text), np.ones((5, 5), np.uint8))  # the darker minimum spreads the ink
    assert read_page(models, page) == text


def assert_boxed_where_the_ink_is(page: np.ndarray, boxes: str) -> None:
    """Each digit's box (a row's ``x,y,w,h;…``) lies within 2 pixels of its ink on ``page``."""
    for box, piece in zip(boxes.split(";"), find_digits(page), strict=True):
        x, y, w, h = map(int, box.split(","))
        assert abs(x - piece.box.x) <= 2 and abs(x + w - piece.box.x - piece.box.w) <= 2, (box, piece.box)
        assert abs(y - piece.box.y) <= 2 and abs(y + h - piece.box.y - piece.box.h) <= 2, (box, piece.box)


@pytest.mark.parametrize("text", TEXTS)
def test_fine_pen_scanned_coarse(models: Models, text: str) -> None:
    """A fine pen at a low resolution, strokes narrower than ``THINNEST_STROKE``: read enlarged, each digit
    boxed on the page where its ink is."""
    page = draw_digits(text, height=20, thickness=1)
    assert reading_scale(page) > 1
    [row] = recognize_bytes(encode(page), "t.png", "t", models, 0.9)
    assert row.digits == text
    assert_boxed_where_the_ink_is(page, row.boxes)


@pytest.mark.parametrize("text", TEXTS)
def test_broad_pen(models: Models, text: str) -> None:
    """A broad felt pen, strokes wider than ``WIDEST_STROKE``: read shrunk, each digit boxed on the page where
    its ink is."""
    page = draw_digits(text, height=100, thickness=12)
    assert reading_scale(page) < 1
    [row] = recognize_bytes(encode(page), "t.png", "t", models, 0.9)
    assert row.digits == text
    assert_boxed_where_the_ink_is(page, row.boxes)


def scaled_to_ink_height(page: np.ndarray, height: int) -> np.ndarray:
    """The page resized so that its ink is ``height`` pixels high."""
    _, top, _, bottom = ink_box(page)
    factor = height / (bottom - top + 1)
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(page, None, fx=factor, fy=factor, interpolation=interpolation)


@pytest.mark.parametrize("text", TEXTS)
def test_huge_scan(models: Models, text: str) -> None:
    """A 1200 dpi scan: digits 600 pixels high."""
    assert read_page(models, scaled_to_ink_height(draw_digits(text), 600)) == text


@pytest.mark.parametrize("text", TEXTS)
def test_tiny_scan(models: Models, text: str) -> None:
    """A low-resolution fax or thumbnail: digits 14 pixels high."""
    assert read_page(models, scaled_to_ink_height(draw_digits(text), 14)) == text


def coloured(page: np.ndarray, ink: tuple[int, int, int], paper: tuple[int, int, int]) -> np.ndarray:
    """A grayscale ``draw_digits`` page repainted in BGR colours, anti-aliased edges blended."""
    amount = ((PAPER - page.astype(np.float32)) / (PAPER - INK)).clip(0, 1)[:, :, None]
    return (np.float32(paper) * (1 - amount) + np.float32(ink) * amount).round().astype(np.uint8)


COLOURS = {
    "blue-on-yellowish": ((150, 40, 20), (190, 240, 250)),
    "red-on-white": ((30, 30, 200), (255, 255, 255)),
}
"""Ink and paper colours (BGR) of colour scans."""


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("colours", list(COLOURS), ids=list(COLOURS))
def test_colour_scan(models: Models, text: str, ext: str, colours: str) -> None:
    """A colour scan: ballpoint ink on tinted paper, or red ink, saved as a 3-channel file."""
    ink, paper = COLOURS[colours]
    assert read_page(models, coloured(draw_digits(text), ink, paper), ext) == text


def salt_and_pepper(page: np.ndarray, fraction: float = 0.005) -> np.ndarray:
    """Black and white specks on ``fraction`` of the pixels (half each), always the same ones."""
    rng = np.random.default_rng(0)
    page = page.copy()
    hit = rng.random(page.shape) < fraction
    page[hit] = np.where(rng.random(page.shape) < 0.5, 0, 255)[hit]
    return page


def blurred(page: np.ndarray) -> np.ndarray:
    """A slightly out-of-focus scan."""
    return cv2.GaussianBlur(page, (5, 5), 1.0)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("noise", [salt_and_pepper, blurred], ids=["specks", "blur"])
def test_noisy_scan(models: Models, text: str, noise: Callable[[np.ndarray], np.ndarray]) -> None:
    """Dust and sensor noise (salt-and-pepper on 0.5% of pixels), or a scan slightly out of focus."""
    assert read_page(models, noise(draw_digits(text))) == text


@pytest.mark.parametrize("text", TEXTS)
def test_low_quality_jpeg(models: Models, text: str) -> None:
    """A scanner or phone set to small files: JPEG at quality 30, with blocky artefacts around strokes."""
    ok, data = cv2.imencode(".jpg", draw_digits(text), [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok
    assert read(models, data.tobytes(), "t.jpg") == text


@pytest.mark.parametrize("text", TEXTS)
def test_uneven_lighting(models: Models, text: str) -> None:
    """A phone photo or a curled page: light falling off across the sheet, paper from 255 on the left to 150."""
    page = draw_digits(text, paper=255).astype(np.float32)
    light = np.linspace(1.0, 150 / 255, page.shape[1], dtype=np.float32)[None, :]
    assert read_page(models, (page * light).round().astype(np.uint8)) == text


@pytest.mark.parametrize("text", TEXTS)
def test_light_ink_on_dark_paper(models: Models, text: str) -> None:
    """A negative scan, chalk on a board, or a white pen on dark card: the page's grey levels inverted."""
    assert read_page(models, 255 - draw_digits(text)) == text
