"""Reading scans: the formats we accept, and clear errors for what we cannot read."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.pages import tiny_frames_tiff
from digits.recognition.imaging import PDF_DPI, UnreadableImage, check_page_count, count_pages, decode_pages
from digits.samples import pdf_bytes, scan_bytes
from tests.synth import cmyk_tiff, draw_digits, encode, pdf_with_javascript, png_bomb


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_every_supported_format_decodes_to_one_grey_page(ext):
    page = draw_digits("12")
    pages = decode_pages(encode(page, ext))
    assert len(pages) == 1
    assert pages[0].shape == page.shape and pages[0].dtype == np.uint8
    assert np.abs(pages[0].astype(int) - page).mean() < 3


def test_multi_page_tiff_gives_every_page(tmp_path):
    path = str(tmp_path / "two.tif")
    assert cv2.imwritemulti(path, [draw_digits("1"), draw_digits("22")])
    pages = decode_pages(Path(path).read_bytes())
    assert len(pages) == 2


def test_colour_and_alpha_become_grey_on_white():
    page = draw_digits("5")
    bgra = cv2.cvtColor(page, cv2.COLOR_GRAY2BGRA)
    bgra[:, :, 3] = np.where(page < 128, 255, 0)  # paper fully transparent
    grey = decode_pages(encode(bgra))[0]
    assert grey.ndim == 2
    assert grey[0, 0] == 255  # transparent paper is white, not black
    assert grey.min() < 60


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixteen_bit_is_scaled_to_eight(ext):
    page16 = draw_digits("9").astype(np.uint16) * 257
    grey = decode_pages(encode(page16, ext))[0]
    assert grey.dtype == np.uint8 and grey.max() >= 230


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"amount: 1500\n", "not an image"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "not an image"),
        (encode(draw_digits("3"))[:60], "corrupt or truncated PNG"),
        (b"%PDF-1.7\n", "corrupt, truncated or password-protected PDF"),
        (pdf_bytes([draw_digits("5")])[:200], "corrupt, truncated or password-protected PDF"),
        (encode(draw_digits("3"), ".jpg")[:300], "corrupt or truncated JPEG"),
        (encode(draw_digits("3"), ".tif")[:300], "corrupt or truncated TIFF"),
        (png_bomb(), "declares 50000x50000 pixels"),
        (encode(np.full((1, 1), 200, np.uint8)), "1x1 pixels, too small"),
        (pdf_with_javascript(), "holds JavaScript"),
    ],
)
def test_unreadable_input_says_why(data, message):
    with pytest.raises(UnreadableImage, match=message):
        decode_pages(data)


def test_a_cmyk_tiff_becomes_dark_ink_on_light_paper():
    page = draw_digits("7")
    grey = decode_pages(cmyk_tiff(page))[0]
    assert grey.shape == page.shape
    assert np.abs(grey.astype(int) - page).max() <= 2


def test_every_pdf_page_is_rendered_at_the_pdf_resolution():
    first, second = draw_digits("12"), draw_digits("345", height=80)
    pages = decode_pages(pdf_bytes([first, second], dpi=100))
    assert len(pages) == 2
    # Placed at 100 dpi and rendered at PDF_DPI, each page comes back that much larger.
    for page, original in zip(pages, (first, second), strict=True):
        assert page.dtype == np.uint8 and page.ndim == 2
        assert abs(page.shape[1] - original.shape[1] * PDF_DPI / 100) <= 2
        assert page.min() < 80 and np.median(page) > 200  # dark ink on light paper


def test_a_pdf_without_pages_is_refused():
    import io

    import pypdfium2 as pdfium

    out = io.BytesIO()
    pdfium.PdfDocument.new().save(out)
    with pytest.raises(UnreadableImage, match="PDF"):  # PDFium will not even open it
        decode_pages(out.getvalue())


@pytest.mark.parametrize("ext", [".tif", ".pdf"])
def test_pages_are_counted_without_being_decoded_and_decoded_one_at_a_time(ext):
    pages = [np.full((80, 60), 40 * shade, np.uint8) for shade in range(5)]
    data = scan_bytes(pages, ext)
    assert count_pages(data) == 5
    [third] = decode_pages(data, range(3, 4))
    assert abs(float(third.mean()) - 80) < 3
    assert [round(float(page.mean()) / 40) for page in decode_pages(data, range(4, 6))] == [3, 4]


def test_a_document_over_the_page_limit_is_refused_saying_what_to_do():
    with pytest.raises(UnreadableImage, match=r"2,001 pages, over the limit of 2,000 pages per document.*split it"):
        check_page_count(count_pages(tiny_frames_tiff(2001)), 2000)
    check_page_count(2000, 2000)
    assert count_pages(encode(draw_digits("5"))) == 1
