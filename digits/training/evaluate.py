"""Measure a model through the real pipeline, on files, per source of handwriting.

Every sample is an encoded image file (PNG, JPEG, BMP or TIFF, varied size and
margins, some light ink on dark) read by the same ``recognize_files`` a worker
runs, so the figures include decoding, segmentation and normalisation, not
only the classifier. ``digits evaluate`` prints the table and writes a
confusion matrix PNG and a CSV of the mistakes with their images.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digits.contracts import EMPTY, OK, REVIEW
from digits.layouts import Layout
from digits.recognition.clean import clean_page
from digits.recognition.imaging import UnreadableImage, decode_pages
from digits.recognition.model import Models
from digits.recognition.pipeline import (
    areas_of,
    field_readings,
    fitted,
    ok_until,
    open_document,
    read_images,
    sureness,
)
from digits.training.augment import coarse_scan, semeion_bitmap
from digits.training.data import (
    FORMS_DIR,
    ORAND_DIR,
    REGISTER_DIR,
    SPLIT_SEED,
    as_signs,
    forms_layout,
    forms_split,
    load_optdigits,
    orand_split,
    split_indices,
)

FORMATS = (".png", ".jpg", ".bmp", ".tif")
"""File formats the single-digit samples are written in, in turn."""

EVALUATION_BATCH = 64
"""Files read together (the rows are the same as one at a time; it is only faster)."""

LIGHT_ON_DARK_SHARE = 0.1
"""Share of single-digit samples drawn as light ink on dark paper."""

SEMEION_STYLE_DIGITS = 2000
"""MNIST test digits (the first ones) redrawn Semeion's way for the ``semeion-style`` source."""

COARSE_FILES = 2100
"""Files of each coarse-scan source, drawn from the held-out writer sets (MNIST test, USPS, ARDIS) in turn."""

COARSE_SOURCES = {"coarse-16": 16, "bitmaps-32": 32}
"""Coarse-scan sources and the side of the square their digits are kept in (``coarse_scan``)."""

COARSE_THRESHOLD = 128
"""Grey level above which a coarse scan's pixel is ink: half-way, a scanner's line-art default. (Training's
coarse scans vary it; at a heavy setting thin strokes fall apart into specks no one could read.)"""

CHEQUE_DIGIT_MARGIN = 0.1
"""Paper kept around each held-out cheque digit's box, as a share of its height."""


@dataclass(frozen=True)
class Sample:
    """One file to read, and what is written on it (in one field of it, for a form read with a layout)."""

    source: str
    name: str
    data: bytes
    truth: str
    layout: Layout | None = None
    """The layout the file is read with; None for a page read whole."""
    field: str = ""
    """With a layout, the field whose reading is judged."""


THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999)
"""Review thresholds at which the operating curve is printed."""


@dataclass
class OperatingCurve:
    """Read rate against error among ``ok`` rows, as the review threshold varies, for one set of files."""

    judged: list[tuple[bool, float]] = field(default_factory=list)
    """(read right, ``ok_until``) of each file."""

    def add(self, right: bool, until: float) -> None:
        self.judged.append((right, until))

    def at(self, threshold: float) -> tuple[float, float]:
        """(read rate, error among ok rows) at ``threshold``."""
        ok = [right for right, until in self.judged if until >= threshold]
        if not self.judged:
            return 0.0, 0.0
        return len(ok) / len(self.judged), (ok.count(False) / len(ok) if ok else 0.0)

    def meeting(self, target: float) -> tuple[float, float] | None:
        """(lowest threshold, read rate there) at which the error among ok rows is at most ``target``.

        None when even the surest readings err more than that. Thresholds are
        those at which some file changes sides, so the read rate is exact.
        """
        ranked = sorted(((until, right) for right, until in self.judged if until >= 0), reverse=True)
        best, wrong = None, 0
        for i, (until, right) in enumerate(ranked):
            wrong += not right
            last_of_tie = i + 1 == len(ranked) or ranked[i + 1][0] < until
            if last_of_tie and wrong <= target * (i + 1):
                best = (until, (i + 1) / len(self.judged))
        return best

    def trace(self, points: int = 200) -> list[tuple[float, float]]:
        """(error among ok rows, read rate) at up to ``points`` thresholds spread over the files' own."""
        thresholds = sorted({until for _, until in self.judged if until >= 0})
        if len(thresholds) > points:
            thresholds = [thresholds[round(i)] for i in np.linspace(0, len(thresholds) - 1, points)]
        return [tuple(reversed(self.at(t))) for t in thresholds]

    def points(self) -> list[dict]:
        """The curve at ``THRESHOLDS``, for summary.json."""
        names = ("threshold", "read_rate", "ok_error_rate")
        return [dict(zip(names, (t, *self.at(t)), strict=True)) for t in THRESHOLDS]


@dataclass
class SourceReport:
    """How well one source of handwriting was read."""

    source: str
    files: int = 0
    right: int = 0
    ok_rows: int = 0
    ok_wrong: int = 0
    curve: OperatingCurve = field(default_factory=OperatingCurve)

    @property
    def accuracy(self) -> float:
        return self.right / self.files if self.files else 0.0

    @property
    def ok_error_rate(self) -> float:
        """Share of wrong readings among rows the service would not send to review."""
        return self.ok_wrong / self.ok_rows if self.ok_rows else 0.0

    @property
    def review_share(self) -> float:
        return 1 - self.ok_rows / self.files if self.files else 0.0


def digit_files(source: str, images: np.ndarray, labels: np.ndarray, seed: int = SPLIT_SEED) -> Iterator[Sample]:
    """Ink-high digit arrays drawn as ordinary scans: varied size, margin, format and polarity."""
    rng = np.random.default_rng(seed)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        side = int(rng.integers(24, 120))
        page = 255 - cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
        margins = rng.integers(2, side // 2 + 3, size=4)
        page = cv2.copyMakeBorder(page, *map(int, margins), cv2.BORDER_CONSTANT, value=255)
        if rng.random() < LIGHT_ON_DARK_SHARE:
            page = 255 - page
        ext = FORMATS[i % len(FORMATS)]
        ok, data = cv2.imencode(ext, page)
        assert ok
        yield Sample(source, f"{source}-{i:05d}{ext}", data.tobytes(), str(int(label)))


def coarse_files(
    source: str, pools: dict[str, tuple[np.ndarray, np.ndarray]], grid: int, count: int, seed: int = SPLIT_SEED
) -> list[Sample]:
    """``count`` held-out digits scanned coarsely: kept in a ``grid`` x ``grid`` square, thresholded half-way, enlarged.

    The digits come from each writer set in ``pools`` in turn, none twice while
    the set lasts; black on white (a tenth white on black), with paper around
    them, in lossless formats so that no grey comes back.
    """
    rng = np.random.default_rng(seed + grid)
    names = sorted(pools)
    orders = {name: rng.permutation(len(pools[name][0])) for name in names}
    samples = []
    for i in range(count):
        name = names[i % len(names)]
        images, labels = pools[name]
        k = int(orders[name][(i // len(names)) % len(images)])
        page = 255 - coarse_scan(images[k], rng, grid, COARSE_THRESHOLD)
        page = cv2.copyMakeBorder(page, *(int(m) for m in rng.integers(2, 30, size=4)), cv2.BORDER_CONSTANT, value=255)
        if rng.random() < LIGHT_ON_DARK_SHARE:
            page = 255 - page
        ext = (".png", ".tif", ".bmp")[i % 3]
        ok, data = cv2.imencode(ext, page)
        assert ok
        samples.append(Sample(source, f"{source}-{i:05d}{ext}", data.tobytes(), str(int(labels[k]))))
    return samples


NUMBER_FILES = 600
"""Files of ``numbers-held-out``: numbers of 3 to 6 separated digits, each written by one held-out set's writers."""


def number_files(pools: dict[str, tuple[np.ndarray, np.ndarray]], count: int, seed: int = SPLIT_SEED) -> list[Sample]:
    """Numbers of 3 to 6 digits as a form's field holds them: separated, on plain paper, one set's writers each.

    ``pools`` maps a source to its held-out (ink-high images, labels); every
    number takes its digits from one source, as a person fills one form. Sizes,
    gaps (never touching), baselines, ink and format vary.
    """
    rng = np.random.default_rng(seed)
    names = sorted(pools)
    samples = []
    for i in range(count):
        images, labels = pools[names[i % len(names)]]
        picked = rng.integers(len(images), size=int(rng.integers(3, 7)))
        height = int(rng.integers(28, 90))
        glyphs = []
        for k in picked:
            ys, xs = np.nonzero(images[k] > 30)
            crop = images[k][ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else images[k]
            h = max(4, round(height * rng.uniform(0.9, 1.1)))
            w = max(2, round(crop.shape[1] * h / crop.shape[0]))
            glyphs.append(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA))
        gaps = [round(height * rng.uniform(0.2, 0.7)) for _ in glyphs]
        margin = int(rng.integers(8, 40))
        width = sum(g.shape[1] for g in glyphs) + sum(gaps[:-1]) + 2 * margin
        canvas = np.zeros((round(height * 1.3) + 2 * margin, width), np.uint8)
        x = margin
        for glyph, gap in zip(glyphs, gaps, strict=True):
            top = margin + int(rng.integers(0, max(1, canvas.shape[0] - 2 * margin - glyph.shape[0])))
            top = min(top, margin + round(height * 0.15))
            canvas[top : top + glyph.shape[0], x : x + glyph.shape[1]] = glyph
            x += glyph.shape[1] + gap
        paper = rng.uniform(215, 250) + rng.normal(0, 2, canvas.shape)
        page = np.clip(paper - canvas.astype(np.float32) * rng.uniform(0.6, 0.9), 0, 255).astype(np.uint8)
        ext = (".png", ".tif", ".jpg")[i % 3]
        ok, data = cv2.imencode(ext, page)
        assert ok
        truth = "".join(str(int(labels[k])) for k in picked)
        samples.append(Sample("numbers-held-out", f"numbers-held-out-{i:05d}{ext}", data.tobytes(), truth))
    return samples


def held_out_writers(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The held-out single digits of each set in ``data_dir`` (ink-high images, labels), by source name."""
    writers = {}
    if (data_dir / "mnist.npz").exists():
        with np.load(data_dir / "mnist.npz") as mnist:
            writers["mnist-test"] = (mnist["x_test"], mnist["y_test"])
    for source, file_name in (("usps-held-out", "usps-train.npz"), ("ardis-held-out", "ardis4-train.npz")):
        if (data_dir / file_name).exists():
            with np.load(data_dir / file_name) as data:
                held = split_indices(len(data["x"]))[0]
                writers[source] = (data["x"][held], data["y"][held])
    return writers


def load_samples(data_dir: Path, limit: int | None = None) -> dict[str, list[Sample]]:
    """Every held-out set found in ``data_dir`` (and UCI optdigits, with scikit-learn), as files, by source name."""
    sets: dict[str, list[Sample]] = {}
    if (data_dir / "mnist.npz").exists():
        with np.load(data_dir / "mnist.npz") as mnist:
            x, y = mnist["x_test"], mnist["y_test"]
        sets["mnist-test"] = list(digit_files("mnist-test", x[:limit], y[:limit]))
        # Semeion's own digits are not here; its way of keeping them is.
        semeion = np.stack([semeion_bitmap(image) for image in x[:SEMEION_STYLE_DIGITS][:limit]])
        sets["semeion-style"] = list(digit_files("semeion-style", semeion, y[:SEMEION_STYLE_DIGITS][:limit]))
    writers = held_out_writers(data_dir)
    for source in ("usps-held-out", "ardis-held-out"):
        if source in writers:
            sets[source] = list(digit_files(source, *(part[:limit] for part in writers[source])))
    if writers:
        sets["numbers-held-out"] = number_files(writers, min(NUMBER_FILES, limit or NUMBER_FILES))
        for source, grid in COARSE_SOURCES.items():
            sets[source] = coarse_files(source, writers, grid, min(COARSE_FILES, limit or COARSE_FILES))
    optdigits = optdigits_samples(limit)
    if optdigits:
        sets["optdigits-held-out"] = optdigits
    orand = data_dir / ORAND_DIR
    if (orand / "labels.json").exists():
        sets["orand-digits-held-out"] = cheque_digit_files(data_dir)[:limit]
        labels = json.loads((orand / "labels.json").read_text())
        names = sorted(labels)
        held = sorted(split_indices(len(names))[0])[:limit]
        sets["orand-held-out"] = [
            Sample("orand-held-out", names[i], (orand / "images" / names[i]).read_bytes(), labels[names[i]])
            for i in held
        ]
    sets |= register_samples(data_dir, limit)
    forms = form_samples(data_dir, limit)
    if forms:
        sets[FORMS_SOURCE] = forms
    return sets


def register_samples(data_dir: Path, limit: int | None = None) -> dict[str, list[Sample]]:
    """The held-out register rows (MGR's validation part), as the archive cut them, in two sources.

    ``mgr-rowid-numbers``: rows that hold a plain number. ``mgr-rowid-signs``:
    rows with a letter or a sign (a suffix as in "12a", a dash or a ditto mark
    for a number, letters alone); their truth keeps ``SIGN`` for each, so no
    reading is ever right, and each ``ok`` one is an error: the service owes a
    person a look at them (or ``empty``, where they hold no digit).
    """
    folder = data_dir / REGISTER_DIR
    labels_file = folder / "validation-labels.json"
    if not labels_file.exists():
        return {}
    labels = json.loads(labels_file.read_text())
    sets: dict[str, list[Sample]] = {"mgr-rowid-numbers": [], "mgr-rowid-signs": []}
    for name in sorted(labels):
        truth = as_signs(labels[name])
        source = "mgr-rowid-numbers" if truth.isdigit() else "mgr-rowid-signs"
        sets[source].append(Sample(source, name, (folder / "validation" / name).read_bytes(), truth))
    return {source: samples[:limit] for source, samples in sets.items()}


FORMS_SOURCE = "c1-forms-held-out"
"""The held-out C1 tally photos (``forms_split``), one sample per field, read with the example layout."""


def form_samples(data_dir: Path, limit: int | None = None) -> list[Sample]:
    """Every field of the held-out C1 photos (or of enough of them for ``limit`` fields), read with the
    example layout drawn from one sample (a number each)."""
    layout = forms_layout(data_dir)
    if layout is None:
        return []
    photos = data_dir / FORMS_DIR / "images"
    labels = json.loads((photos.parent / "labels.json").read_text())
    names = forms_split(data_dir)[1]
    names = names[: limit // len(layout.fields) if limit else None]  # ``limit`` fields, whole photos
    return [
        Sample(FORMS_SOURCE, f"{name}#{field.name}", (photos / name).read_bytes(), str(int(number)), layout, field.name)
        for name in names
        for field, number in zip(layout.fields, labels[name], strict=True)
    ]


def cheque_digit_files(data_dir: Path) -> list[Sample]:
    """Each digit of the held-out ORAND amounts, cut from its scan by its box with a little paper around it.

    Neighbouring digits and separators that reach into the margin stay, as they
    do when a person crops a digit from a cheque.
    """
    held = orand_split(data_dir)[1]
    samples = []
    for gray, label, boxes in zip(held.images, held.labels, held.boxes, strict=True):
        for (x, y, w, h), digit in zip(boxes, label, strict=True):
            margin = round(h * CHEQUE_DIGIT_MARGIN)
            crop = gray[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin]
            ext = FORMATS[len(samples) % len(FORMATS)]
            ok, data = cv2.imencode(ext, crop)
            assert ok
            name = f"orand-digits-held-out-{len(samples):05d}{ext}"
            samples.append(Sample("orand-digits-held-out", name, data.tobytes(), digit))
    return samples


def optdigits_samples(limit: int | None = None) -> list[Sample]:
    """The held-out part of UCI optdigits (scikit-learn's copy, 8x8 ink counts), as files; none without scikit-learn."""
    optdigits = load_optdigits()
    if optdigits is None:
        return []
    x, y = optdigits
    held = split_indices(len(x))[0][:limit]
    return list(digit_files("optdigits-held-out", x[held], y[held]))


def evaluate(
    models: Models, sets: dict[str, list[Sample]], out_dir: Path, review_threshold: float
) -> list[SourceReport]:
    """Read every sample; write the confusion matrix and the mistakes to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mistakes").mkdir(exist_ok=True)
    reports = []
    confusion = np.zeros((10, 11), np.int64)  # truth x read (column 10: not one digit)
    with open(out_dir / "mistakes.csv", "w", newline="") as handle:
        mistakes = csv.writer(handle)
        mistakes.writerow(["source", "file", "truth", "read", "confidence", "status", "image"])
        for source, samples in sets.items():
            report, readings = judge_set(source, samples, models, review_threshold)
            for sample, read in zip(samples, readings, strict=True):
                if len(sample.truth) == 1 and sample.truth.isdigit():
                    confusion[int(sample.truth), int(read.digits) if len(read.digits) == 1 else 10] += 1
                if read.digits != sample.truth:
                    file, _, field = sample.name.partition("#")  # a form's field: its photo, named after both
                    image = out_dir / "mistakes" / (f"{Path(file).stem}-{field}{Path(file).suffix}" if field else file)
                    image.write_bytes(sample.data)
                    confidence = "" if read.confidence is None else f"{read.confidence:.4f}"
                    status = OK if read.ok_until >= review_threshold else REVIEW if read.digits else EMPTY
                    mistakes.writerow(
                        [source, sample.name, sample.truth, read.digits, confidence, status,
                         image.relative_to(out_dir).as_posix()]
                    )  # fmt: skip
            reports.append(report)
    cv2.imwrite(str(out_dir / "confusion.png"), draw_confusion(confusion))
    cv2.imwrite(str(out_dir / "curves.png"), draw_curves(reports))
    summary = [
        {"source": r.source, "files": r.files, "right": r.right, "ok_rows": r.ok_rows, "ok_wrong": r.ok_wrong,
         "accuracy": r.accuracy, "ok_error_rate": r.ok_error_rate, "curve": r.curve.points()}
        for r in reports
    ]  # fmt: skip
    readers = {"model": models.label, "string_model": models.reader.label if models.reader else None}
    (out_dir / "summary.json").write_text(json.dumps(readers | {"sources": summary}, indent=2))
    return reports


@dataclass(frozen=True)
class Judged:
    """How one file was read: its first page's digits, its confidence (``sureness``), and up to which threshold it
    is ``ok``."""

    digits: str
    confidence: float | None
    ok_until: float
    """``digits.recognition.pipeline.ok_until``: the row is ``ok`` at any review threshold up to this."""


def judge(samples: list[Sample], models: Models, review_threshold: float) -> Iterator[Judged]:
    """The first page of each sample, read a batch at a time as a worker reads them (an unreadable file reads nothing).

    The readings are those of ``review_threshold``, which also decides which
    single digits the classifier is sure enough of to read alone: judging them
    at another threshold (``OperatingCurve``) moves only the bar for ``ok``.
    """
    for start in range(0, len(samples), EVALUATION_BATCH):
        pages: list[np.ndarray | None] = []
        for sample in samples[start : start + EVALUATION_BATCH]:
            try:
                pages.append(decode_pages(sample.data)[0])
            except UnreadableImage:
                pages.append(None)
        # Each page is cleaned as the pipeline cleans a page read whole (``areas_of``).
        readable = [clean_page(page) for page in pages if page is not None]
        readings = iter(read_images(readable, models, review_threshold))
        for page in pages:
            if page is None:
                yield Judged("", None, -1.0)
                continue
            reading, support = next(readings)
            yield Judged(reading.digits, sureness(reading, support), ok_until(reading, support))


def judge_fields(samples: list[Sample], models: Models, review_threshold: float) -> Iterator[Judged]:
    """The reading of each sample's field, its file read with its layout as a worker reads it (``judge`` else).

    Samples of one file follow each other; each file is read once. Digits are
    compared as a number (a 0 written in a leading box changes nothing).
    """
    for name, fields in itertools.groupby(samples, key=lambda sample: sample.name.split("#")[0]):
        fields = list(fields)
        document = fitted(open_document(fields[0].data, name, "evaluation", fields[0].layout))
        areas = areas_of(document.pages, document.layout)
        chosen = read_images([area.image for area in areas], models, review_threshold, framed=[a.framed for a in areas])
        readings = field_readings(document, areas, chosen)
        for sample in fields:
            reading, support = readings[1, sample.field]
            number = str(int(reading.digits)) if reading.digits else ""
            yield Judged(number, sureness(reading, support), ok_until(reading, support))


def judge_set(
    source: str, samples: list[Sample], models: Models, review_threshold: float
) -> tuple[SourceReport, list[Judged]]:
    """Read one set: how well (with its operating curve), and each file's reading."""
    read = judge_fields if samples and samples[0].layout else judge
    report, readings = SourceReport(source), list(read(samples, models, review_threshold))
    for sample, read in zip(samples, readings, strict=True):
        right = read.digits == sample.truth
        report.files += 1
        report.right += right
        report.curve.add(right, read.ok_until)
        if read.ok_until >= review_threshold:
            report.ok_rows += 1
            report.ok_wrong += not right
    return report, readings


def draw_confusion(matrix: np.ndarray, cell: int = 48) -> np.ndarray:
    """A picture of the confusion matrix: rows are the truth, columns what was read."""
    rows, cols = matrix.shape
    image = np.full(((rows + 1) * cell, (cols + 1) * cell, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for c in range(cols):
        cv2.putText(image, str(c) if c < 10 else "?", ((c + 1) * cell + 14, 32), font, 0.7, (0, 0, 0), 2)
    for r in range(rows):
        cv2.putText(image, str(r), (16, (r + 2) * cell - 16), font, 0.7, (0, 0, 0), 2)
        total = max(1, matrix[r].sum())
        for c in range(cols):
            share = matrix[r, c] / total
            top_left = ((c + 1) * cell, (r + 1) * cell)
            bottom_right = ((c + 2) * cell - 1, (r + 2) * cell - 1)
            colour = (255 - int(200 * share),) * 2 + (255,) if r != c else (255 - int(150 * share), 255, 200)
            cv2.rectangle(image, top_left, bottom_right, colour, -1)
            if matrix[r, c]:
                cv2.putText(image, str(matrix[r, c]), (top_left[0] + 3, top_left[1] + 30), font, 0.4, (0, 0, 0), 1)
    return image


CURVE_ERROR_AXIS = 0.02
"""Error among ok rows at the right edge of ``draw_curves``' picture."""


def draw_curves(reports: list[SourceReport], size: tuple[int, int] = (900, 560)) -> np.ndarray:
    """A picture of each source's operating curve: read rate (up) against error among ok rows (right)."""
    width, height = size
    left, right, top, bottom = 70, 230, 35, 50
    image = np.full((height, width, 3), 255, np.uint8)
    plot_w, plot_h = width - left - right, height - top - bottom
    font = cv2.FONT_HERSHEY_SIMPLEX

    def at(error: float, rate: float) -> tuple[int, int]:
        x = left + round(min(error, CURVE_ERROR_AXIS) / CURVE_ERROR_AXIS * plot_w)
        return x, top + round((1 - rate) * plot_h)

    for tick in range(5):
        error, rate = CURVE_ERROR_AXIS * tick / 4, tick / 4
        cv2.line(image, at(error, 0), at(error, 1), (230, 230, 230), 1)
        cv2.line(image, at(0, rate), at(CURVE_ERROR_AXIS, rate), (230, 230, 230), 1)
        cv2.putText(image, f"{error:.1%}", (at(error, 0)[0] - 18, height - 30), font, 0.4, (0, 0, 0), 1)
        cv2.putText(image, f"{rate:.0%}", (20, at(0, rate)[1] + 4), font, 0.4, (0, 0, 0), 1)
    cv2.putText(image, "error among ok rows", (left + plot_w // 2 - 70, height - 10), font, 0.45, (0, 0, 0), 1)
    cv2.putText(image, "read rate", (5, 15), font, 0.45, (0, 0, 0), 1)
    for i, report in enumerate(reports):
        colour = tuple(int(c) for c in cv2.applyColorMap(np.uint8([[40 + 200 * i // max(1, len(reports))]]), 2)[0, 0])
        trace = report.curve.trace()
        points = np.array([at(error, rate) for error, rate in trace], np.int32)
        if len(points) > 1:
            cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        cv2.line(image, (width - right + 15, top + 20 * i + 10), (width - right + 35, top + 20 * i + 10), colour, 3)
        cv2.putText(image, report.source, (width - right + 40, top + 20 * i + 14), font, 0.4, (0, 0, 0), 1)
    return image
