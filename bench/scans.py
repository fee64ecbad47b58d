"""Held-out cheque amounts and register rows scanned otherwise: how reading them holds up.

Each file of a held-out set of ``digits evaluate`` (``orand-held-out``,
``mgr-rowid-numbers``...) is changed the way another scanner or setting would
change it, then read as the evaluation reads it (``judge_set``). For each kind
of change: files read right, ``ok``, and wrong among ``ok``. The changes are
drawn from a fixed seed, so two runs of one commit print the same.

- ``as-is``: nothing;
- ``half``: half the resolution (a 150 dpi scan of what was scanned at 300);
- ``double``: twice the resolution;
- ``jpeg``: saved at JPEG quality 30;
- ``turned``: turned up to 4 degrees either way, the crop's edges repeated outwards;
- ``blur``: out of focus (Gaussian, sigma 1 pixel);
- ``dim``: dim and grey (60% contrast, paper at 60% of white);
- ``noise``: sensor noise (Gaussian, 8 grey levels).

    python -m bench.scans --data ../shared/data [--every N] [--wrong] SET [KIND ...]
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
from digits.training.evaluate import judge_set, load_samples, register_samples


def _turned(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-4, 4), 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


KINDS: dict[str, changes.Change] = {
    "as-is": lambda image, rng: image,
    "half": lambda image, rng: cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    "double": lambda image, rng: cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),
    "jpeg": lambda image, rng: image,
    "turned": _turned,
    "blur": lambda image, rng: cv2.GaussianBlur(image, (0, 0), 1.0),
    "dim": lambda image, rng: (image.astype(np.float32) * 0.6 + 30).astype(np.uint8),
    "noise": lambda image, rng: np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8),
}
"""Each kind of change (see the module's docstring), of a colour scan, with its random draws."""

QUALITY = {"jpeg": 30}
"""JPEG quality each changed scan is saved at, by kind (90 otherwise)."""


def changed(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """A scan's file changed as ``kind`` says, saved as JPEG (``as-is``: the file itself)."""
    return changes.changed(data, None if kind == "as-is" else KINDS[kind], rng, QUALITY.get(kind, 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--every", type=int, default=1, help="read every Nth file of the set only")
    parser.add_argument("--wrong", action="store_true", help="also list each file read wrong but ok")
    parser.add_argument("set", help="a held-out set of digits evaluate: orand-held-out, mgr-rowid-numbers...")
    changes.add_kinds_argument(parser, KINDS)
    arguments = parser.parse_args()
    kinds = changes.chosen_kinds(parser, arguments.kinds, KINDS)
    wanted = arguments.set
    sets = register_samples(arguments.data) if wanted.startswith("mgr") else load_samples(arguments.data)
    if wanted not in sets:
        raise SystemExit(f"no held-out set {wanted} in {arguments.data}; there are: {', '.join(sets) or 'none'}")
    samples = sets[wanted][:: arguments.every]
    settings = get_settings()
    models, threshold = get_models(settings), settings.review_threshold
    print("| change | files | right | ok | wrong among ok |\n| --- | ---: | ---: | ---: | ---: |")
    misread = []
    for kind in kinds:
        rng = np.random.default_rng(3)
        read = [dataclasses.replace(sample, data=changed(sample.data, kind, rng)) for sample in samples]
        report, judged = judge_set(wanted, read, models, threshold)
        print(f"| {kind} | {report.files} | {report.right} | {report.ok_rows} | {report.ok_wrong} |", flush=True)
        misread += [
            f"{kind}: {s.name} {s.truth} read {j.digits} (ok at {j.ok_until:.3f})"
            for s, j in zip(read, judged, strict=True)
            if j.ok_until >= threshold and j.digits != s.truth
        ]
    if arguments.wrong:
        print("\n".join(["", *misread]))


if __name__ == "__main__":
    main()
