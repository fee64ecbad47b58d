"""Train a digit model and write it, with its metadata, into the model store.

Every training digit goes through the same `normalise_digit` as a scanned one,
after a random distortion (slant, rotation, aspect, stroke width) so that the
model sees handwriting that is not MNIST's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digits.results import file_sha256
from worker import model_store
from worker.model import build
from worker.prefetch import Prefetcher
from worker.segment import PREPROCESSING_VERSION, ink_image, normalise_digit

HELD_OUT_FRACTION = 0.2
"""Share of each extra data set (USPS, ARDIS) kept aside for evaluation."""

SPLIT_SEED = 20261129
"""Fixed seed so the held-out split is the same in training and evaluation."""

EXTRA_SETS = {"usps": "usps-train.npz", "ardis": "ardis4-train.npz"}
"""Optional data sets read from the data folder when present (``x``, ``y``; ink high)."""

ORAND_DIR = "orand-car-a-train"
"""Folder of the real cheque amounts in the data folder."""

OPTDIGITS_REPEATS = 4
"""Copies of each optdigits training digit per epoch (each distorted anew): scikit-learn
ships only 1,797 of them, and their writers' 9s and 1s look like no one else's."""

ORAND_DIGIT_REPEATS = 4
"""Copies of each cheque digit (cut from the ORAND training amounts by its box) per epoch.
There are about 3,900 of them, and the CNNs that never saw one read 90% of the held-out ones."""


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
        from worker.strings import digit_arrays, orand_split  # worker.strings imports this module

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


def prepare(raw: np.ndarray) -> np.ndarray:
    """A raw ink-high digit image, normalised exactly as the pipeline does a scan."""
    ink = ink_image(raw)
    return normalise_digit(ink if ink is not None else np.zeros_like(raw))


def distort(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly slanted, rotated, stretched and thickened copy of a digit image.

    The image is enlarged 4x first so that a stroke can be thickened by a
    fraction of an MNIST pixel.
    """
    side = raw.shape[0] * 4
    big = cv2.resize(raw, (side, side), interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, side // 4, side // 4, side // 4, side // 4, cv2.BORDER_CONSTANT)
    centre = np.array([big.shape[1] / 2, big.shape[0] / 2])
    angle = np.radians(rng.uniform(-12, 12))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1.0, rng.uniform(-0.3, 0.3)], [0.0, 1.0]])
    stretch = np.diag([rng.uniform(0.75, 1.2), 1.0])
    linear = rotation @ shear @ stretch
    matrix = np.hstack([linear, (centre - linear @ centre)[:, None]])
    out = cv2.warpAffine(big, matrix, (big.shape[1], big.shape[0]), flags=cv2.INTER_LINEAR)
    stroke = int(rng.choice([-2, 0, 0, 2, 4]))
    if stroke > 0:
        out = cv2.dilate(out, np.ones((stroke, stroke), np.uint8))
    elif stroke < 0:
        thinner = cv2.erode(out, np.ones((-stroke, -stroke), np.uint8))
        if (thinner > 64).sum() > 0.5 * (out > 64).sum():
            out = thinner
    return out


def rescan(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit image as a scanner at another resolution would give it: resampled, maybe recompressed.

    Scans come at any size; a digit 20 pixels high loses strokes that one 100
    pixels high keeps, and JPEG adds its own ringing.
    """
    side = int(rng.integers(20, 120))
    scale = side / raw.shape[0]
    interpolation = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(3))]
    out = cv2.resize(raw, None, fx=scale, fy=scale, interpolation=interpolation)
    if rng.random() < 0.5:
        _, data = cv2.imencode(".jpg", 255 - out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))])
        out = 255 - cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return out


SMALL_BITMAP_INK = 30
"""Grey level (of 255) above which a pixel counts as ink when a digit is cut out for a small bitmap."""


def semeion_bitmap(raw: np.ndarray, threshold: float = 128, keep_shape: bool = False) -> np.ndarray:
    """A digit as Semeion kept its own: stretched to fill 16x16, binarised at a fixed threshold.

    ``raw`` is ink high; so is the result (0 or 255). ``keep_shape`` centres
    the digit on a square first instead of stretching it.
    """
    small = cv2.resize(_ink_crop(raw, keep_shape), (16, 16), interpolation=cv2.INTER_AREA)
    return np.where(small > threshold, 255, 0).astype(np.uint8)


def optdigits_bitmap(raw: np.ndarray, threshold: float = 128, keep_shape: bool = False) -> np.ndarray:
    """A digit as UCI optdigits keeps it: binarised at 32x32, its ink counted in 4x4 blocks (8x8, 0-16 made 0-255)."""
    bitmap = cv2.resize(_ink_crop(raw, keep_shape), (32, 32), interpolation=cv2.INTER_AREA) > threshold
    counts = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    return (counts * 255 // 16).astype(np.uint8)


def small_bitmap(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random `semeion_bitmap` or `optdigits_bitmap` of ``raw`` (unchanged if it has no ink).

    A "1" stretched to fill its box, or a digit 8 pixels high, looks like
    nothing in MNIST: before models saw such bitmaps, the default read 92.9%
    of Semeion-style digits (nearly every mistake a "1") and 97.1% of optdigits.
    """
    if not (raw > SMALL_BITMAP_INK).any():
        return raw
    keep_shape = rng.random() >= 0.5
    kind = semeion_bitmap if rng.random() < 0.5 else optdigits_bitmap
    return kind(raw, rng.uniform(90, 160), keep_shape)


def _ink_crop(raw: np.ndarray, keep_shape: bool) -> np.ndarray:
    """The inked part of ``raw``; with ``keep_shape``, centred on a square."""
    ys, xs = np.nonzero(raw > SMALL_BITMAP_INK)
    crop = raw[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    if not keep_shape:
        return crop
    side = max(crop.shape)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    return cv2.copyMakeBorder(
        crop, top, side - crop.shape[0] - top, left, side - crop.shape[1] - left, cv2.BORDER_CONSTANT
    )


@dataclass(frozen=True)
class Recipe:
    """How a digit classifier is trained."""

    epochs: int
    distorted_share: float
    """Share of digits given a fresh random `distort` each epoch."""
    rescanned_share: float
    """Share of digits given a fresh random `rescan` each epoch (after any distortion)."""
    small_share: float
    """Share of digits made a `small_bitmap` each epoch (after any distortion; always rescanned)."""
    extra_data: bool
    schedule: bool


RECIPES = {
    "cnn": Recipe(epochs=14, distorted_share=0.5, rescanned_share=0.5, small_share=0.1, extra_data=True, schedule=True),
    # The tutorial's way: MNIST only, as it is, three epochs of plain Adam.
    "seed-mlp": Recipe(
        epochs=3, distorted_share=0.0, rescanned_share=0.0, small_share=0.0, extra_data=False, schedule=False
    ),
}
"""Training recipe of each digit classifier architecture."""


def train(
    arch: str,
    data_dir: Path | None,
    store: Path,
    epochs: int | None = None,
    name: str | None = None,
    limit: int | None = None,
    seed: int = SPLIT_SEED,
) -> model_store.ModelRef:
    """Train a digit classifier, evaluate it on the held-out sets, save it as the next version.

    ``seed`` sets the weights' start and the distortions, as for ``train_strings``.
    """
    started = time.monotonic()
    recipe = RECIPES[arch]
    epochs = epochs or recipe.epochs
    split = load_data(data_dir, extra=recipe.extra_data)
    raw_x = np.concatenate(split.train_x)  # load_data brought every set to 28x28
    y = np.concatenate(split.train_y).astype(np.int64)
    if limit:
        keep = np.random.default_rng(SPLIT_SEED).permutation(len(raw_x))[:limit]
        raw_x, y = raw_x[keep], y[keep]
    parts = -(-len(raw_x) // DIGITS_PER_PART)
    with Prefetcher(_changed_digits, {"raw_x": raw_x, "recipe": recipe}, parts, seed, epochs) as passes:
        # The first pass's distortions are being made while the clean digits are prepared here.
        clean = np.stack([prepare(raw) for raw in raw_x])
        model = _compiled_classifier(arch, recipe, epochs, len(y), seed)
        for epoch in range(epochs):
            # Fresh distortions every epoch; the rest of the digits stay clean.
            x = clean.copy()
            for changed, images in passes.parts_of(epoch):
                x[changed] = images
            print(f"epoch {epoch + 1}/{epochs}")
            model.fit(x[..., None], y, batch_size=128, epochs=1, verbose=2, shuffle=True)

    accuracies = {}
    for source, (hx, hy) in split.held_out.items():
        images = np.stack([prepare(raw) for raw in hx])[..., None]
        predicted = np.argmax(model.predict(images, batch_size=512, verbose=0), axis=1)
        accuracies[source] = round(float(np.mean(predicted == hy)), 5)
        print(f"held-out accuracy on {source}: {accuracies[source]:.4f}")

    name = name or ("digits-cnn" if arch == "cnn" else f"digits-{arch}")
    facts = {
        "architecture": arch,
        "data_seen": split.seen,
        "training_digits": len(y),
        "epochs": epochs,
        "seed": seed,
        "recipe": asdict(recipe) | {"epochs": epochs},
    }
    return save_version(model, name, store, started, facts, accuracies)


def _compiled_classifier(arch: str, recipe: Recipe, epochs: int, digits: int, seed: int):
    """A fresh ``arch`` model compiled for ``recipe``, its weights drawn from ``seed``."""
    import keras

    keras.utils.set_random_seed(seed)  # before the weights are drawn
    model = build(arch)
    if recipe.schedule:
        steps = epochs * int(np.ceil(digits / 128))
        schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.02)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model


DIGITS_PER_PART = 4096
"""Digits in each part of a pass that a background process prepares (see ``worker.prefetch``)."""


def _changed_digits(shared: dict, rng: np.random.Generator, part: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and prepared images of the digits of ``part`` that are distorted or rescanned this pass."""
    recipe: Recipe = shared["recipe"]
    raw_x = shared["raw_x"][part * DIGITS_PER_PART : (part + 1) * DIGITS_PER_PART]
    distorted = rng.random(len(raw_x)) < recipe.distorted_share
    small = rng.random(len(raw_x)) < recipe.small_share
    rescanned = small | (rng.random(len(raw_x)) < recipe.rescanned_share)
    changed = np.flatnonzero(distorted | rescanned)
    images = np.empty((len(changed), *raw_x.shape[1:]), np.float32)
    for k, i in enumerate(changed):
        raw = distort(raw_x[i], rng) if distorted[i] else raw_x[i]
        raw = small_bitmap(raw, rng) if small[i] else raw
        images[k] = prepare(rescan(raw, rng) if rescanned[i] else raw)
    return part * DIGITS_PER_PART + changed, images


def save_version(model, name: str, store: Path, started: float, facts: dict, accuracies: dict) -> model_store.ModelRef:
    """Save ``model`` as the next version of ``name`` with its metadata beside it."""
    import keras

    Path(store).mkdir(parents=True, exist_ok=True)  # a new store: not a whole training run lost at the end
    version = model_store.next_version(name, store)
    path = Path(store) / f"{name}@{version}{model_store.MODEL_SUFFIX}"
    model.save(path)
    metadata = {
        "name": name,
        "version": version,
        **facts,
        "preprocessing_version": PREPROCESSING_VERSION,
        "held_out_accuracy": accuracies,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "training_seconds": round(time.monotonic() - started),
        "keras_version": keras.__version__,
        "sha256": file_sha256(path),
    }
    path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    return model_store.ModelRef(name, version, path)


def _pad_to_mnist(x: np.ndarray) -> np.ndarray:
    """Bring smaller digit images (USPS is 16x16) onto a 28x28 canvas."""
    if x.shape[1:] == (28, 28):
        return x
    out = np.zeros((len(x), 28, 28), np.uint8)
    h, w = x.shape[1:]
    top, left = (28 - h) // 2, (28 - w) // 2
    out[:, top : top + h, left : left + w] = x
    return out


STRING_EPOCHS = 14
"""Passes of the string model's training (about 2 min each on 2 cores)."""

REAL_REPEATS = 10
"""Jittered copies of each real cheque amount per epoch, beside 20,000 composed lines.
With 10 instead of 6, digits-crnn@3 read 87.5% of held-out amounts against 85.6%."""


def train_strings(
    data_dir: Path,
    store: Path,
    epochs: int = STRING_EPOCHS,
    name: str = "digits-crnn",
    synthetic_per_epoch: int = 20_000,
    real_repeats: int = REAL_REPEATS,
    seed: int = SPLIT_SEED,
) -> model_store.ModelRef:
    """Train the line reader on real cheque amounts plus amounts composed from single digits.

    ``seed`` sets the weights' start and the data's order, so that models trained
    with different seeds make different mistakes and are worth combining.
    """
    import keras

    from worker.ctc import decode
    from worker.model import build_string_model, ctc_loss
    from worker.strings import (
        ELASTIC_SHARE,
        END_MARK_SHARE,
        batch_of_lines,
        digit_crops,
        digit_pool,
        encode_labels,
        orand_split,
    )

    started = time.monotonic()
    # 8x8 digits would make blurs of composed amounts; cheque digits have a pool of their own.
    split = load_data(data_dir, with_optdigits=False, with_cheque_digits=False)
    real, held = orand_split(data_dir)
    pools = (digit_crops(real), digit_pool(list(zip(split.train_x, split.train_y, strict=True))))
    shared = {"real": real, "pools": pools, "real_repeats": real_repeats, "synthetic": synthetic_per_epoch}
    with Prefetcher(_training_lines, shared, LINE_PARTS, seed, epochs) as passes:
        keras.utils.set_random_seed(seed)
        model = build_string_model()
        batches = epochs * ((len(real.images) * real_repeats + synthetic_per_epoch) // 64 + 1)
        schedule = keras.optimizers.schedules.CosineDecay(1e-3, batches)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
        held_x = batch_of_lines(held.images)

        def exact_share() -> float:
            read = [r.digits for r in decode([np.asarray(model.predict(held_x, verbose=0))])]
            return round(float(np.mean([a == b for a, b in zip(read, held.labels, strict=True)])), 5)

        for epoch in range(epochs):
            parts = passes.parts_of(epoch)
            lines = np.concatenate([part_lines for part_lines, _ in parts])
            texts = [text for _, part_texts in parts for text in part_texts]
            print(f"epoch {epoch + 1}/{epochs}: {len(lines)} lines")
            model.fit(lines, encode_labels(texts), batch_size=64, epochs=1, verbose=2, shuffle=True)
            print(f"  held-out cheque amounts read exactly: {exact_share():.4f}")

    facts = {
        "architecture": "crnn",
        "data_seen": ["orand-car-a", *split.seen],
        "training_lines_per_epoch": len(real.images) * real_repeats + synthetic_per_epoch,
        "real_repeats": real_repeats,
        "end_mark_share": END_MARK_SHARE,
        "elastic_share": ELASTIC_SHARE,
        "epochs": epochs,
        "seed": seed,
    }
    return save_version(model, name, store, started, facts, {"orand-held-out": exact_share()})


LINE_PARTS = 8
"""Parts each pass of the string model's lines is made in (see ``worker.prefetch``)."""


def _training_lines(shared: dict, rng: np.random.Generator, part: int) -> tuple[np.ndarray, list[str]]:
    """Model inputs and digit strings of one part of a pass: its share of real (jittered) and composed amounts."""
    from worker.strings import batch_of_lines, compose_line, jitter_real

    real, (cheque_digits, other_digits) = shared["real"], shared["pools"]
    images, texts = [], []
    for image, label in list(zip(real.images, real.labels, strict=True))[part::LINE_PARTS]:
        images += [jitter_real(image, rng) for _ in range(shared["real_repeats"])]
        texts += [label] * shared["real_repeats"]
    for _ in range(len(range(part, shared["synthetic"], LINE_PARTS))):
        # Cheque digits first: they are what the service reads most.
        image, text = compose_line(cheque_digits if rng.random() < 0.4 else other_digits, rng)
        images.append(image)
        texts.append(text)
    return batch_of_lines(images), texts
