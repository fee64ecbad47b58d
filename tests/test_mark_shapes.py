"""What the classifier is taught as no digit: marks, never shapes a digit can take."""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.segment import CANVAS
from digits.training.marks import drawn_marks, unlike_a_digit


def canvas() -> np.ndarray:
    return np.zeros((CANVAS, CANVAS), np.uint8)


def test_a_real_piece_that_a_digit_can_be_is_never_taught_as_a_mark():
    stroke, frame, ring, scribble = canvas(), canvas(), canvas(), canvas()
    cv2.line(stroke, (14, 4), (14, 24), 255, 2)  # a "1", or a rule's remains
    cv2.rectangle(frame, (7, 4), (21, 24), 255, 2)  # a box's frame, or a square "0"
    cv2.ellipse(ring, (14, 14), (7, 10), 0, 0, 360, 255, 2)  # a "0"
    cv2.polylines(scribble, [np.array([(3, 18), (8, 8), (13, 18), (18, 8), (24, 18)])], False, 255, 2)
    assert not unlike_a_digit(stroke) and not unlike_a_digit(frame) and not unlike_a_digit(ring)
    assert unlike_a_digit(scribble)


def test_drawn_marks_are_raw_ink_high_images_repeatable_from_their_seed():
    marks = drawn_marks(40, np.random.default_rng(3))
    assert marks.shape == (40, CANVAS, CANVAS) and marks.dtype == np.uint8
    assert all(mark.max() > 100 for mark in marks)  # each holds ink
    assert np.array_equal(marks, drawn_marks(40, np.random.default_rng(3)))
