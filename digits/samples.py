"""Sample scans of the shipped layouts, so that a new user can try them at once.

Each sample is drawn from its layout file: printed labels and boxes around
every field (comb boxes where the layout says so), a title with printed digits
outside the fields (they must never be read), and the field values written in
a handwriting-like font. ``digits samples DIR`` writes them with the values
they hold (``truth.csv``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np

from digits.layouts import Field, Layout, load_layout

PAGE_INCHES = {"cheque": (6.0, 2.75), "form": (8.27, 11.69)}
"""Paper size (width, height) of each shipped layout."""

SAMPLE_VALUES = {
    "cheque": [{"date": "29112026", "amount": "1250"}],
    "form": [
        {"customer": "104729", "account": "5038172946", "date": "01122026", "amount": "38500"},
        {"customer": "662081", "account": "9917350428", "date": "15012027", "amount": "7240"},
    ],
}
"""What is written on each page of each sample."""

PRE_PRINTED = ",00"
"""Text printed in each ``printed`` region of a field (a cheque's cents), which must never be read."""

PAPER, PRINT, INK = 242, 60, 30
"""Grey levels of the paper, the printed form and the handwriting."""

BOX_INSET = 0.12
"""The printed box sits this share of the field's height inside the layout's region."""


def draw_page(layout: Layout, values: dict[str, str], dpi: int = 200, seed: int = 0) -> np.ndarray:
    """One filled-in page of ``layout`` as a grey scan at ``dpi``."""
    rng = np.random.default_rng(seed)
    inches = PAGE_INCHES.get(layout.name, (8.27, 11.69))
    width, height = round(inches[0] * dpi), round(inches[1] * dpi)
    page = np.full((height, width), PAPER, np.uint8)
    printed = dpi / 200  # text sizes are chosen at 200 dpi
    _print(page, f"{layout.name.upper()}  No. 4711-2026", (round(0.03 * width), round(0.12 * height)), 0.9 * printed)
    for field in layout.fields:
        left, top, right, bottom = _box(field, width, height)
        label_at = (round(0.03 * width), bottom - round(0.2 * (bottom - top)))
        _print(page, field.name.capitalize(), label_at, 0.7 * printed)
        cv2.rectangle(page, (left, top), (right, bottom), PRINT, max(1, round(2 * printed)))
        cells = field.comb or 1
        for i in range(1, cells):
            x = left + round(i * (right - left) / cells)
            cv2.line(page, (x, top), (x, bottom), PRINT, max(1, round(2 * printed)))
        for part_left, part_top, _, part_height in field.printed:
            baseline = round((part_top + 0.7 * part_height) * height)
            _print(page, PRE_PRINTED, (round(part_left * width), baseline), 0.8 * printed)
        _handwrite(page, values.get(field.name, ""), (left, top, right, bottom), field.comb, rng)
    return page


def scan_bytes(pages: list[np.ndarray], ext: str, dpi: int = 200) -> bytes:
    """The pages as one file of the format ``ext`` names: a single page, or a multi-page TIFF or PDF."""
    if ext == ".pdf":
        return pdf_bytes(pages, dpi)
    ok, data = cv2.imencodemulti(ext, pages) if len(pages) > 1 else cv2.imencode(ext, pages[0])
    if not ok:
        raise ValueError(f"OpenCV cannot write {len(pages)} page(s) as {ext}")
    return bytes(data)


def pdf_bytes(pages: list[np.ndarray], dpi: int = 200) -> bytes:
    """A PDF holding each page as a JPEG image at ``dpi``, as a scanner's PDF would."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    for page in pages:
        size = (page.shape[1] * 72 / dpi, page.shape[0] * 72 / dpi)  # points
        ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        image = pdfium.PdfImage.new(document)
        image.load_jpeg(io.BytesIO(jpeg.tobytes()), inline=True)
        image.set_matrix(pdfium.PdfMatrix().scale(*size))
        pdf_page = document.new_page(*size)
        pdf_page.insert_obj(image)
        pdf_page.gen_content()
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def write_samples(out: Path, layouts_folder: Path, dpi: int = 200) -> list[Path]:
    """Write every shipped layout's sample as PNG or TIFF and as PDF, plus ``truth.csv``; return the files."""
    out.mkdir(parents=True, exist_ok=True)
    written, truth = [], []
    for name, pages_values in SAMPLE_VALUES.items():
        layout = load_layout(name, layouts_folder)
        pages = [draw_page(layout, values, dpi, seed=i) for i, values in enumerate(pages_values)]
        for ext in (".png" if len(pages) == 1 else ".tif", ".pdf"):
            path = out / f"{name}{ext}"
            path.write_bytes(scan_bytes(pages, ext, dpi))
            written.append(path)
            for number, values in enumerate(pages_values, start=1):
                truth += [(path.name, name, number, field, digits) for field, digits in values.items()]
    with open(out / "truth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "layout", "page", "field", "digits"])
        writer.writerows(truth)
    return written


def _box(field: Field, width: int, height: int) -> tuple[int, int, int, int]:
    """The printed box of a field in page pixels: inside its region, with a margin."""
    left, top, w, h = field.region
    inset = BOX_INSET * h * height
    return (
        round(left * width + inset),
        round(top * height + inset),
        round((left + w) * width - inset),
        round((top + h) * height - inset),
    )


def _print(page: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    cv2.putText(page, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, PRINT, max(1, round(2 * scale)), cv2.LINE_AA)


def _handwrite(
    page: np.ndarray, digits: str, box: tuple[int, int, int, int], comb: int | None, rng: np.random.Generator
) -> None:
    """Write ``digits`` inside ``box``: one per cell of a comb, or side by side from the left."""
    left, top, right, bottom = box
    height = bottom - top
    font = cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC
    pen = left + 0.1 * height  # where the next digit of a free-written field starts
    for i, digit in enumerate(digits):
        size = height * rng.uniform(0.5, 0.62)
        scale = cv2.getFontScaleFromHeight(font, round(size))
        thickness = max(2, round(size / 11))
        (w, _), _ = cv2.getTextSize(digit, font, scale, thickness)
        if comb:
            cell = (right - left) / comb
            x = round(left + (i + 0.5) * cell - w / 2 + rng.uniform(-0.08, 0.08) * cell)
        else:
            x = round(pen)
            pen += w * rng.uniform(1.15, 1.35)
        y = round(bottom - (height - size) / 2 + rng.uniform(-0.06, 0.06) * height)
        if digit == "1":
            # A hand writes a one as a plain stroke; the font's flagged one is a typeface's.
            top_end = (x + w // 2 + round(0.15 * size), y - round(size))
            cv2.line(page, top_end, (x + w // 2, y), INK, thickness, cv2.LINE_AA)
        elif digit == "0":
            # The font's zero is slashed, which blurs into a 4 or a 6 at 150 dpi; a hand draws an oval.
            centre = (x + w // 2, y - round(0.4 * size))
            axes = (round(0.32 * w), round(0.4 * size))
            cv2.ellipse(page, centre, axes, 12, 0, 360, INK, thickness, cv2.LINE_AA)
        else:
            cv2.putText(page, digit, (x, y), font, scale, INK, thickness, cv2.LINE_AA)
