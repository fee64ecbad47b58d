"""Scans made on the spot: digit strings drawn with OpenCV's Hershey fonts on paper.

They stand in for real handwriting wherever a test must not depend on the
training data in ../shared/data (a user's clone has none).
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
"""Fonts whose digits look handwritten enough (their "1" is drawn as a plain stroke)."""


def draw_digits(
    text: str,
    font: int = cv2.FONT_HERSHEY_SIMPLEX,
    height: int = 60,
    thickness: int | None = None,
    gap: int = 14,
    ink: int = 25,
    paper: int = 240,
    margin: int = 30,
) -> np.ndarray:
    """A grayscale page with ``text`` drawn in dark ink on light paper, digits not touching."""
    scale = cv2.getFontScaleFromHeight(font, height)
    thickness = thickness or max(2, height // 12)
    glyphs = []
    for char in text:
        (w, h), base = cv2.getTextSize(char, font, scale, thickness)
        glyph = np.zeros((h + base + 2 * thickness, w + 2 * thickness), np.uint8)
        if char == "1":
            # A hand writes a one as a plain stroke; the fonts' flagged, serifed
            # one is a typeface's, and reads as a "2" to a model of handwriting.
            glyph = np.zeros((h + base + 2 * thickness, 3 * thickness), np.uint8)
            cv2.line(glyph, (2 * thickness, thickness), (thickness, h + thickness), 255, thickness, cv2.LINE_AA)
        else:
            cv2.putText(glyph, char, (thickness, h + thickness), font, scale, 255, thickness, cv2.LINE_AA)
        glyphs.append(glyph)
    width = sum(g.shape[1] for g in glyphs) + gap * (len(glyphs) - 1) + 2 * margin
    tall = max(g.shape[0] for g in glyphs) + 2 * margin
    mask = np.zeros((tall, width), np.uint8)
    x = margin
    for glyph in glyphs:
        mask[margin : margin + glyph.shape[0], x : x + glyph.shape[1]] = np.maximum(
            mask[margin : margin + glyph.shape[0], x : x + glyph.shape[1]], glyph
        )
        x += glyph.shape[1] + gap
    page = paper - (mask.astype(np.float32) / 255) * (paper - ink)
    return page.astype(np.uint8)


def encode(page: np.ndarray, ext: str = ".png") -> bytes:
    """Image bytes of a page in the format named by ``ext``."""
    ok, data = cv2.imencode(ext, page)
    assert ok, f"OpenCV could not encode {ext}"
    return data.tobytes()


def on_scanner_bed(
    page: np.ndarray, degrees: float = 0.0, shift: tuple[float, float] = (0.0, 0.0), bed: int = 90
) -> np.ndarray:
    """``page`` as a flatbed scanner sees it: turned ``degrees`` counter-clockwise and moved by
    ``shift`` (shares of its width and height) on a darker bed that shows all around it."""
    height, width = page.shape
    margin = 0.08
    canvas = np.full((round(height * (1 + 2 * margin)), round(width * (1 + 2 * margin))), bed, np.uint8)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    matrix[0, 2] += (canvas.shape[1] - width) / 2 + shift[0] * width
    matrix[1, 2] += (canvas.shape[0] - height) / 2 + shift[1] * height
    return cv2.warpAffine(page, matrix, canvas.shape[::-1], dst=canvas, borderMode=cv2.BORDER_TRANSPARENT)


def turned_in_place(page: np.ndarray, degrees: float, paper: int = 242) -> np.ndarray:
    """``page`` turned ``degrees`` counter-clockwise inside its own frame, as a sheet feeder skews it."""
    height, width = page.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(page, matrix, (width, height), borderValue=paper)


def photographed(
    page: np.ndarray,
    corners: tuple[tuple[float, float], ...] = ((0.05, 0.03), (0.93, 0.07), (0.97, 0.96), (0.02, 0.92)),
    scale: float = 1.0,
    upside_down: bool = False,
    background: int = 110,
) -> np.ndarray:
    """``page`` as a hand-held photo sees it: its corners at ``corners`` (shares of the photo, clockwise from the
    top left: perspective, and the crop around it), on a darker ``background``, then scaled and maybe turned round."""
    height, width = page.shape
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    target = np.float32([[x * width, y * height] for x, y in corners])
    matrix = cv2.getPerspectiveTransform(source, target)
    photo = cv2.warpPerspective(page, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=background)
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return cv2.rotate(photo, cv2.ROTATE_180) if upside_down else photo


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG of a few kilobytes that declares ``width`` x ``height`` grey pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 100, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def cmyk_tiff(page: np.ndarray) -> bytes:
    """``page`` (grey, dark ink) as an uncompressed CMYK TIFF, its ink in the K plane, as print shops send."""
    height, width = page.shape
    pixels = np.stack([np.zeros_like(page)] * 3 + [255 - page], axis=-1).tobytes()
    entries = [  # tag, type (3 short, 4 long), value; offsets are filled in below
        (256, 3, width), (257, 3, height), (258, 3, None), (259, 3, 1), (262, 3, 5),
        (273, 4, None), (277, 3, 4), (278, 3, height), (279, 4, len(pixels)), (284, 3, 1),
    ]  # fmt: skip
    bits_at = 8 + 2 + 12 * len(entries) + 4
    pixels_at = bits_at + 8
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, value in entries:
        count = 4 if tag == 258 else 1
        value = {258: bits_at, 273: pixels_at}.get(tag, value)
        out += struct.pack(
            "<HHIHH" if kind == 3 and count == 1 else "<HHII",
            tag,
            kind,
            count,
            value,
            *((0,) if kind == 3 and count == 1 else ()),
        )
    return out + struct.pack("<I", 0) + struct.pack("<4H", 8, 8, 8, 8) + pixels


def pdf_with_javascript() -> bytes:
    """A one-page PDF that runs a script when opened (a viewer's alert; never run here)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R /Names << /JavaScript 5 0 R >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /S /JavaScript /JS (app.alert\\('scanned'\\);) >>",
        b"<< /Names [(run) 4 0 R] >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
