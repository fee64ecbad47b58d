"""Fine-tune the models workers read with on reviewed fields (a corrections snapshot), as new versions in the store.

Each member of the current models starts from its own weights and learns, for a
few passes at a low rate, from the snapshot's training side mixed with the usual
training data, so that the site's writers are learnt and nothing learnt before
is forgotten. Single digits and comb fields teach the digit classifier; amounts
and other lines teach the string models. A model with too few examples of its
kind is left as it is.

The new versions' metadata names the snapshot's hash and the version each
started from; ``digits models promote`` decides whether they are rolled out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digits.corrections import COMB, DIGIT, HELD_OUT, LINE, TRAIN, Example, Snapshot
from digits.recognition.segment import find_digits
from digits.store import ModelRef, resolve_members
from digits.training.architectures import ctc_loss
from digits.training.augment import prepare
from digits.training.classifier import RECIPES, fit_passes
from digits.training.data import (
    ORAND_DIR,
    SPLIT_SEED,
    RealLines,
    digit_crops,
    digit_pool,
    load_data,
    orand_split,
)
from digits.training.prefetch import Prefetcher
from digits.training.saving import save_version
from digits.training.strings import LINE_PARTS, exact_share, fit_line_passes, training_lines

FINE_TUNE_EPOCHS = 3
"""Passes over the mix of corrections and usual data."""

LEARNING_RATE = 1e-4
"""A tenth of the rate the string models' training starts at (a twentieth of the CNNs'): the weights move toward
the corrections, not away from what they know."""

MIN_EXAMPLES = 20
"""Fewer corrections of a kind than this leave the models of that kind as they are."""

LINE_COPIES = 10
"""Jittered copies of each corrected line per pass (the usual real amounts get ``USUAL_REAL_COPIES``)."""

USUAL_REAL_COPIES = 2
"""Jittered copies of each usual real amount per pass, so that they are not forgotten."""

COMPOSED_LINES = 8000
"""Lines composed from single digits per pass: amounts as in training, and numbers (``NUMBERS_SHARE``)."""

NUMBERS_SHARE = 0.5
"""Share of the composed lines that are numbers of separated digits on plain paper (``compose_number``), so that
corrections from cheques do not make the string models forget other writers' separated digits."""

DIGIT_COPIES = 20
"""Copies of each corrected digit per pass, each distorted anew as in training."""

USUAL_DIGITS = 20_000
"""Usual training digits drawn (once, by a fixed seed) to mix with the corrected ones."""


@dataclass(frozen=True)
class FineTuned:
    """The versions written, by kind: empty where the models were left as they were."""

    classifiers: list[ModelRef]
    string_models: list[ModelRef]

    def candidate(self, model: str, string_model: str) -> str:
        """The spec to promote: the new versions, or the current ones where none were made."""
        digits = ",".join(ref.label for ref in self.classifiers) or model
        lines = ",".join(ref.label for ref in self.string_models) or string_model
        return ",".join(spec for spec in (digits, lines) if spec)


def fine_tune(
    snapshot: Snapshot,
    data_dir: Path,
    store: Path,
    model: str,
    string_model: str,
    epochs: int = FINE_TUNE_EPOCHS,
    usual_digits: int = USUAL_DIGITS,
    composed_lines: int = COMPOSED_LINES,
    real_lines: RealLines | None = None,
    say: Callable[[str], None] = print,
) -> FineTuned:
    """Fine-tune every member of ``model`` and ``string_model`` on ``snapshot``; the new versions.

    Args:
        snapshot: The corrections; only its training side is learnt from.
        data_dir: The usual training data (``mnist.npz`` at least) mixed in.
        store: The model store the members are read from and the new versions written to.
        model, string_model: The members' specs, as ``DIGITS_MODEL`` and ``DIGITS_STRING_MODEL``.
        real_lines: Replaces ORAND-CAR-A's training amounts as usual real amounts (a simulated site).
        say: Where progress goes.
    """
    digits = snapshot.of(TRAIN, (DIGIT, COMB))
    lines = snapshot.of(TRAIN, (LINE,))
    classifiers, string_models = [], []
    if len(digits) >= MIN_EXAMPLES:
        members = resolve_members(model, store)
        x, y = corrected_digits(snapshot, digits)
        say(f"digit classifiers: {len(y)} corrected digits from {len(digits)} fields, beside {usual_digits} usual ones")
        usual = _usual_digits(data_dir, usual_digits)
        for i, ref in enumerate(members):
            classifiers.append(_tune_classifier(ref, store, snapshot, x, y, usual, epochs, i, say))
    else:
        say(f"digit classifiers left as they are: {len(digits)} corrected digit fields, fewer than {MIN_EXAMPLES}")
    if string_model and len(lines) >= MIN_EXAMPLES:
        say(f"string models: {len(lines)} corrected lines, beside the usual real and composed amounts")
        shared = _line_mix(snapshot, lines, data_dir, composed_lines, real_lines)
        for i, ref in enumerate(resolve_members(string_model, store)):
            string_models.append(_tune_strings(ref, store, snapshot, shared, epochs, i, say))
    else:
        say(f"string models left as they are: {len(lines)} corrected lines, fewer than {MIN_EXAMPLES}")
    return FineTuned(classifiers, string_models)


def corrected_digits(snapshot: Snapshot, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Each digit of ``examples`` as an ink-high 28x28 uint8 image, cut as the pipeline cuts it, and its label.

    A field whose cutting does not give one piece per digit of its label is left
    out: which piece is which digit would be a guess.
    """
    images, labels = [], []
    for example in examples:
        gray = cv2.imread(str(snapshot.path(example)), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            continue
        found = find_digits(gray, as_one=len(example.label) == 1)
        if len(found) != len(example.label):
            continue
        images += [np.round(digit.image * 255).astype(np.uint8) for digit in found]
        labels += [int(c) for c in example.label]
    return np.array(images, np.uint8).reshape(-1, 28, 28), np.array(labels, np.int64)


def _usual_digits(data_dir: Path, count: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """``count`` usual training digits drawn by a fixed seed (images, labels), and the held-out sets."""
    split = load_data(data_dir)
    x, y = np.concatenate(split.train_x), np.concatenate(split.train_y).astype(np.int64)
    keep = np.random.default_rng(SPLIT_SEED).permutation(len(x))[:count]
    return x[keep], y[keep], split.held_out


def _tune_classifier(ref, store, snapshot, x, y, usual, epochs, member, say) -> ModelRef:
    """One classifier member fine-tuned on the corrected digits ``x, y`` among the ``usual`` ones; its new version."""
    import keras

    started = time.monotonic()
    usual_x, usual_y, held_out = usual
    raw_x = np.concatenate([usual_x, np.repeat(x, DIGIT_COPIES, axis=0)])
    labels = np.concatenate([usual_y, np.repeat(y, DIGIT_COPIES)])
    keras.utils.set_random_seed(SPLIT_SEED + member)
    model = keras.models.load_model(ref.path, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
    fit_passes(model, raw_x, labels, RECIPES["cnn"], SPLIT_SEED + member, epochs, say, name=f"{ref.label}: ")
    accuracies = _classifier_accuracies(model, held_out, snapshot)
    for source, value in accuracies.items():
        say(f"  held-out accuracy on {source}: {value:.4f}")
    facts = _facts(ref, snapshot, epochs, len(y)) | {"architecture": ref.metadata().get("architecture", "cnn")}
    return save_version(model, ref.name, store, started, facts, accuracies)


def _classifier_accuracies(model, held_out: dict, snapshot: Snapshot) -> dict[str, float]:
    sets = {source: (np.stack([prepare(raw) for raw in hx]), hy) for source, (hx, hy) in held_out.items()}
    x, y = corrected_digits(snapshot, snapshot.of(HELD_OUT, (DIGIT, COMB)))
    if len(y):
        sets["corrections-held-out"] = (np.stack([prepare(raw) for raw in x]), y)
    out = {}
    for source, (images, truth) in sets.items():
        predicted = np.argmax(model.predict(images[..., None], batch_size=512, verbose=0), axis=1)
        out[source] = round(float(np.mean(predicted == truth)), 5)
    return out


def _line_mix(snapshot, lines, data_dir, composed_lines, real_lines) -> dict:
    """What ``training_lines`` makes each pass from: corrected and usual real amounts, and composed ones."""
    images = [cv2.imread(str(snapshot.path(e)), cv2.IMREAD_GRAYSCALE) for e in lines]
    corrected = RealLines(
        images * (LINE_COPIES // USUAL_REAL_COPIES), [e.label for e in lines] * (LINE_COPIES // USUAL_REAL_COPIES), []
    )
    has_orand = (data_dir / ORAND_DIR / "labels.json").exists()
    usual = real_lines if real_lines is not None else orand_split(data_dir)[0] if has_orand else RealLines([], [], [])
    split = load_data(data_dir, with_optdigits=False, with_cheque_digits=False)
    pools = (digit_crops(usual), digit_pool(list(zip(split.train_x, split.train_y, strict=True))))
    if not pools[0]:
        pools = (pools[1], pools[1])
    real = RealLines(usual.images + corrected.images, usual.labels + corrected.labels, [])
    return {"real": real, "pools": pools, "real_repeats": USUAL_REAL_COPIES, "synthetic": composed_lines,
            "numbers_share": NUMBERS_SHARE}  # fmt: skip


def _tune_strings(ref, store, snapshot, shared, epochs, member, say) -> ModelRef:
    """One string model member fine-tuned on the lines ``shared`` describes (``_line_mix``); its new version."""
    import keras

    started = time.monotonic()
    keras.utils.set_random_seed(SPLIT_SEED + member)
    model = keras.models.load_model(ref.path, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=ctc_loss)
    with Prefetcher(training_lines, shared, LINE_PARTS, SPLIT_SEED + member, epochs) as passes:
        fit_line_passes(model, passes, epochs, say, name=f"{ref.label}: ")
    held = snapshot.of(HELD_OUT, (LINE,))
    accuracies = {}
    if held:
        images = [cv2.imread(str(snapshot.path(e)), cv2.IMREAD_GRAYSCALE) for e in held]
        accuracies["corrections-held-out"] = exact_share(model, RealLines(images, [e.label for e in held], []))
        say(f"  held-out corrected lines read exactly: {accuracies['corrections-held-out']:.4f}")
    facts = _facts(ref, snapshot, epochs, len(snapshot.of(TRAIN, (LINE,)))) | {"architecture": "crnn"}
    return save_version(model, ref.name, store, started, facts, accuracies)


def _facts(ref: ModelRef, snapshot: Snapshot, epochs: int, examples: int) -> dict:
    """What the metadata of a fine-tuned version says beyond ``save_version``'s own."""
    before = ref.metadata()
    return {
        "fine_tuned_from": ref.label,
        "corrections": snapshot.hash,
        "corrections_learnt": examples,
        "data_seen": sorted({*before.get("data_seen", []), f"corrections:{snapshot.hash[:12]}"}),
        "epochs": epochs,
        "learning_rate": LEARNING_RATE,
    }
