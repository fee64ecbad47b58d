"""The string model's training lines: real amounts bent, not broken; register rows framed on other ink left out."""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.model import import_keras
from digits.settings import Settings
from digits.store import resolve_members
from digits.training.amounts import elastic
from digits.training.data import RealLines
from digits.training.strings import read_as_labelled
from model_store import STORE
from tests.synth import draw_digits


def _written_line() -> np.ndarray:
    page = np.full((50, 160), 230, np.uint8)
    cv2.putText(page, "4071", (8, 38), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 30, 3)
    return page


def test_elastic_bends_the_strokes_but_keeps_the_line_where_and_as_heavy_as_it_was():
    line = _written_line()
    ink = line < 128
    ys, xs = np.nonzero(ink)
    for seed in range(20):
        bent = elastic(line, np.random.default_rng(seed))
        assert bent.shape == line.shape and bent.dtype == line.dtype
        bent_ink = bent < 128
        assert (bent_ink != ink).sum() > 0.05 * ink.sum()  # the strokes moved...
        assert 0.8 < bent_ink.sum() / ink.sum() < 1.2  # ...without being thinned away or smeared
        bys, bxs = np.nonzero(bent_ink)
        reach = 0.1 * line.shape[0] + 1
        assert abs(bys.min() - ys.min()) <= reach and abs(bys.max() - ys.max()) <= reach
        assert abs(bxs.min() - xs.min()) <= reach and abs(bxs.max() - xs.max()) <= reach


def test_a_register_row_the_starting_model_reads_otherwise_than_labelled_is_not_learnt():
    """A row framed on other ink than its number (a date below it) carries a label its picture does not show."""
    keras = import_keras()
    model = keras.models.load_model(resolve_members(Settings().string_model, STORE)[0].path, compile=False)
    pictures = [draw_digits("305"), draw_digits("72"), draw_digits("48")]
    rows = RealLines(pictures, ["305", "72", "13"], [[], [], []])

    kept, left_out = read_as_labelled(rows, model)

    assert left_out == 1
    assert kept.labels == ["305", "72"]
    assert all(a is b for a, b in zip(kept.images, pictures[:2], strict=True))
