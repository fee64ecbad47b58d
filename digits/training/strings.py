"""Train a string model (a line reader) and write it, with its metadata, into the model store.

It learns from the real cheque amounts of ORAND-CAR-A and the real row numbers of
parish registers (MGR, margins, rules, marks and letters included), jittered; from
amounts composed from single digits of every set, and from numbers of separated
digits as forms hold them, some of them coarsely scanned (``digits.training.amounts``).
A trained string model can go on learning from its own weights (``start``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digits.recognition.ctc import CLASSES as LINE_CLASSES
from digits.recognition.ctc import decode, greedy, log_softmax
from digits.store import ModelRef
from digits.training.amounts import (
    ELASTIC_SHARE,
    END_MARK_SHARE,
    batch_of_lines,
    coarse_line,
    compose_line,
    compose_number,
    encode_labels,
    jitter_real,
)
from digits.training.architectures import build_string_model, ctc_loss, widened
from digits.training.data import (
    SPLIT_SEED,
    RealLines,
    digit_crops,
    digit_pool,
    load_data,
    orand_split,
    register_lines,
)
from digits.training.prefetch import Prefetcher
from digits.training.saving import save_version

STRING_EPOCHS = 12
"""Passes of the string model's training."""


REAL_REPEATS = 6
"""Jittered copies of each real cheque amount per epoch, beside the composed lines.
Real amounts are the ink the model reads in service: repeated, they weigh more against
the composed ones, but a model that sees each too often learns them by heart
(docs/training.md says how the value was chosen)."""

COMPOSED_LINES = 20_000
"""Lines composed from single digits per epoch: amounts, and numbers (``NUMBERS_SHARE``)."""

NUMBERS_SHARE = 0.3
"""Share of the composed lines that are numbers of separated digits on plain paper (``compose_number``): forms
hold them, in every writer's hand, and a model that learnt only amounts misreads them."""

REGISTER_LINES = 24_000
"""Register row numbers in each pass at most, jittered afresh: every one of the 22,690 of MGR's training part.
They are what real archives hold (margins, rules, marks, letters), and a model that saw fewer fitted them worse."""

CONTINUE_EPOCHS = 8
"""Passes when a string model goes on from trained weights."""

CONTINUE_RATE = 3e-4
"""Learning rate a string model starts at when it goes on from trained weights (a fresh one starts at 1e-3)."""

COARSE_SHARE = 0.1
"""Share of the composed lines given as a coarse scan (``coarse_line``): thresholded to black and white at a low
resolution, as a fax or a scanner's line-art mode gives them."""


def train_strings(
    data_dir: Path,
    store: Path,
    epochs: int = STRING_EPOCHS,
    name: str = "digits-crnn",
    synthetic_per_epoch: int = COMPOSED_LINES,
    real_repeats: int = REAL_REPEATS,
    seed: int = SPLIT_SEED,
    real_lines: RealLines | None = None,
    start: ModelRef | None = None,
) -> ModelRef:
    """Train the line reader on real cheque amounts and register rows, plus lines composed from single digits.

    ``seed`` sets the weights' start and the data's order, so that models trained
    with different seeds make different mistakes and are worth combining.
    ``real_lines`` replaces ORAND-CAR-A's training amounts (a simulated site
    holds some back, ``digits.training.data.site_split``). ``start`` is a
    trained string model to go on from, at ``CONTINUE_RATE`` (``digits train``
    gives it ``CONTINUE_EPOCHS`` passes); the new version is of its name, and
    learns only the register rows ``start`` reads as labelled (``read_as_labelled``).
    """
    import keras

    started = time.monotonic()
    # 8x8 digits would make blurs of composed amounts; cheque digits have a pool of their own.
    split = load_data(data_dir, with_optdigits=False, with_cheque_digits=False)
    real, held = orand_split(data_dir)
    real = real if real_lines is None else real_lines
    registers = register_lines(data_dir, "train")
    begun = keras.models.load_model(start.path, compile=False) if start else None
    left_out = 0
    if begun is not None:
        registers, left_out = read_as_labelled(registers, begun)
    pools = (digit_crops(real), digit_pool(list(zip(split.train_x, split.train_y, strict=True))))
    register_count = min(REGISTER_LINES, len(registers.images))
    shared = {"real": real, "pools": pools, "real_repeats": real_repeats, "synthetic": synthetic_per_epoch,
              "numbers_share": NUMBERS_SHARE, "coarse_share": COARSE_SHARE, "registers": registers,
              "register_lines": register_count}  # fmt: skip
    lines_per_pass = len(real.images) * real_repeats + synthetic_per_epoch + register_count
    with Prefetcher(training_lines, shared, LINE_PARTS, seed, epochs) as passes:
        keras.utils.set_random_seed(seed)
        model = widened(begun, LINE_CLASSES) if begun is not None else build_string_model()
        schedule = keras.optimizers.schedules.CosineDecay(
            CONTINUE_RATE if start else 1e-3, epochs * (lines_per_pass // 64 + 1)
        )
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
        fit_line_passes(
            model, passes, epochs,
            after_pass=lambda: print(f"  held-out cheque amounts read exactly: {exact_share(model, held):.4f}"),
        )  # fmt: skip

    facts = {
        "architecture": "crnn",
        "data_seen": ["orand-car-a", *(["mgr-rowid"] if register_count else []), *split.seen],
        "training_lines_per_epoch": lines_per_pass,
        "register_lines_per_epoch": register_count,
        "register_lines_left_out": left_out,
        "real_amounts": len(real.images),
        "real_repeats": real_repeats,
        "numbers_share": NUMBERS_SHARE,
        "coarse_share": COARSE_SHARE,
        "end_mark_share": END_MARK_SHARE,
        "elastic_share": ELASTIC_SHARE,
        "epochs": epochs,
        "seed": seed,
    }
    if start:
        facts |= {"continued_from": start.label, "learning_rate": CONTINUE_RATE}
    registers_held = register_lines(data_dir, "validation")
    accuracies = {"orand-held-out": exact_share(model, held)}
    if registers_held.images:
        accuracies["mgr-rowid-validation"] = exact_share(model, registers_held)
    return save_version(model, start.name if start else name, store, started, facts, accuracies)


READ_ALONE_BATCH = 512
"""Lines prepared and read at a time when one string model reads them alone (``read_alone``)."""


def read_alone(model, images: list[np.ndarray]) -> np.ndarray:
    """The logits (lines, frames, classes) of ``model`` reading each grey line image alone: cleaned and prepared
    as in training, one view, no vote."""
    batches = [
        np.asarray(model.predict(batch_of_lines(images[start : start + READ_ALONE_BATCH]), verbose=0), np.float64)
        for start in range(0, len(images), READ_ALONE_BATCH)
    ]
    return np.concatenate(batches) if batches else np.zeros((0, 0, 0))


def read_as_labelled(lines: RealLines, model) -> tuple[RealLines, int]:
    """The rows of ``lines`` that ``model`` (a trained string model, alone, one view) reads as labelled, and how
    many it left out.

    A register row that a model which has learnt it already reads otherwise
    than labelled was mostly framed on other ink than its number (a date
    written below it, a tick above it, a cross after its underline). Learning
    that label from that picture teaches a model to read digits that are not
    there, and to read them surely.
    """
    logits = read_alone(model, lines.images)
    kept = [i for i, label in enumerate(lines.labels) if greedy(log_softmax(logits[i])) == label]
    chosen = RealLines(*([part[i] for i in kept] for part in (lines.images, lines.labels, lines.boxes)))
    return chosen, len(lines.images) - len(kept)


def fit_line_passes(model, passes: Prefetcher, epochs: int, say: Callable[[str], None] = print, name: str = "",
                    after_pass: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Fit a string model for ``epochs`` passes of the lines ``passes`` makes (``training_lines``)."""
    for epoch in range(epochs):
        parts = passes.parts_of(epoch)
        lines = np.concatenate([part_lines for part_lines, _ in parts])
        texts = [text for _, part_texts in parts for text in part_texts]
        say(f"{name}pass {epoch + 1}/{epochs} over {len(lines)} lines")
        model.fit(lines, encode_labels(texts), batch_size=64, epochs=1, verbose=2, shuffle=True)
        if after_pass:
            after_pass()


def exact_share(model, lines: RealLines) -> float:
    """Share of ``lines`` the string model reads exactly, alone (no views, no vote), rounded to 5 places."""
    read = [r.digits for r in decode([read_alone(model, lines.images)], whole=False)]
    return round(float(np.mean([a == b for a, b in zip(read, lines.labels, strict=True)])), 5)


LINE_PARTS = 8
"""Parts each pass of the string model's lines is made in (see ``digits.training.prefetch``)."""


def training_lines(shared: dict, rng: np.random.Generator, part: int) -> tuple[np.ndarray, list[str]]:
    """Model inputs and digit strings of one part of a pass: its share of real (jittered) and composed lines.

    ``shared`` holds the real lines and their ``real_repeats``, the digit pools, the ``synthetic`` lines to
    compose a pass, the shares of them that are ``numbers_share`` and ``coarse_share`` (0 when absent), and
    the ``registers`` rows of which ``register_lines`` are drawn each pass (none when absent).
    """

    real, (cheque_digits, other_digits) = shared["real"], shared["pools"]
    images, texts = [], []
    for image, label in list(zip(real.images, real.labels, strict=True))[part::LINE_PARTS]:
        images += [jitter_real(image, rng) for _ in range(shared["real_repeats"])]
        texts += [label] * shared["real_repeats"]
    registers = shared.get("registers")
    if registers is not None and registers.images:
        share = len(range(part, shared["register_lines"], LINE_PARTS))
        for i in rng.choice(len(registers.images), size=share, replace=False):
            images.append(jitter_real(registers.images[i], rng))
            texts.append(registers.labels[i])
    for _ in range(len(range(part, shared["synthetic"], LINE_PARTS))):
        if rng.random() < shared.get("numbers_share", 0.0):
            image, text = compose_number(other_digits, rng)
        else:
            # Cheque digits first: they are what the service reads most.
            image, text = compose_line(cheque_digits if rng.random() < 0.4 else other_digits, rng)
        if rng.random() < shared.get("coarse_share", 0.0):
            image = coarse_line(image, rng)
        images.append(image)
        texts.append(text)
    return batch_of_lines(images), texts
