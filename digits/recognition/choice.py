"""Which reading to keep where cutting and the string models read different digits: judged on its evidence.

Cutting reads well-separated digits one by one and is right about them when
each piece is a clear digit; the string models read touching digits, and lines
with separators and security patterns, where cutting splits or joins strokes.
Neither wins by a fixed rule. Where they disagree, a logistic model weighs the
evidence each reading has (how sure each is, how well apart and alike the cut
pieces are, whether the two count the same digits) and says how likely the
cut reading is the right one. Its weights are calibrated on held-out lines
(``digits train --arch choice``) and kept in the model store as
``reading-choice.json``; without that file the string models' reading stands,
as it did before.

No TensorFlow here.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.recognition.reading import Reading

CHOICE_FILE = "reading-choice.json"
"""The calibrated weights' file in the model store."""

FEATURES = (
    "cut_sureness", "line_sureness", "line_unanimous", "gap", "widest", "height_spread", "fewer_pieces",
    "more_pieces", "apart",
)  # fmt: skip
"""What the choice weighs, in the order of its weights (see ``features``)."""

APART = 0.15
"""Pieces at least this far apart (in median digit heights) count as written apart (the ``apart`` feature)."""


def _sureness(confidences: list[float]) -> float:
    """The least sure digit's confidence as log-odds, bounded: 0.5 is 0, 0.999 about 7."""
    lowest = min(confidences, default=0.0)
    lowest = min(max(lowest, 1e-4), 1 - 1e-4)
    return math.log(lowest / (1 - lowest))


def features(cutting: Reading, line: Reading) -> np.ndarray:
    """The evidence for the cut reading against the line's, as numbers (``FEATURES``).

    ``gap``: the narrowest space between neighbouring cut pieces, in median
    digit heights (below 0 where pieces overlap), and ``apart`` whether it is at
    least ``APART``; ``widest``: the widest piece's width over its height
    (touching digits make wide pieces); ``height_spread``: the tallest piece over
    the shortest (a separator or a broken stroke is small); ``fewer_pieces`` and
    ``more_pieces``: cutting found fewer digits than the string models (joined
    strokes) or more (a split digit, a mark read as one).
    """
    boxes = sorted(cutting.boxes, key=lambda box: box.x)
    heights = [max(1, box.h) for box in boxes] or [1]
    median = float(np.median(heights))
    narrowest = min(((b.x - (a.x + a.w)) / median for a, b in itertools.pairwise(boxes)), default=2.0)
    return np.array(
        [
            _sureness(cutting.confidences),
            _sureness(line.confidences),
            float(line.unanimous),
            float(np.clip(narrowest, -1.0, 2.0)),
            math.log(max((box.w / max(1, box.h) for box in boxes), default=1.0)),
            math.log(max(heights) / min(heights)),
            float(len(cutting.digits) < len(line.digits)),
            float(len(cutting.digits) > len(line.digits)),
            float(narrowest >= APART),
        ]
    )


@dataclass(frozen=True)
class ReadingChoice:
    """Calibrated weights: the log-odds that the cut reading is right are ``bias + weights . features``."""

    weights: tuple[float, ...]
    bias: float
    calibrated_with: str = ""
    """The models whose readings the weights were fitted on."""

    def cut_odds(self, cutting: Reading, line: Reading) -> float:
        """Log-odds that the cut reading, not the line's, is the right one."""
        return self.bias + float(np.dot(self.weights, features(cutting, line)))

    def prefers_cutting(self, cutting: Reading, line: Reading) -> bool:
        return self.cut_odds(cutting, line) > 0

    @classmethod
    def load(cls, store: Path) -> ReadingChoice | None:
        """The choice calibrated into ``store``, or None where there is none."""
        path = Path(store) / CHOICE_FILE
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        if tuple(saved["features"]) != FEATURES:
            raise ValueError(f"{path} weighs {saved['features']}, not {FEATURES}: calibrate it again "
                             "(digits train --arch choice)")  # fmt: skip
        return cls(tuple(saved["weights"]), saved["bias"], saved.get("calibrated_with", ""))
