"""The Keras networks: the digit classifiers and the string model, and the string model's CTC loss.

Short enough to read in one screen each. Recognition loads the saved models;
only training builds them.
"""

from __future__ import annotations

import numpy as np

from digits.recognition.ctc import CLASSES as LINE_CLASSES
from digits.recognition.lines import FRAMES, LINE_HEIGHT, LINE_WIDTH
from digits.recognition.model import CLASSES
from digits.recognition.segment import CANVAS

DIGIT_ARCHITECTURES = ("cnn", "seed-mlp")
"""Digit classifiers `build` makes; the string model comes from `build_string_model`."""


def build(arch: str):
    """A fresh, compiled model of the named architecture, input (28, 28, 1) in [0, 1].

    The CNN learns ten digits and ink that is no digit (``NOT_A_DIGIT``); the
    seed's network stays the tutorial's, ten digits only.
    """
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
        for filters, convolutions in ((32, 2), (64, 2), (128, 1)):
            for _ in range(convolutions):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
                x = layers.BatchNormalization(momentum=0.9)(x)
                x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.4)(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(DIGIT_ARCHITECTURES)}")
    outputs = layers.Dense(CLASSES if arch == "cnn" else 10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name=arch)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_string_model():
    """A small convolutional-recurrent network that reads a whole line (CTC: blank, ten digits, a sign)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(LINE_HEIGHT, LINE_WIDTH, 1))
    x = inputs
    for filters, pool in ((32, (2, 2)), (64, (2, 2)), (96, (2, 1)), (128, (2, 1))):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(pool)(x)
    # (2, 40, 128) -> 40 time steps of 256 features, read left to right and back.
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((FRAMES, -1))(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Bidirectional(layers.GRU(96, return_sequences=True))(x)
    outputs = layers.Dense(LINE_CLASSES)(x)  # logits: blank, digits 0-9, a sign that is no digit
    return keras.Model(inputs, outputs, name="crnn")


def widened(model, classes: int):
    """``model`` with its output layer grown to ``classes``, all it learnt kept; a new class starts unlikely.

    Lets a trained model go on learning a class it never had (ink that is no
    digit, a written sign) at a fraction of the cost of training anew.
    """
    import keras

    last = model.layers[-1]
    kernel, bias = last.get_weights()
    if kernel.shape[1] >= classes:
        return model
    outputs = keras.layers.Dense(classes, activation=last.activation, name=f"{last.name}_widened")(last.input)
    wide = keras.Model(model.inputs, outputs, name=model.name)
    rng = np.random.default_rng(0)
    extra = classes - kernel.shape[1]
    wide.layers[-1].set_weights([
        np.concatenate([kernel, rng.normal(0, kernel.std(), (kernel.shape[0], extra))], axis=1),
        np.concatenate([bias, np.full(extra, bias.min() - 2.0)]),
    ])  # fmt: skip
    return wide


def ctc_loss(y_true, y_pred):
    """CTC loss; ``y_true`` holds the label length in column 0, then the labels."""
    from keras import ops

    lengths = ops.cast(y_true[:, 0], "int32")
    labels = ops.cast(y_true[:, 1:], "int32")
    frames = ops.full((ops.shape(y_pred)[0],), ops.shape(y_pred)[1], dtype="int32")
    return ops.ctc_loss(labels, y_pred, lengths, frames, mask_index=0)
