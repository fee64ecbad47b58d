"""Turn a file's bytes into grayscale pages, or say clearly why that is impossible."""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import pypdfium2

MAX_PIXELS = 100_000_000
"""Pages larger than this (a 10,000 x 10,000 scan) are refused rather than decoded."""

MIN_SIDE = 8
"""Pages narrower or lower than this many pixels cannot hold a handwritten digit."""

PDF_DPI = 200
"""Resolution PDF pages are rendered at: enough for handwriting, a third of 300 dpi's pixels."""

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
)
"""Magic bytes of the formats we read, to name what a file is before decoding it."""


class UnreadableImage(ValueError):
    """The file is not an image we can read; the message says why and what to do."""


def sniff_format(data: bytes) -> str | None:
    """The format a file's first bytes announce, or None."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def count_pages(data: bytes) -> int:
    """How many pages a file holds (PDF pages, TIFF frames; 1 for other images), without decoding them.

    Raises ``UnreadableImage`` for a file that is no image we read, or a corrupt one.
    """
    kind = _kind(data)
    if kind == "PDF":
        with _pdf(data) as document:
            return len(document)
    if kind != "TIFF":
        return 1
    # OpenCV counts a TIFF's frames only from a file; its decoder would decode them all.
    with tempfile.NamedTemporaryFile(suffix=".tiff") as copy:
        copy.write(data)
        copy.flush()
        frames = cv2.imcount(copy.name, cv2.IMREAD_UNCHANGED)
    if frames < 1:
        raise UnreadableImage("corrupt or truncated TIFF file; scan or export it again")
    return frames


def check_page_count(pages: int, limit: int) -> None:
    """Refuse a document of more than ``limit`` pages (``DIGITS_MAX_PAGES``), saying what to do."""
    if pages > limit:
        raise UnreadableImage(
            f"{pages:,} pages, over the limit of {limit:,} pages per document (DIGITS_MAX_PAGES); split it into "
            f"documents of at most {limit:,} pages, or raise the limit (DIGITS_MAX_PAGES, or --max-pages of "
            "digits recognize)"
        )


def decode_pages(data: bytes, pages: range | None = None) -> list[np.ndarray]:
    """Decode PNG, JPEG, BMP, TIFF or PDF bytes into 8-bit grayscale pages (TIFF and PDF may have several).

    Args:
        data: the file's bytes.
        pages: the page numbers (from 1) to decode, e.g. ``range(5, 6)`` for the fifth only; all if None.
            Only those pages are ever held in memory.
    """
    kind = _kind(data)
    if kind == "PDF":
        return _render_pdf(data, pages)
    if kind == "PNG" and len(data) >= 24:
        # Checked before decoding: a few kilobytes can declare gigabytes of pixels.
        width, height = struct.unpack(">II", data[16:24])
        _check_size(width, height, kind)
    buffer = np.frombuffer(data, np.uint8)
    try:
        if kind == "TIFF":
            wanted = (pages.start - 1, pages.stop - 1) if pages else (0, 2**31 - 1)
            ok, decoded = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED, None, wanted)
            decoded = list(decoded) if ok else []
        else:
            page = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            decoded = [page] if page is not None and (pages is None or 1 in pages) else []
    except cv2.error as problem:
        # OpenCV refuses some files outright, e.g. a JPEG or TIFF declaring over 2**30 pixels.
        reason = "too many pixels" if "MAX_IMAGE_PIXELS" in str(problem) else "the decoder failed"
        raise UnreadableImage(f"{kind} file that cannot be decoded ({reason}); scan or export it again") from None
    if not decoded:
        raise UnreadableImage(f"corrupt or truncated {kind} file; scan or export it again")
    return [_to_gray(page) for page in decoded]


def _kind(data: bytes) -> str:
    """The format of a file we read; raises ``UnreadableImage`` for an empty file or another format."""
    if not data:
        raise UnreadableImage("empty file (0 bytes); the scan was not written completely, drop it again")
    kind = sniff_format(data)
    if kind is None:
        raise UnreadableImage(
            "not an image: the file is not PNG, JPEG, BMP, TIFF or PDF (unknown first bytes "
            f"{data[:8]!r}); export the scan in one of those formats"
        )
    return kind


def _check_size(width: int, height: int, kind: str) -> None:
    if width * height > MAX_PIXELS:
        raise UnreadableImage(
            f"the {kind} declares {width}x{height} pixels, over the limit of {MAX_PIXELS:,} "
            "(a giant scan or a decompression bomb); scan at 300 dpi"
        )
    if min(width, height) < MIN_SIDE:
        raise UnreadableImage(
            f"the {kind} page is {width}x{height} pixels, too small to hold a handwritten digit; scan at 200-300 dpi"
        )


@contextmanager
def _pdf(data: bytes) -> Iterator[pypdfium2.PdfDocument]:
    """A PDF opened by PDFium (no system binaries), closed after use; refused if it is corrupt or has scripts."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as problem:
        raise UnreadableImage(f"corrupt, truncated or password-protected PDF ({problem}); export it again") from None
    try:
        if len(document) == 0:
            raise UnreadableImage("the PDF has no pages; export the scan again")
        if pdfium.raw.FPDFDoc_GetJavaScriptActionCount(document.raw) > 0 or b"/JavaScript" in data:
            # Nothing in a PDF is ever run here, and a scan has no scripts: refusing says so plainly.
            raise UnreadableImage(
                "the PDF holds JavaScript, which a scan never has; save the scan again as a plain PDF"
            )
        yield document
    finally:
        document.close()


def _render_pdf(data: bytes, pages: range | None) -> list[np.ndarray]:
    """The PDF's pages (all, or those numbered in ``pages``) rendered to grey at ``PDF_DPI``."""
    with _pdf(data) as document:
        rendered = []
        scale = PDF_DPI / 72  # PDF sizes are in points, 72 to the inch
        for number in pages or range(1, len(document) + 1):
            if number > len(document):
                raise UnreadableImage(f"the PDF has no page {number}; it has {len(document)}")
            page = document[number - 1]
            width, height = page.get_size()
            if width * scale * height * scale > MAX_PIXELS:
                raise UnreadableImage(f"PDF page {number} is {width / 72:.0f}x{height / 72:.0f} inches, too large")
            # Forms are not drawn: nothing in the file is run, scripts included.
            bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=False)
            rendered.append(np.array(bitmap.to_numpy()).reshape(bitmap.height, bitmap.width))
        return rendered


def _to_gray(page: np.ndarray) -> np.ndarray:
    _check_size(page.shape[1], page.shape[0], "image")
    if page.dtype != np.uint8:
        page = cv2.normalize(page, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if page.ndim == 2:
        return page
    channels = page.shape[2]
    if channels == 4:
        # Transparent areas are paper: blend onto white before dropping alpha.
        alpha = page[:, :, 3:4].astype(np.float32) / 255
        page = (page[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
        channels = 3
    if channels == 1:
        return page[:, :, 0]
    return ink_gray(page)


COLOURED = 40
"""Saturation (0-255) that the 99th percentile of a photo's pixels must reach for its ink to count as coloured."""


def ink_gray(bgr: np.ndarray) -> np.ndarray:
    """A colour page in grey, where ink of any colour is as dark against the paper as black ink would be.

    A blue ballpoint is bright in green and blue, where brightness alone makes it
    faint; it is dark in red. Each channel is first divided by the paper's level
    in it (a photo's light is seldom white), then each pixel takes its darkest
    channel. A page without coloured ink is turned grey the usual way, so that
    scanners' colour noise does not darken the paper.
    """
    saturation = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[:, :, 1]
    if np.percentile(saturation, 99) < COLOURED:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    paper = np.maximum(np.percentile(bgr.reshape(-1, 3), 90, axis=0), 1)
    balanced = np.clip(bgr.astype(np.float32) * (255 / paper), 0, 255)
    return balanced.min(axis=2).astype(np.uint8)


def rescaled(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` resized ``factor`` times: averaged over each new pixel's area when shrinking (no aliasing of
    fine strokes), cubic when enlarging (strokes keep their contrast); ``image`` itself at 1."""
    if factor == 1:
        return image
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation)
