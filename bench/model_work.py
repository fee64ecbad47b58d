"""Where a file's reading time goes in one pool process: the classifier's calls, the string models', the rest.

    python -m bench.model_work FILE... > work.json

Reads the files as a worker's pool process does (one TensorFlow thread, batches
of ``DIGITS_BATCH_SIZE``, the settings' models), timing every model call. Prints
JSON, per file: ``ms`` in all, ``classifier_ms`` and ``string_models_ms`` (their
calls), ``rest_ms`` (decoding, cutting, voting, rows), and how many inputs each
model took (``classifier_inputs``, ``string_model_inputs``; each member counts,
padding included). Together with ``bench.model_only`` it bounds the service's
rate against the model alone: the service does at least this work per file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

WARM_FILES = 64
"""Files read first, untimed, so that each model's padded sizes are traced before timing."""


def main() -> None:
    from digits.recognition import model as models_module
    from digits.recognition.pipeline import open_document, recognize_documents
    from digits.recognition.segment import CANVAS
    from digits.settings import get_settings

    models_module.limit_threads(1)  # as each of a 2-core machine's two pool processes
    settings = get_settings()
    loaded = models_module.get_models(settings)
    loaded.warm_up(models_module.PADDED_SIZES)
    spent = {"classifier": 0.0, "string_models": 0.0}
    inputs = {"classifier": 0, "string_models": 0}
    predict, padded = models_module.predict, models_module.padded
    fed = [0]  # inputs the current model call was given, padding included

    def counted(batch: np.ndarray) -> np.ndarray:
        batch = padded(batch)
        fed[0] += len(batch)
        return batch

    def timed(model, batch: np.ndarray) -> np.ndarray:
        fed[0] = 0
        started = time.perf_counter()
        out = predict(model, batch)
        which = "classifier" if tuple(model.input_shape[1:3]) == (CANVAS, CANVAS) else "string_models"
        spent[which] += time.perf_counter() - started
        inputs[which] += fed[0]
        return out

    # The classifier and the string reader call predict, and predict calls padded, by their module names.
    models_module.predict, models_module.padded = timed, counted
    files = [Path(name).read_bytes() for name in sys.argv[1:]]
    size = settings.batch_size
    batches = [files[start : start + size] for start in range(0, len(files), size)]

    def read(batch: list[bytes]) -> None:
        documents = [open_document(data, f"{i}.png", "bench") for i, data in enumerate(batch)]
        recognize_documents(documents, loaded, settings.review_threshold)

    read(files[:WARM_FILES])
    spent.update(classifier=0.0, string_models=0.0)
    inputs.update(classifier=0, string_models=0)
    started = time.perf_counter()
    for batch in batches:
        read(batch)
    seconds = time.perf_counter() - started
    count = len(files)

    def per_file(value: float) -> float:
        return round(1000 * value / count, 3)

    print(json.dumps({
        "files": count,
        "ms": per_file(seconds),
        "classifier_ms": per_file(spent["classifier"]),
        "string_models_ms": per_file(spent["string_models"]),
        "rest_ms": per_file(seconds - spent["classifier"] - spent["string_models"]),
        "classifier_inputs": round(inputs["classifier"] / count, 3),
        "string_model_inputs": round(inputs["string_models"] / count, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
