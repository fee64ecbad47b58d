"""The operating curve: each reading judged at every review threshold from one reading of its file."""

from __future__ import annotations

import numpy as np
import pytest

from digits.recognition.pipeline import Reading, Support, ok_bar, ok_until, sureness
from digits.training.evaluate import OperatingCurve


@pytest.mark.parametrize("support", list(Support))
def test_ok_until_is_the_highest_threshold_whose_bar_a_reading_clears(support):
    for lowest in np.linspace(0.0, 1.0, 41):
        reading = Reading("12", [float(lowest), 1.0], [], "m", probability=float(1 - lowest) / 2)
        until = ok_until(reading, support)
        for threshold in np.linspace(0.05, 0.9999, 60):
            ok = sureness(reading, support) >= ok_bar(support, float(threshold))
            assert ok == (until >= threshold), (support, lowest, threshold)
    assert ok_until(Reading("", [], [], "m"), Support.AGREED) < 0, "nothing read is never ok"


def test_the_curve_finds_the_lowest_threshold_that_meets_a_target_error():
    curve = OperatingCurve()
    for right, until in ((True, 0.99), (False, 0.98), (True, 0.97), (True, 0.5), (False, -1.0)):
        curve.add(right, until)
    assert curve.meeting(0.0) == (0.99, 0.2), "only the surest file is ok without an error"
    assert curve.meeting(0.5) == (0.5, 0.8), "at most half wrong: every file that can be ok is"
    assert curve.at(0.97) == (0.6, pytest.approx(1 / 3))
    failing = OperatingCurve([(False, 0.99), (True, 0.9)])
    assert failing.meeting(0.0) is None, "the surest reading is wrong: no threshold meets 0%"
