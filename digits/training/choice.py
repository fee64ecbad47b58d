"""Calibrate which reading stands where cutting and the string models disagree (``digits.recognition.choice``).

The weights are fitted on lines neither model learnt from, of every kind the
service reads: numbers of separated digits from the held-out writers of every
digit set (drawn anew, not the ``numbers-held-out`` files ``digits evaluate``
reads), amounts composed from those digits on cheque paper, touching now and
then, and the real cheque amounts of ORAND-CAR-A's training part. The string
models learnt those last ones, so their readings of them are surer than of a
new site's cheques: the fitted choice leans to the string models on cheques,
the safe side there.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from digits.recognition.choice import CHOICE_FILE, FEATURES, ReadingChoice, features
from digits.recognition.model import Models
from digits.recognition.pipeline import read_as_lines, read_by_cutting
from digits.training.amounts import compose_line
from digits.training.data import ORAND_DIR, SPLIT_SEED, digit_pool, orand_split
from digits.training.evaluate import held_out_writers, number_files

CALIBRATION_SEED = SPLIT_SEED + 7
"""Seed of the calibration lines: other numbers than those ``digits evaluate`` reads."""

NUMBERS = 3000
"""Numbers of separated digits drawn for the calibration."""

COMPOSED_AMOUNTS = 1500
"""Amounts composed on cheque paper for the calibration."""

L2 = 1.0
"""Weight of the penalty on the weights' size: a handful of features, a few hundred disagreements."""

BATCH = 64
"""Lines read together."""


def calibration_lines(data_dir: Path) -> list[tuple[np.ndarray, str, str]]:
    """(grey image, digits written, kind) of every calibration line."""
    writers = held_out_writers(data_dir)
    lines = []
    for sample in number_files(writers, NUMBERS, seed=CALIBRATION_SEED):
        image = cv2.imdecode(np.frombuffer(sample.data, np.uint8), cv2.IMREAD_GRAYSCALE)
        lines.append((image, sample.truth, "numbers"))
    pool = digit_pool(list(writers.values()))
    rng = np.random.default_rng(CALIBRATION_SEED)
    for _ in range(COMPOSED_AMOUNTS):
        image, text = compose_line(pool, rng)
        lines.append((image, text, "composed amounts"))
    if (data_dir / ORAND_DIR / "labels.json").exists():
        real = orand_split(data_dir)[0]
        lines += [(image, label, "real amounts") for image, label in zip(real.images, real.labels, strict=True)]
    return lines


def disagreements(lines: list[tuple[np.ndarray, str, str]], models: Models) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, whether cutting was right (1) or the string models (0), and kind, where they read several
    digits differently and one of them was right."""
    rows, right, kinds = [], [], []
    for start in range(0, len(lines), BATCH):
        chunk = lines[start : start + BATCH]
        images = [image for image, _, _ in chunk]
        for (_, truth, kind), cutting, line in zip(
            chunk, read_by_cutting(images, models), read_as_lines(images, models), strict=True
        ):
            several = len(cutting.digits) > 1 and line is not None and len(line.digits) > 1
            if not several or cutting.digits == line.digits or truth not in (cutting.digits, line.digits):
                continue
            rows.append(features(cutting, line))
            right.append(float(cutting.digits == truth))
            kinds.append(kind)
    return np.array(rows).reshape(-1, len(FEATURES)), np.array(right), kinds


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method, the bias unpenalised; (weights, bias)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(design.shape[1])
    penalty = np.diag([l2] * x.shape[1] + [0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (p - y) + penalty @ beta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def calibrate(data_dir: Path, store: Path, models: Models, say=print) -> ReadingChoice:
    """Fit the choice on the calibration lines read by ``models``; write it into ``store`` and return it."""
    lines = calibration_lines(data_dir)
    say(f"reading {len(lines)} calibration lines two ways")
    x, y, kinds = disagreements(lines, models)
    weights, bias = fit(x, y)
    calibrated_with = f"{models.classifier.label} + {models.reader.label if models.reader else ''}"
    choice = ReadingChoice(tuple(round(float(w), 5) for w in weights), round(bias, 5), calibrated_with)
    chosen = (x @ np.array(choice.weights) + choice.bias > 0).astype(float)
    summary = {}
    for kind in sorted(set(kinds)):
        mine = np.array([k == kind for k in kinds])
        summary[kind] = {
            "disagreements": int(mine.sum()),
            "cut_right": int(y[mine].sum()),
            "chosen_right": int((chosen[mine] == y[mine]).sum()),
        }
        say(f"{kind}: {summary[kind]['disagreements']} disagreements, cutting right in {summary[kind]['cut_right']}, "
            f"the choice right in {summary[kind]['chosen_right']}")  # fmt: skip
    saved = {
        "features": list(FEATURES),
        "weights": list(choice.weights),
        "bias": choice.bias,
        "calibrated_with": calibrated_with,
        "calibration": {"lines": dict(Counter(kind for _, _, kind in lines)), "disagreements": summary, "l2": L2,
                        "seed": CALIBRATION_SEED},
    }  # fmt: skip
    (Path(store) / CHOICE_FILE).write_text(json.dumps(saved, indent=2) + "\n")
    return choice
