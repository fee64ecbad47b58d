"""Train a digit classifier and write it, with its metadata, into the model store.

Every training digit goes through the same ``normalise_digit`` as a scanned one,
after a random distortion (slant, rotation, aspect, stroke width), a rescan, a
small bitmap or a coarse scan (``digits.training.augment``), so that the model
sees handwriting that is not MNIST's. The CNN also learns ink that is no digit
as a class of its own (``digits.training.marks``). A trained classifier can also
go on from its own weights with the current recipe (``start``), at a tenth of the
rate, growing the class for marks if it had none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from digits.recognition.model import CLASSES, NOT_A_DIGIT
from digits.recognition.segment import CANVAS
from digits.store import ModelRef
from digits.training.architectures import build, widened
from digits.training.augment import coarse_scan, distort, prepare, rescan, small_bitmap
from digits.training.data import SPLIT_SEED, form_boxes, forms_layout, forms_split, load_data, register_lines
from digits.training.marks import drawn_marks, register_marks
from digits.training.prefetch import Prefetcher
from digits.training.saving import save_version
from digits.training.styles import block_digits


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
    coarse_share: float = 0.0
    """Share of digits given a `coarse_scan` each epoch (after any distortion; never rescanned: it is a scan)."""
    marks_share: float = 0.0
    """Marks (``NOT_A_DIGIT``) added, as a share of the digits: drawn ones, and the register's real ones."""
    block_share: float = 0.0
    """Block digits (``digits.training.styles``) added, as a share of the digits."""


RECIPES = {
    "cnn": Recipe(
        epochs=12,
        distorted_share=0.5,
        rescanned_share=0.5,
        small_share=0.1,
        extra_data=True,
        schedule=True,
        coarse_share=0.1,
        marks_share=0.08,
        block_share=0.08,
    ),
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
    start: ModelRef | None = None,
) -> ModelRef:
    """Train a digit classifier, evaluate it on the held-out sets, save it as the next version.

    ``seed`` sets the weights' start and the distortions, as for ``train_strings``.
    ``start`` is a trained classifier to go on from (its weights, at
    ``CONTINUE_RATE``) instead of fresh weights; the new version is of its name.
    """
    started = time.monotonic()
    recipe = RECIPES[arch]
    epochs = epochs or recipe.epochs
    split = load_data(data_dir, extra=recipe.extra_data)
    raw_x = np.concatenate(split.train_x)  # load_data brought every set to 28x28
    y = np.concatenate(split.train_y).astype(np.int64)
    digits = len(y)
    if recipe.block_share:
        blocks, labels = block_digits(int(recipe.block_share * digits), np.random.default_rng([seed, 2]))
        raw_x, y = np.concatenate([raw_x, blocks]), np.concatenate([y, labels])
        split.seen.append("drawn block digits")
    if recipe.marks_share:
        marks = training_marks(data_dir, int(recipe.marks_share * digits), seed)
        raw_x, y = np.concatenate([raw_x, marks]), np.concatenate([y, np.full(len(marks), NOT_A_DIGIT)])
        split.seen.append("drawn marks")
    layout = forms_layout(data_dir) if recipe.extra_data and data_dir else None
    if layout is not None:
        boxes, classes = form_boxes(data_dir, forms_split(data_dir)[0], layout)
        raw_x = np.concatenate([raw_x, np.repeat(boxes, FORM_BOX_REPEATS, axis=0)])
        y = np.concatenate([y, np.repeat(classes, FORM_BOX_REPEATS)])
        split.seen.append("c1-forms-sample (training half)")
    if limit:
        keep = np.random.default_rng(SPLIT_SEED).permutation(len(raw_x))[:limit]
        raw_x, y = raw_x[keep], y[keep]
    model = (
        continued_classifier(start, epochs, len(y))
        if start
        else compiled_classifier(arch, recipe, epochs, len(y), seed)
    )
    fit_passes(model, raw_x, y, recipe, seed, epochs)

    accuracies = {}
    for source, (hx, hy) in split.held_out.items():
        images = np.stack([prepare(raw) for raw in hx])[..., None]
        predicted = np.argmax(model.predict(images, batch_size=512, verbose=0), axis=1)
        accuracies[source] = round(float(np.mean(predicted == hy)), 5)
        print(f"held-out accuracy on {source}: {accuracies[source]:.4f}")

    name = name or (start.name if start else "digits-cnn" if arch == "cnn" else f"digits-{arch}")
    facts = {
        "architecture": arch,
        "data_seen": split.seen,
        "training_digits": len(y),
        "epochs": epochs,
        "seed": seed,
        "recipe": asdict(recipe) | {"epochs": epochs},
    }
    if start:
        facts |= {"continued_from": start.label, "learning_rate": CONTINUE_RATE}
    return save_version(model, name, store, started, facts, accuracies)


def fit_passes(model, raw_x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int, epochs: int,
               say: Callable[[str], None] = print, name: str = "") -> None:  # fmt: skip
    """Fit ``model`` for ``epochs`` passes over the raw digits, each pass with fresh distortions of ``recipe``'s share.

    The distortions are made by background processes (``Prefetcher``), the
    first pass's while the clean digits are prepared here; the rest of the
    digits stay clean.
    """
    parts = -(-len(raw_x) // DIGITS_PER_PART)
    with Prefetcher(changed_digits, {"raw_x": raw_x, "recipe": recipe}, parts, seed, epochs) as passes:
        clean = np.stack([prepare(raw) for raw in raw_x])
        for epoch in range(epochs):
            x = clean.copy()
            for changed, images in passes.parts_of(epoch):
                x[changed] = images
            say(f"{name}pass {epoch + 1}/{epochs} over {len(y)} digits")
            model.fit(x[..., None], y, batch_size=128, epochs=1, verbose=2, shuffle=True)


def compiled_classifier(arch: str, recipe: Recipe, epochs: int, digits: int, seed: int):
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


CONTINUE_EPOCHS = 3
"""Passes when a classifier goes on from trained weights."""

CONTINUE_RATE = 2e-4
"""Learning rate a classifier starts at when it goes on from trained weights: a tenth of a fresh one's, so that
it learns what the recipe added without forgetting what it knows."""


def continued_classifier(start: ModelRef, epochs: int, digits: int):
    """The trained classifier ``start``, compiled to go on learning at ``CONTINUE_RATE``, decaying over ``epochs``."""
    import keras

    model = widened(keras.models.load_model(start.path, compile=False), CLASSES)
    schedule = keras.optimizers.schedules.CosineDecay(CONTINUE_RATE, epochs * int(np.ceil(digits / 128)), alpha=0.1)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def training_marks(data_dir: Path | None, count: int, seed: int) -> np.ndarray:
    """Raw marks to learn as ``NOT_A_DIGIT``: the register rows' that hold no digit, and drawn ones to ``count``."""
    real = np.zeros((0, CANVAS, CANVAS), np.uint8)
    if data_dir is not None:
        rows = register_lines(data_dir, "train")
        real = register_marks([image for image, label in zip(rows.images, rows.labels, strict=True)
                               if label and not any(c.isdigit() for c in label)])  # fmt: skip
    drawn = drawn_marks(max(0, count - len(real)), np.random.default_rng([seed, 1]))
    return np.concatenate([real, drawn])


FORM_BOX_REPEATS = 25
"""Copies of each box of the C1 training photos per pass (each distorted anew): there are under 200 of them,
in the block hand and with the crosses that forms like it hold."""


DIGITS_PER_PART = 4096
"""Digits in each part of a pass that a background process prepares (see ``digits.training.prefetch``)."""


def changed_digits(shared: dict, rng: np.random.Generator, part: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and prepared images of the digits of ``part`` that are distorted or rescanned this pass."""
    recipe: Recipe = shared["recipe"]
    raw_x = shared["raw_x"][part * DIGITS_PER_PART : (part + 1) * DIGITS_PER_PART]
    distorted = rng.random(len(raw_x)) < recipe.distorted_share
    small = rng.random(len(raw_x)) < recipe.small_share
    coarse = ~small & (rng.random(len(raw_x)) < recipe.coarse_share)
    rescanned = small | (~coarse & (rng.random(len(raw_x)) < recipe.rescanned_share))
    changed = np.flatnonzero(distorted | rescanned | coarse)
    images = np.empty((len(changed), *raw_x.shape[1:]), np.float32)
    for k, i in enumerate(changed):
        raw = distort(raw_x[i], rng) if distorted[i] else raw_x[i]
        raw = small_bitmap(raw, rng) if small[i] else raw
        raw = coarse_scan(raw, rng) if coarse[i] else raw
        images[k] = prepare(rescan(raw, rng) if rescanned[i] else raw)
    return part * DIGITS_PER_PART + changed, images
