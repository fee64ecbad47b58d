"""The default classifier's own rate: the bound the service's speed is measured against.

    python -m bench.model_only FILE... > rate.json

Cuts the digits from the files first (untimed), then classifies them with the
classifier ensemble of the settings (``DIGITS_MODEL``) in one process, in
batches of 64 28x28 digits (``LARGEST_BATCH``, as a worker calls them), each
member through Keras' ``predict_on_batch``, their probabilities averaged: the
model's work and nothing else. Passes over the digits go on for at least ``SECONDS``. Prints
JSON: ``{"digits": …, "seconds": …, "digits_per_second": …}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

SECONDS = 5.0
"""Least time spent classifying, so that a short set is timed over several passes."""


def cut_digits(files: list[Path]) -> np.ndarray:
    """Every digit cut from ``files``, as the (n, 28, 28, 1) float32 batch the classifier takes."""
    from digits.recognition.imaging import decode_pages
    from digits.recognition.segment import find_digits

    images = [digit.image for path in files for page in decode_pages(path.read_bytes()) for digit in find_digits(page)]
    return np.stack(images).astype(np.float32)[..., np.newaxis]


def classify(members: list, digits: np.ndarray) -> np.ndarray:
    """The ensemble's averaged probabilities for ``digits``, ``LARGEST_BATCH`` at a time (``model.predict``)."""
    from digits.recognition.model import predict

    return np.mean([predict(member, digits) for member in members], axis=0)


def main() -> None:
    from digits.recognition.model import import_keras
    from digits.settings import get_settings
    from digits.store import resolve_members

    settings = get_settings()
    keras = import_keras()
    refs = resolve_members(settings.model, settings.model_store)
    members = [keras.models.load_model(ref.path, compile=False) for ref in refs]
    digits = cut_digits([Path(name) for name in sys.argv[1:]])
    classify(members, digits)  # traces each batch size once
    passes, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        classify(members, digits)
        passes += 1
    seconds = time.perf_counter() - started
    count = passes * len(digits)
    print(json.dumps({"digits": count, "seconds": round(seconds, 2), "digits_per_second": round(count / seconds, 1)}))


if __name__ == "__main__":
    main()
