"""Save a trained model as the next version in the model store, with its metadata beside it."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from digits.recognition.segment import PREPROCESSING_VERSION
from digits.results import file_sha256
from digits.store import MODEL_SUFFIX, ModelRef, next_version


def save_version(model, name: str, store: Path, started: float, facts: dict, accuracies: dict) -> ModelRef:
    """Save ``model`` as the next version of ``name`` with its metadata beside it."""
    import keras

    Path(store).mkdir(parents=True, exist_ok=True)  # a new store: not a whole training run lost at the end
    version = next_version(name, store)
    path = Path(store) / f"{name}@{version}{MODEL_SUFFIX}"
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
    return ModelRef(name, version, path)
