"""The seed tutorial's way of reading digits, kept as the baseline the benchmark compares against.

    python -m bench.seed FILE... > readings.json

Loads the tutorial's network (``digits-seed-mlp@1``) and, for each file in
turn, reads it with OpenCV, scales it to 28x28, inverts it and asks
``model.predict`` for that one image, as the tutorial does. Prints JSON:
``{"seconds": …, "digits": {file: digit}}``, timed from the first file on (the
import and the model load are left out, as they are for the others).
"""

from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np

from digits.settings import get_settings
from digits.store import resolve_members

SEED_MODEL = "digits-seed-mlp@1"
"""The tutorial's network, trained by the tutorial's recipe."""


def main() -> None:
    import keras

    [ref] = resolve_members(SEED_MODEL, get_settings().model_store)
    model = keras.models.load_model(ref.path, compile=False)
    files = sys.argv[1:]
    digits = {}
    started = time.perf_counter()
    for path in files:
        image = cv2.imread(path)[:, :, 0]
        image = cv2.resize(image, (28, 28), interpolation=cv2.INTER_AREA)
        image = np.invert(np.array([image])).astype(np.float32) / 255
        prediction = model.predict(image, verbose=0)
        digits[path] = str(int(np.argmax(prediction)))
    print(json.dumps({"seconds": time.perf_counter() - started, "digits": digits}))


if __name__ == "__main__":
    main()
