"""The held-out C1 photos taken otherwise: how reading them with the example layout holds up.

Each held-out photo of the shared C1 sample (``c1-forms-held-out`` of ``digits
evaluate``) is changed the way another phone, hand or light would change it, then
read as the evaluation reads it (``judge_fields``: registered to the example
layout's reference, boxes found, each field's number compared as an integer). For
each kind of change: fields read right, ``ok``, and wrong among ``ok``. The
changes are drawn from a fixed seed, so two runs of one commit print the same.

What each kind does (whole form kept in the picture unless it says otherwise):

- ``as-is``: nothing;
- ``angle``: seen at an angle, each corner moved up to 6% (``angle-10``: 10%) of the
  photo's size, on a table around the form;
- ``turned``: turned up to 15 degrees and shrunk to 80-100%; the photo keeps its size,
  so a corner of the form, and of a field at its edge, may be cut off;
- ``cut-left-bottom``: up to 15% cut off at the left and at the bottom, where there are
  no fields unless the photo is upside down;
- ``cut-any-side``: up to 8% cut off each side, fields at the right edge too;
- ``blur-1.5``, ``blur-2``: out of focus (Gaussian, sigma 1.5 or 2 pixels);
- ``small``: shrunk to 35-50%;
- ``jpeg``: shrunk to 60% and saved at JPEG quality 25;
- ``light``: lit from one side, the far side at 45% of the near side's light.

    python -m bench.photos --data ../shared/data [KIND ...]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from bench import changes
from digits.recognition.model import get_models
from digits.settings import get_settings
from digits.training.evaluate import form_samples, judge_fields

TABLE = (90, 80, 70)
"""The colour (BGR) of what lies around the form in a photo."""


def _angle(image: np.ndarray, rng: np.random.Generator, most: float) -> np.ndarray:
    pad = round(0.12 * max(image.shape[:2]))
    image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=TABLE)
    height, width = image.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = (corners + rng.uniform(-most, most, (4, 2)) * [width, height]).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(corners, moved)
    return cv2.warpPerspective(image, matrix, (width, height), borderValue=TABLE)


def _turned(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-15, 15), rng.uniform(0.8, 1.0))
    return cv2.warpAffine(image, matrix, (width, height), borderValue=TABLE)


def _cut(image: np.ndarray, top: float, right: float, bottom: float, left: float) -> np.ndarray:
    height, width = image.shape[:2]
    return image[int(top * height) : height - int(bottom * height), int(left * width) : width - int(right * width)]


def _lit_from_one_side(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    towards = rng.uniform(0, 2 * np.pi)
    slope = np.cos(towards) * columns / width + np.sin(towards) * rows / height
    light = 0.45 + 0.55 * (slope - slope.min()) / (slope.max() - slope.min())
    return np.clip(image.astype(np.float32) * light[..., None], 0, 255).astype(np.uint8)


def _shrunk(image: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


KINDS: dict[str, changes.Change] = {
    "as-is": lambda image, rng: image,
    "angle": lambda image, rng: _angle(image, rng, 0.06),
    "angle-10": lambda image, rng: _angle(image, rng, 0.10),
    "turned": _turned,
    "cut-left-bottom": lambda image, rng: _cut(image, 0, 0, *rng.uniform(0, 0.15, 2)),
    "cut-any-side": lambda image, rng: _cut(image, *rng.uniform(0, 0.08, 4)),
    "blur-1.5": lambda image, rng: cv2.GaussianBlur(image, (0, 0), 1.5),
    "blur-2": lambda image, rng: cv2.GaussianBlur(image, (0, 0), 2.0),
    "small": lambda image, rng: _shrunk(image, rng.uniform(0.35, 0.5)),
    "jpeg": lambda image, rng: _shrunk(image, 0.6),
    "light": _lit_from_one_side,
}
"""Each kind of change (see the module's docstring), of a colour photo, with its random draws."""

QUALITY = {"jpeg": 25}
"""JPEG quality each changed photo is saved at, by kind (85 otherwise)."""


def changed(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """A photo's file changed as ``kind`` says, saved as JPEG (``as-is``: the file itself)."""
    return changes.changed(data, None if kind == "as-is" else KINDS[kind], rng, QUALITY.get(kind, 85))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--wrong", action="store_true", help="also list each field read wrong, after the table")
    changes.add_kinds_argument(parser, KINDS)
    arguments = parser.parse_args()
    kinds = changes.chosen_kinds(parser, arguments.kinds, KINDS)
    samples = form_samples(arguments.data)
    if not samples:
        raise SystemExit(f"no C1 photos in {arguments.data}: pass --data with the shared data folder")
    settings = get_settings()
    models, threshold = get_models(settings), settings.review_threshold
    print("| change | fields | right | ok | wrong among ok |\n| --- | ---: | ---: | ---: | ---: |")
    misread = []
    for kind in kinds:
        rng, photos = np.random.default_rng(7), {}
        for sample in samples:
            photo = sample.name.split("#")[0]
            if photo not in photos:
                photos[photo] = changed(sample.data, kind, rng)
        read = [dataclasses.replace(sample, data=photos[sample.name.split("#")[0]]) for sample in samples]
        judged = list(judge_fields(read, models, threshold))
        right = [j.digits == s.truth for j, s in zip(judged, read, strict=True)]
        ok = [j.ok_until >= threshold for j in judged]
        wrong = sum(o and not r for o, r in zip(ok, right, strict=True))
        print(f"| {kind} | {len(read)} | {sum(right)} | {sum(ok)} | {wrong} |", flush=True)
        misread += [
            f"{kind}: {s.name} {s.truth} read {j.digits or '-'}{' (ok)' if o else ''}"
            for s, j, r, o in zip(read, judged, right, ok, strict=True)
            if not r
        ]
    if arguments.wrong:
        print("\n".join(["", *misread]))


if __name__ == "__main__":
    main()
