"""The worked example of docs/forms.md measured: the C1 tally photos read with the layout drawn from one of them.

The layout (``docs/examples/c1/c1.toml``) and its reference (``TPS_041.jpg`` of the
shared C1 sample, copied beside it into a temporary folder, never into the
repository) read every other photo through ``recognize_files``, as
``digits recognize`` does. Printed: how long registration takes per page, each
field's right, ``ok`` and wrong-among-``ok`` rows (numbers compared as integers),
and, box by box, what the digit boxes and the unused leading boxes (crossed
out, or holding a written 0) gave.

    python -m bench.forms --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from digits.layouts import Layout, load_layout
from digits.recognition.imaging import decode_pages
from digits.recognition.model import Models, get_models
from digits.recognition.pipeline import areas_of, fitted, open_document, read_images, recognize_files
from digits.recognition.register import match_page, reference
from digits.settings import get_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "c1" / "c1.toml"
SAMPLE = "TPS_041.jpg"
"""The photo the example layout was drawn from: its reference, not read."""

HARD = {
    "upside down": ("TPS_108.jpg", "TPS_207.jpg", "TPS_222.jpg", "TPS_430.jpg"),
    "dark": ("TPS_179.jpg", "TPS_273.jpg", "TPS_372.jpg", "TPS_442.jpg"),
    "about 220 pixels wide": ("TPS_157.jpg", "TPS_230.jpg", "TPS_245.jpg", "TPS_266.jpg", "TPS_455.jpg"),
}
"""The photos the baseline found hardest, by what makes them so."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    arguments = parser.parse_args()
    photos = arguments.data / "c1-forms-sample" / "images"
    labels = json.loads((photos.parent / "labels.json").read_text())
    files = sorted(path for path in photos.glob("*.jpg") if path.name != SAMPLE)
    settings = get_settings()
    models = get_models(settings)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(EXAMPLE, folder)
        shutil.copy(photos / SAMPLE, Path(folder) / "c1-sample.jpg")
        layout = load_layout("c1", Path(folder))
        print(registration_times(files, layout))
        rows = recognize_files(
            [(path.read_bytes(), path.name) for path in files],
            str(uuid.uuid4()),
            models,
            settings.review_threshold,
            layout,
        )
        names = [field.name for field in layout.fields]
        read = [(row, int(labels[row.source][names.index(row.field)])) for file_rows in rows for row in file_rows]
        for name in [*names, None]:
            print(field_figures(name, [(row, label) for row, label in read if name in (None, row.field)]))
        print(box_figures(files, layout, labels, models, settings.review_threshold))


def registration_times(files: list[Path], layout: Layout) -> str:
    """Seconds per page to match it to the reference (prepared once, as in a worker), and the pages not matched."""
    assert layout.reference is not None
    ref = reference(layout.reference)
    seconds, unmatched = [], []
    for path in files:
        page = decode_pages(path.read_bytes())[0]
        start = time.perf_counter()
        match = match_page(page, ref)
        seconds.append(time.perf_counter() - start)
        if match is None or not match.trusted:
            unmatched.append(path.name)
    return (
        f"registration: {len(files)} pages, median {statistics.median(seconds):.2f} s, "
        f"longest {max(seconds):.2f} s; not matched: {', '.join(unmatched) or 'none'}"
    )


def field_figures(name: str | None, read: list) -> str:
    """One line of the table: rows right, ``ok``, and wrong among ``ok``, of one field (or all)."""
    right = sum(row.digits != "" and int(row.digits) == label for row, label in read)
    ok = [(row, label) for row, label in read if row.status == "ok"]
    wrong = sum(int(row.digits) != label for row, label in ok)
    return f"{name or 'all'}: {len(read)} rows, right {right}, ok {len(ok)}, wrong among ok {wrong}"


def box_figures(files: list[Path], layout: Layout, labels: dict, models: Models, threshold: float) -> str:
    """What each box of each comb field gave: the boxes holding a digit, and the unused leading boxes; and the
    fields whose digit boxes all read right (right, were crossed boxes to give nothing), overall and on ``HARD``."""
    holding, unused, all_right = Counter(), Counter(), Counter()
    for path in files:
        document = fitted(open_document(path.read_bytes(), path.name, "bench", layout))
        areas = areas_of(document.pages, layout)
        readings = read_images([area.image for area in areas], models, threshold, framed=[a.framed for a in areas])
        for index, field in enumerate(layout.fields):
            boxes = [reading.digits for area, (reading, _) in zip(areas, readings, strict=True) if area.field == field]
            label = str(int(labels[path.name][index]))
            lead = len(boxes) - len(label)
            written = list(zip(boxes[lead:], label, strict=True)) if lead >= 0 else []
            all_right[path.name] += bool(written) and all(box == digit for box, digit in written)
            holding.update("right" if box == digit else "nothing" if not box else "wrong" for box, digit in written)
            unused.update(_kind(box) for box in boxes[: max(lead, 0)])
    fields = len(layout.fields)
    hard = "; ".join(
        f"{what} {sum(all_right[name] for name in names)} of {fields * len(names)}" for what, names in HARD.items()
    )
    return (
        f"boxes holding a digit: {dict(holding)}\nunused leading boxes: {dict(unused)}\n"
        f"fields whose digit boxes all read right: {sum(all_right.values())} of {len(files) * fields} ({hard})"
    )


def _kind(box: str) -> str:
    """What an unused box gave: nothing, a 0 (some writers fill unused boxes with one), another digit, or several."""
    return "nothing" if not box else "0" if box == "0" else "a digit 1-9" if len(box) == 1 else "several digits"


if __name__ == "__main__":
    main()
