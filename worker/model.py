"""The Keras models: their architectures, and loading one once per process.

TensorFlow is imported here and only here (and in training), so that nothing
that merely queues work pays its start-up time or memory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from worker.model_store import ModelRef, resolve
from worker.segment import CANVAS

ARCHITECTURES = ("cnn", "seed-mlp")
"""What `digits train --arch` accepts; the CNN is the default."""

_cache: dict[str, Classifier] = {}
_cache_lock = threading.Lock()


def build(arch: str):
    """A fresh, compiled model of the named architecture, input (28, 28, 1) in [0, 1]."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(CANVAS, CANVAS, 1))
    if arch == "seed-mlp":
        # The tutorial's network, kept as the baseline in reports.
        x = layers.Flatten()(inputs)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dense(128, activation="relu")(x)
    elif arch == "cnn":
        x = inputs
        for filters in (32, 64):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.Activation("relu")(x)
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.4)(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name=arch)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Classifier:
    """A loaded model that turns a batch of 28x28 digit images into probabilities."""

    def __init__(self, ref: ModelRef) -> None:
        import keras

        self.ref = ref
        self.label = ref.label
        self._model = keras.models.load_model(ref.path, compile=False)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 10), for images of shape (n, 28, 28)."""
        if len(images) == 0:
            return np.zeros((0, 10), np.float32)
        batch = np.asarray(images, np.float32).reshape(-1, CANVAS, CANVAS, 1)
        # A direct call costs ~1 ms; model.predict sets up a whole loop (~35 ms).
        return np.asarray(self._model(batch, training=False))


def limit_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools in this process, before it loads a model.

    Only environment variables are set here, which TensorFlow reads when it
    starts: importing TensorFlow itself takes ~4 s, too long for Celery's
    ``worker_process_init``.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def get_classifier(spec: str, store: Path) -> Classifier:
    """The classifier for a model spec, loaded on first use and kept for the process."""
    ref = resolve(spec, store)
    key = str(ref.path.resolve())
    with _cache_lock:
        if key not in _cache:
            _cache[key] = Classifier(ref)
        return _cache[key]
