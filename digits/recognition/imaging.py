"""Turn a file's bytes into grayscale pages, or say clearly why that is impossible."""

from __future__ import annotations

import struct

import cv2
import numpy as np

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


def decode_pages(data: bytes) -> list[np.ndarray]:
    """Decode PNG, JPEG, BMP, TIFF or PDF bytes into 8-bit grayscale pages (TIFF and PDF may have several)."""
    if not data:
        raise UnreadableImage("empty file (0 bytes); the scan was not written completely, drop it again")
    kind = sniff_format(data)
    if kind is None:
        raise UnreadableImage(
            "not an image: the file is not PNG, JPEG, BMP, TIFF or PDF (unknown first bytes "
            f"{data[:8]!r}); export the scan in one of those formats"
        )
    if kind == "PDF":
        return _render_pdf(data)
    if kind == "PNG" and len(data) >= 24:
        # Checked before decoding: a few kilobytes can declare gigabytes of pixels.
        width, height = struct.unpack(">II", data[16:24])
        _check_size(width, height, kind)
    buffer = np.frombuffer(data, np.uint8)
    try:
        if kind == "TIFF":
            ok, pages = cv2.imdecodemulti(buffer, cv2.IMREAD_UNCHANGED)
            pages = list(pages) if ok else []
        else:
            page = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            pages = [page] if page is not None else []
    except cv2.error as problem:
        # OpenCV refuses some files outright, e.g. a JPEG or TIFF declaring over 2**30 pixels.
        reason = "too many pixels" if "MAX_IMAGE_PIXELS" in str(problem) else "the decoder failed"
        raise UnreadableImage(f"{kind} file that cannot be decoded ({reason}); scan or export it again") from None
    if not pages:
        raise UnreadableImage(f"corrupt or truncated {kind} file; scan or export it again")
    return [_to_gray(page) for page in pages]


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


def _render_pdf(data: bytes) -> list[np.ndarray]:
    """Every page of a PDF rendered to grey at ``PDF_DPI``, by PDFium (no system binaries)."""
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
        pages = []
        scale = PDF_DPI / 72  # PDF sizes are in points, 72 to the inch
        for number, page in enumerate(document, start=1):
            width, height = page.get_size()
            if width * scale * height * scale > MAX_PIXELS:
                raise UnreadableImage(f"PDF page {number} is {width / 72:.0f}x{height / 72:.0f} inches, too large")
            # Forms are not drawn: nothing in the file is run, scripts included.
            bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=False)
            pages.append(np.array(bitmap.to_numpy()).reshape(bitmap.height, bitmap.width))
        return pages
    finally:
        document.close()


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
    return cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
