"""The training data: which sets are read from the data folder, and which part of each is held out.

The held-out part of every set is chosen by a fixed seed (``split_indices``), so
that training and ``digits evaluate`` always agree on it. The data folder's
layout is described in docs/training.md ("Training data").
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digits.recognition.ctc import SIGN
from digits.recognition.lines import ink_map
from digits.recognition.segment import normalise_digit

HELD_OUT_FRACTION = 0.2
"""Share of each extra data set (USPS, ARDIS) kept aside for evaluation."""


SPLIT_SEED = 20261129
"""Fixed seed so the held-out split is the same in training and evaluation."""


EXTRA_SETS = {"usps": "usps-train.npz", "ardis": "ardis4-train.npz"}
"""Optional data sets read from the data folder when present (``x``, ``y``; ink high)."""


ORAND_DIR = "orand-car-a-train"
"""Folder of the real cheque amounts in the data folder."""

REGISTER_DIR = "mgr-rowid"
"""Folder of the row numbers cut from parish registers (MGR) in the data folder: ``train/`` and, held out,
``validation/``, each with ``<part>-labels.json``."""


OPTDIGITS_REPEATS = 4
"""Copies of each optdigits training digit per epoch (each distorted anew): scikit-learn
ships only 1,797 of them, and their writers' 9s and 1s look like no one else's."""


ORAND_DIGIT_REPEATS = 4
"""Copies of each cheque digit (cut from the ORAND training amounts by its box) per epoch.
There are about 3,900 of them, and a CNN that never saw one reads them far worse than other sets' digits."""


@dataclass
class DataSplit:
    """Raw (ink-high uint8) training digits and held-out sets, by source."""

    train_x: list[np.ndarray] = field(default_factory=list)
    train_y: list[np.ndarray] = field(default_factory=list)
    held_out: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def add_extra(self, source: str, x: np.ndarray, y: np.ndarray, repeats: int = 1) -> None:
        """Learn from 80% of a set (each digit ``repeats`` times a pass); hold the rest out as ``<source>-held-out``."""
        held, train = split_indices(len(x))
        self.train_x.append(_pad_to_mnist(np.repeat(x[train], repeats, axis=0)))
        self.train_y.append(np.repeat(y[train], repeats))
        self.held_out[f"{source}-held-out"] = (x[held], y[held])
        self.seen.append(source)


def load_data(
    data_dir: Path | None, extra: bool = True, with_optdigits: bool = True, with_cheque_digits: bool = True
) -> DataSplit:
    """MNIST plus (if ``extra``) whichever extra sets are in ``data_dir``, and optdigits with scikit-learn.

    The cheque digits are those of the ORAND amounts, cut by their boxes; the
    digits of the held-out amounts are held out (``orand-digits-held-out``).

    Without a data folder, MNIST comes from keras' own downloader (needs network).
    """
    split = DataSplit()
    mnist_file = data_dir / "mnist.npz" if data_dir else None
    if mnist_file and mnist_file.exists():
        with np.load(mnist_file) as mnist:
            x_train, y_train = mnist["x_train"], mnist["y_train"]
            x_test, y_test = mnist["x_test"], mnist["y_test"]
    else:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    split.train_x.append(x_train)
    split.train_y.append(y_train)
    split.held_out["mnist-test"] = (x_test, y_test)
    split.seen.append("mnist")

    for source, file_name in EXTRA_SETS.items():
        path = data_dir / file_name if data_dir and extra else None
        if not path or not path.exists():
            continue
        with np.load(path) as data:
            split.add_extra(source, data["x"], data["y"])
    optdigits = load_optdigits() if extra and with_optdigits else None
    if optdigits is not None:
        split.add_extra("optdigits", *optdigits, repeats=OPTDIGITS_REPEATS)
    if extra and with_cheque_digits and data_dir and (data_dir / ORAND_DIR / "labels.json").exists():
        lines, held_lines = orand_split(data_dir)
        x, y = digit_arrays(lines)
        split.train_x.append(np.repeat(x, ORAND_DIGIT_REPEATS, axis=0))
        split.train_y.append(np.repeat(y, ORAND_DIGIT_REPEATS))
        split.held_out["orand-digits-held-out"] = digit_arrays(held_lines)
        split.seen.append("orand-car-a-digits")
    return split


def load_optdigits() -> tuple[np.ndarray, np.ndarray] | None:
    """UCI optdigits as scikit-learn ships it (1,797 digits, 8x8 ink counts made 0-255); None without it."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    digits = load_digits()
    return np.round(digits.images * 255 / 16).astype(np.uint8), digits.target.astype(np.uint8)


def split_indices(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices of an extra data set; the same in every run."""
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    n_held = int(count * HELD_OUT_FRACTION)
    return order[:n_held], order[n_held:]


def _pad_to_mnist(x: np.ndarray) -> np.ndarray:
    """Bring smaller digit images (USPS is 16x16) onto a 28x28 canvas."""
    if x.shape[1:] == (28, 28):
        return x
    out = np.zeros((len(x), 28, 28), np.uint8)
    h, w = x.shape[1:]
    top, left = (28 - h) // 2, (28 - w) // 2
    out[:, top : top + h, left : left + w] = x
    return out


@dataclass
class RealLines:
    """Cheque amount images (grey, as scanned), their digit strings and each digit's box."""

    images: list[np.ndarray]
    labels: list[str]
    boxes: list[list[tuple[int, int, int, int]]]
    """Per line, (x, y, w, h) of each digit, left to right, in the order of its label."""


def orand_split(data_dir: Path) -> tuple[RealLines, RealLines]:
    """(training lines, held-out lines) of ORAND-CAR-A, with each digit's box."""
    folder = data_dir / ORAND_DIR
    labels = json.loads((folder / "labels.json").read_text())
    names = sorted(labels)
    held, train = split_indices(len(names))
    coco = json.loads((folder / "boxes-coco.json").read_text())
    by_name = {image["file_name"]: image["id"] for image in coco["images"]}
    boxes: dict[int, list] = {}
    for annotation in coco["annotations"]:
        boxes.setdefault(annotation["image_id"], []).append(tuple(int(v) for v in annotation["bbox"]))

    def lines(indices: np.ndarray) -> RealLines:
        picked = [names[i] for i in sorted(indices)]
        return RealLines(
            [cv2.imread(str(folder / "images" / name), cv2.IMREAD_GRAYSCALE) for name in picked],
            [labels[name] for name in picked],
            [sorted(boxes.get(by_name.get(name, -1), [])) for name in picked],
        )

    return lines(train), lines(held)


SITE_SHARE = 0.5
"""Share of ORAND-CAR-A's training amounts that ``site_split`` holds back as a simulated site's own cheques."""


def site_split(lines: RealLines) -> tuple[RealLines, RealLines]:
    """(the rest, the site's cheques): ``lines`` split in two by a fixed seed, to simulate a site.

    A model trained on the rest has never seen the site's writers; the site's
    cheques then go through the service and the review station as a site's
    would (``bench/site.py``).
    """
    order = np.random.default_rng(SPLIT_SEED + 1).permutation(len(lines.images))
    site = set(order[: int(len(order) * SITE_SHARE)].tolist())

    def part(keep: bool) -> RealLines:
        picked = [i for i in range(len(lines.images)) if (i in site) != keep]
        return RealLines(
            [lines.images[i] for i in picked], [lines.labels[i] for i in picked], [lines.boxes[i] for i in picked]
        )

    return part(True), part(False)


def digit_crops(lines: RealLines) -> list[tuple[np.ndarray, int]]:
    """Each boxed digit of ``lines`` as (ink map float32, label), its neighbours' strokes cut away."""
    digits = []
    for gray, label, boxes in zip(lines.images, lines.labels, lines.boxes, strict=True):
        ink = ink_map(gray)
        for (x, y, w, h), digit in zip(boxes, label, strict=True):
            crop = _without_neighbours(ink[y : y + h, x : x + w])
            if crop.size and h >= 8:
                digits.append((crop, int(digit)))
    return digits


def digit_arrays(lines: RealLines) -> tuple[np.ndarray, np.ndarray]:
    """``digit_crops`` as MNIST-like (n, 28, 28) ink-high uint8 images and their labels."""
    crops = digit_crops(lines)
    images = [np.round(normalise_digit(np.round(crop * 255).astype(np.uint8)) * 255) for crop, _ in crops]
    return np.array(images, np.uint8).reshape(-1, 28, 28), np.array([label for _, label in crops], np.uint8)


def digit_pool(arrays: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, int]]:
    """Single digits as (ink map float32, label), like ``digit_crops``, from ink-high uint8 arrays."""
    pool = []
    for images, labels in arrays:
        for image, label in zip(images, labels, strict=True):
            ys, xs = np.nonzero(image > 30)
            if len(ys):
                crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
                pool.append((crop, int(label)))
    return pool


def _without_neighbours(crop: np.ndarray) -> np.ndarray:
    """A digit's box without the strokes of its neighbours that reach in at the sides."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((crop > 0.3).astype(np.uint8), connectivity=8)
    if count <= 2:
        return crop
    largest = stats[1:, cv2.CC_STAT_AREA].max()
    keep = np.zeros(count, bool)
    for i in range(1, count):
        left, width, area = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_AREA]
        at_side = left == 0 or left + width == crop.shape[1]
        keep[i] = area == largest or not (at_side and area < 0.4 * largest)
    # Faint pixels (below the component threshold) stay only next to kept strokes.
    near = cv2.dilate(keep[labels].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return np.where(near, crop, 0).astype(np.float32)


def register_lines(data_dir: Path, part: str) -> RealLines:
    """The register row numbers of ``part`` (``train``, or ``validation``: held out), grey, as the archive cut them.

    Labels are as written, with each character that is no digit (the letter
    of "12a", a dash or a ditto mark standing for a number) as ``SIGN``: the
    string model learns to see them, and the pipeline sends them to a person.
    Empty when the folder is absent.
    """
    folder = data_dir / REGISTER_DIR
    labels_file = folder / f"{part}-labels.json"
    if not labels_file.exists():
        return RealLines([], [], [])
    labels = json.loads(labels_file.read_text())
    names = sorted(labels)
    return RealLines(
        [cv2.imread(str(folder / part / name), cv2.IMREAD_GRAYSCALE) for name in names],
        [as_signs(labels[name]) for name in names],
        [[] for _ in names],
    )


def as_signs(label: str) -> str:
    """A label as written, each character that is no digit made ``SIGN`` (spaces dropped)."""
    return "".join(c if c.isdigit() else SIGN for c in label.strip() if not c.isspace())


FORMS_DIR = "c1-forms-sample"
"""Folder of the photographed C1 tally forms in the data folder: ``images/*.jpg`` and ``labels.json``."""

FORMS_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "c1" / "c1.toml"
"""The layout written for the C1 form from one sample (docs/forms.md); absent from an installed package."""

FORMS_SAMPLE = "TPS_041.jpg"
"""The photo the example layout was drawn from: its reference, in neither part of the split."""

CROSS_WIDTH = 12
"""Pixels of a (28, 28) box cut a cross spans across, at least."""

CROSS_COVERAGE = 0.7
"""Share of each diagonal of its box a cross's ink covers, at least."""

MIN_BOX_INK = 40
"""Inked pixels of a (28, 28) box cut, at least, for it to be taught as the digit its label says."""

FORMS_HELD_OUT = 0.5
"""Share of the other C1 photos held out: there are only 39, and each held-out one is three fields."""


def forms_layout(data_dir: Path):
    """The example C1 layout with its reference image from the data folder (None without either).

    The reference is shared data, never in the repository: it is copied beside
    a copy of the layout, in a temporary folder kept for the process.
    """
    from digits.layouts import load_layout

    sample = data_dir / FORMS_DIR / "images" / FORMS_SAMPLE
    if not FORMS_EXAMPLE.exists() or not sample.exists():
        return None
    folder = Path(tempfile.mkdtemp(prefix="digits-c1-"))
    shutil.copy(FORMS_EXAMPLE, folder)
    shutil.copy(sample, folder / "c1-sample.jpg")
    return load_layout(FORMS_EXAMPLE.stem, folder)


def forms_split(data_dir: Path) -> tuple[list[str], list[str]]:
    """(training, held-out) names of the C1 photos but the reference, by a fixed seed; empty without them."""
    labels_file = data_dir / FORMS_DIR / "labels.json"
    if not labels_file.exists():
        return [], []
    names = [name for name in sorted(json.loads(labels_file.read_text())) if name != FORMS_SAMPLE]
    order = np.random.default_rng(SPLIT_SEED + 2).permutation(len(names))
    held = int(len(names) * FORMS_HELD_OUT)
    return sorted(names[i] for i in order[held:]), sorted(names[i] for i in order[:held])


def form_boxes(data_dir: Path, names: list[str], layout) -> tuple[np.ndarray, np.ndarray]:
    """The comb boxes of C1 photos as raw (28, 28) ink-high images and their classes, cut as the pipeline cuts them.

    A count's digits fill its boxes from the right. A leading box is crossed
    out or holds a written 0, which the labels do not tell apart: one whose ink
    runs along both diagonals is a cross (``NOT_A_DIGIT``), one that encloses a
    hole a 0, and one that is neither is left out. So is a written box whose
    cut holds too little ink for its digit (a registration a little off cuts
    a frame's remains or a speck), and a written 0 that encloses no hole.
    """
    from digits.recognition.model import NOT_A_DIGIT
    from digits.recognition.pipeline import areas_of, fitted, open_document
    from digits.recognition.segment import find_pieces
    from digits.training.marks import holes

    folder = data_dir / FORMS_DIR / "images"
    labels = json.loads((folder.parent / "labels.json").read_text())
    images, classes = [], []
    for name in names:
        document = fitted(open_document((folder / name).read_bytes(), name, "training", layout))
        areas = areas_of(document.pages, layout)
        for box_field, count in zip(layout.fields, labels[name], strict=True):
            cells = [area for area in areas if area.field is box_field]
            digits = str(int(count))
            for k, area in enumerate(cells):
                pieces = find_pieces(area.image, area.framed)
                if pieces is None:
                    continue
                image = np.round(pieces.digits(as_one=True)[0].image * 255).astype(np.uint8)
                written = k - (len(cells) - len(digits))
                digit = int(digits[written]) if written >= 0 else None
                if digit is not None and (digit != 0 or holes(image) == 1) and (image > 80).sum() >= MIN_BOX_INK:
                    images.append(image)
                    classes.append(digit)
                elif digit is None and (_is_cross(image) or holes(image) == 1):
                    images.append(image)
                    classes.append(NOT_A_DIGIT if _is_cross(image) else 0)
    return np.array(images, np.uint8).reshape(-1, 28, 28), np.array(classes, np.int64)


def _is_cross(image: np.ndarray) -> bool:
    """Whether the ink of a digit image runs along both diagonals of its box, as a cross's does."""
    ys, xs = np.nonzero(image > 80)
    if not len(ys) or xs.max() - xs.min() + 1 < CROSS_WIDTH:
        return False  # a lone stroke runs along both diagonals of its own narrow box
    ink = cv2.dilate((image > 80).astype(np.uint8), np.ones((3, 3), np.uint8))
    t = np.linspace(0, 1, 40)
    down = ink[
        np.round(ys.min() + t * (ys.max() - ys.min())).astype(int),
        np.round(xs.min() + t * (xs.max() - xs.min())).astype(int),
    ]
    up = ink[
        np.round(ys.max() - t * (ys.max() - ys.min())).astype(int),
        np.round(xs.min() + t * (xs.max() - xs.min())).astype(int),
    ]
    return down.mean() >= CROSS_COVERAGE and up.mean() >= CROSS_COVERAGE
