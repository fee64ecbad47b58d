"""CTC decoding with one string model or several (digits.recognition.ctc), checked against brute force."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from digits.recognition.ctc import align, decode, greedy, log_likelihood, log_likelihoods, log_softmax


def collapse(path: tuple[int, ...]) -> str:
    """The digits a CTC path stands for."""
    merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
    return "".join(str(c - 1) for c in merged if c != 0)


def probabilities(rows: list[dict[int, float]], classes: int = 11) -> np.ndarray:
    """Frame-wise probabilities: each row names a few classes, the rest share what is left."""
    out = np.zeros((len(rows), classes))
    for t, row in enumerate(rows):
        rest = (1 - sum(row.values())) / (classes - len(row))
        out[t] = rest
        for c, p in row.items():
            out[t, c] = p
    return out


@pytest.mark.parametrize("digits", ["", "0", "00", "01", "10", "012"])
def test_likelihood_is_the_sum_over_every_path(digits):
    rng = np.random.default_rng(7)
    log_probs = log_softmax(rng.normal(size=(6, 4)))
    total = sum(
        np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
        for path in itertools.product(range(4), repeat=6)
        if collapse(path) == digits
    )
    assert np.isclose(np.exp(log_likelihood(log_probs, digits)), total)


def test_likelihoods_of_many_voters_are_each_ones_likelihood():
    log_probs = log_softmax(np.random.default_rng(3).normal(size=(3, 8, 11)))
    for digits in ("", "5", "55", "512"):
        expected = [log_likelihood(voter, digits) for voter in log_probs]
        assert np.allclose(log_likelihoods(log_probs, digits), expected)


def test_a_reading_is_as_likely_as_every_way_it_could_be_wrong_allows_though_each_digit_is_sure():
    # A "1" held over three frames, the middle one nearly as much a gap as the stroke: "11" or "1".
    rows = [{0: 0.98}, {2: 0.98}, {0: 0.55, 2: 0.44}, {2: 0.98}, {0: 0.98}]
    one_voter = np.log(probabilities(rows))
    [reading] = decode([one_voter[None]])
    assert reading.digits == "11" and min(reading.confidences) > 0.95, "each digit is sure on its own frames"
    assert reading.probability == pytest.approx(np.exp(log_likelihood(one_voter, "11")))
    assert reading.probability < 0.6, "yet it may be one digit"
    glanced = decode([one_voter[None]], whole=False)[0]
    assert glanced == replace(reading, probability=0.0), "a first look reads the same, sparing the probability"
    # Several voters: the geometric mean of their probabilities of the reading.
    other = np.log(probabilities([{0: 0.98}, {2: 0.98}, {0: 0.9, 2: 0.09}, {2: 0.98}, {0: 0.98}]))
    [together] = decode([one_voter[None], other[None]])
    expected = np.sqrt(np.exp(log_likelihood(one_voter, "11") + log_likelihood(other, "11")))
    assert together.digits == "11" and together.probability == pytest.approx(expected)


def test_alignment_of_the_greedy_reading_is_the_greedy_path():
    log_probs = np.log(probabilities([{0: 0.9}, {2: 0.8}, {2: 0.7}, {0: 0.9}, {3: 0.6}, {0: 0.9}]))
    assert greedy(log_probs) == "12"
    confidences, spans = align(log_probs, "12")
    assert spans == [(1, 3), (4, 5)]
    assert np.allclose(confidences, [0.8, 0.6])


def test_models_that_disagree_vote_with_their_likelihoods():
    # The first model barely sees a "2" after the "1"; the second is sure there is none.
    unsure = probabilities([{0: 0.9}, {2: 0.9}, {0: 0.9}, {3: 0.5, 0: 0.45}, {0: 0.9}])
    sure = probabilities([{0: 0.9}, {2: 0.9}, {0: 0.9}, {0: 0.95, 3: 0.01}, {0: 0.9}])
    [alone] = decode([np.log(unsure)[None]])
    [together] = decode([np.log(unsure)[None], np.log(sure)[None]])
    assert alone.digits == "12"
    assert together.digits == "1"
    assert together.spans == [(1, 2)]
    assert alone.unanimous and not together.unanimous


def test_a_digit_is_only_as_sure_as_the_least_sure_model():
    first = probabilities([{0: 0.9}, {8: 0.99}, {0: 0.9}])
    second = probabilities([{0: 0.9}, {8: 0.7}, {0: 0.9}])
    [reading] = decode([np.log(first)[None], np.log(second)[None]])
    assert reading.digits == "7" and reading.unanimous
    assert np.isclose(reading.confidences[0], 0.7)


def test_a_sign_beside_digits_is_read_apart_from_them_and_a_model_without_the_sign_never_reads_one():
    # "12a": a 1, a 2, then a letter (class 11) on the last frames.
    frames = [{2: 0.97}, {0: 0.97}, {3: 0.95}, {0: 0.97}, {11: 0.9}, {0: 0.97}]
    with_sign = np.log(probabilities(frames, classes=12))
    [reading] = decode([with_sign[None]])
    assert reading.digits == "12" and len(reading.confidences) == 2 and len(reading.spans) == 2
    assert reading.signs == [pytest.approx(0.9)]
    # An older model (11 classes: no sign) reads the same line: blanks where the sign was.
    without = np.log(probabilities([{2: 0.97}, {0: 0.97}, {3: 0.95}, {0: 0.97}, {0: 0.97}, {0: 0.97}]))
    [alone] = decode([without[None]])
    assert alone.digits == "12" and alone.signs == []
