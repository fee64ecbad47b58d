"""Turn the string model's per-frame outputs into digit strings, with one model or several.

The string model (``worker.model``) outputs, for each of its time steps
("frames"), a score for the blank (class 0) and for each digit (class d + 1).
One model's best reading is its greedy path. Several models are combined the
way speech recognisers combine theirs: each model proposes its reading, every
proposal is scored by every model with the full CTC likelihood, and the
proposal with the highest total wins. Frame-by-frame averaging would not do:
two models trained apart place their peaks on different frames.

Numpy only, so that it can be tested and reasoned about without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLANK = 0
"""Class of the CTC blank; digit ``d`` is class ``d + 1``."""


@dataclass(frozen=True)
class LineReading:
    """What was read on a line: digits, their confidences and their frame spans."""

    digits: str
    confidences: list[float]
    spans: list[tuple[int, int]]
    unanimous: bool = True
    """Whether every model (and every view) read the same digits on its own."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(log_probs: np.ndarray) -> str:
    """The digits on one line's best path: frame-wise best classes, repeats merged, blanks dropped."""
    best = log_probs.argmax(axis=-1)
    keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
    return "".join(str(c - 1) for c in best[keep])


def log_likelihood(log_probs: np.ndarray, digits: str) -> float:
    """log P(digits | line) under one model: the CTC forward sum over every alignment."""
    states = _states(digits)
    alpha = np.full(len(states), -np.inf)
    alpha[0] = log_probs[0, BLANK]
    if len(states) > 1:
        alpha[1] = log_probs[0, states[1]]
    skip = _skip_allowed(states)
    for frame in log_probs[1:]:
        stay_or_step = np.logaddexp(alpha, _shift(alpha, 1))
        alpha = np.where(skip, np.logaddexp(stay_or_step, _shift(alpha, 2)), stay_or_step) + frame[states]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(states) > 1 else alpha[-1])


def align(log_probs: np.ndarray, digits: str) -> tuple[list[float], list[tuple[int, int]]]:
    """Each digit's confidence and frame span on the single best alignment of ``digits``.

    A digit's confidence is its highest probability on the frames aligned to
    it: low when the model never saw that digit there.
    """
    if not digits:
        return [], []
    states = _states(digits)
    count, frames = len(states), len(log_probs)
    score = np.full(count, -np.inf)
    score[0], score[1] = log_probs[0, BLANK], log_probs[0, states[1]]
    skip = _skip_allowed(states)
    came_from = np.zeros((frames, count), np.int64)
    index = np.arange(count)
    for t in range(1, frames):
        options = np.stack([score, _shift(score, 1), np.where(skip, _shift(score, 2), -np.inf)])
        step = options.argmax(axis=0)
        came_from[t] = index - step
        score = options.max(axis=0) + log_probs[t, states]
    state = count - 1 if score[-1] >= score[-2] else count - 2
    path = [state]
    for t in range(frames - 1, 0, -1):
        state = came_from[t, state]
        path.append(state)
    path.reverse()

    confidences, spans = [], []
    for k in range(len(digits)):
        on_digit = [t for t, s in enumerate(path) if s == 2 * k + 1]
        probability = np.exp(log_probs[on_digit, states[2 * k + 1]]).max()
        confidences.append(float(probability))
        spans.append((on_digit[0], on_digit[-1] + 1))
    return confidences, spans


def decode(member_logits: list[np.ndarray]) -> list[LineReading]:
    """Read a batch of lines with one model or more: ``member_logits[m]`` is (lines, frames, 11).

    A digit is only as sure as the least sure model on it, so that a reading
    one model doubts goes to review.
    """
    members = [log_softmax(np.asarray(logits, np.float64)) for logits in member_logits]
    readings = []
    for line in range(len(members[0])):
        per_model = [m[line] for m in members]
        candidates = sorted({greedy(lp) for lp in per_model})
        if len(candidates) == 1:
            digits = candidates[0]
        else:
            digits = max(candidates, key=lambda c: sum(log_likelihood(lp, c) for lp in per_model))
        aligned = [align(lp, digits) for lp in per_model]
        confidences = [min(c) for c in zip(*(a[0] for a in aligned), strict=True)] if digits else []
        readings.append(LineReading(digits, confidences, aligned[0][1], unanimous=len(candidates) == 1))
    return readings


def _states(digits: str) -> np.ndarray:
    """The CTC state sequence: blank, digit, blank, digit, ..., blank (as class numbers)."""
    states = [BLANK]
    for d in digits:
        states += [int(d) + 1, BLANK]
    return np.array(states)


def _shift(scores: np.ndarray, by: int) -> np.ndarray:
    """``scores`` moved ``by`` states to the right, -inf coming in on the left."""
    return np.concatenate([np.full(by, -np.inf), scores])[: len(scores)]


def _skip_allowed(states: np.ndarray) -> np.ndarray:
    """Whether a path may jump two states to reach each state: only onto a digit unlike the one before."""
    skip = np.zeros(len(states), bool)
    skip[2:] = (states[2:] != BLANK) & (states[2:] != states[:-2])
    return skip
