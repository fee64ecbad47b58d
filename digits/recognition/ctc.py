"""Turn the string model's per-frame outputs into digit strings, with one model or several.

The string model (``digits.recognition.model``) outputs, for each of its time steps
("frames"), a score for the blank (class 0), for each digit (class d + 1), and, in
models that learnt it, for a written sign that is no digit (class 11: a letter
after a number, a dash or a ditto mark standing for one). Inside this module a
reading is a string of digits and ``SIGN`` characters; ``LineReading`` keeps them apart.
One model's best reading is its greedy path. Several models are combined the
way speech recognisers combine theirs: each model proposes its reading, every
proposal is scored by every model with the full CTC likelihood, and the
proposal with the highest total wins. Frame-by-frame averaging would not do:
two models trained apart place their peaks on different frames.

Numpy only, so that it can be tested and reasoned about without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BLANK = 0
"""Class of the CTC blank; digit ``d`` is class ``d + 1``."""

SIGN = "x"
"""A written sign that is no digit, as it stands in a reading's string here (and in training labels)."""

SIGN_CLASS = 11
"""The string model's class for ``SIGN``."""

CLASSES = 12
"""Classes of a string model's output: blank, ten digits, the sign. Older models lack the sign."""


@dataclass(frozen=True)
class LineReading:
    """What was read on a line: digits, their confidences and their frame spans."""

    digits: str
    confidences: list[float]
    spans: list[tuple[int, int]]
    unanimous: bool = True
    """Whether every model (and every view) read the same digits on its own."""
    signs: list[float] = field(default_factory=list)
    """The confidence of each written sign read beside the digits (a letter, a dash): none, for a plain number."""
    probability: float = 0.0
    """How likely the models find the whole reading, signs included: the geometric mean of each voter's CTC
    probability of it (``log_likelihoods``); 0 where it was not asked for (``decode``) or no model read the
    line (no ink). Unlike a digit's
    confidence, it counts every way the reading could be wrong at once (a digit read where there is none, one
    left out, two read as one)."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(log_probs: np.ndarray) -> str:
    """The reading on one line's best path: frame-wise best classes, repeats merged, blanks dropped."""
    best = log_probs.argmax(axis=-1)
    keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
    return "".join(SIGN if c == SIGN_CLASS else str(c - 1) for c in best[keep])


def log_likelihood(log_probs: np.ndarray, digits: str) -> float:
    """log P(digits | line) under one model: the CTC forward sum over every alignment."""
    return float(log_likelihoods(log_probs[np.newaxis], digits)[0])


def log_likelihoods(log_probs: np.ndarray, digits: str) -> np.ndarray:
    """``log_likelihood`` for many voters at once, ``log_probs`` being (voters, frames, classes): one forward
    pass over all of them, as in ``align_voters``."""
    states = _states(digits)
    alpha = np.full((len(log_probs), len(states)), -np.inf)
    alpha[:, 0] = log_probs[:, 0, BLANK]
    if len(states) > 1:
        alpha[:, 1] = log_probs[:, 0, states[1]]
    skip = _skip_allowed(states)
    for t in range(1, log_probs.shape[1]):
        stay_or_step = np.logaddexp(alpha, _shift(alpha, 1))
        alpha = np.where(skip, np.logaddexp(stay_or_step, _shift(alpha, 2)), stay_or_step) + log_probs[:, t, states]
    return np.logaddexp(alpha[:, -1], alpha[:, -2]) if len(states) > 1 else alpha[:, -1]


def align(log_probs: np.ndarray, digits: str) -> tuple[list[float], list[tuple[int, int]]]:
    """Each digit's confidence and frame span on the single best alignment of ``digits``.

    A digit's confidence is its highest probability on the frames aligned to
    it: low when the model never saw that digit there.
    """
    confidences, spans = align_voters(log_probs[np.newaxis], digits)
    return confidences[0], spans


def align_voters(log_probs: np.ndarray, digits: str) -> tuple[list[list[float]], list[tuple[int, int]]]:
    """``align`` for many voters at once, ``log_probs`` being (voters, frames, classes).

    Returns each voter's digit confidences, and the digit spans of the first
    voter. One Viterbi pass over all voters at once: the loop over frames runs
    in Python, so running it once per voter would multiply its cost by the
    number of voters.
    """
    if not digits:
        return [[] for _ in log_probs], []
    states = _states(digits)
    voters, frames = log_probs.shape[:2]
    on_states = log_probs[:, :, states]  # (voters, frames, states)
    score = np.full((voters, len(states)), -np.inf)
    score[:, :2] = on_states[:, 0, :2]
    skip = _skip_allowed(states)
    came_from = np.zeros((frames, voters, len(states)), np.int64)
    index = np.arange(len(states))
    for t in range(1, frames):
        options = np.stack([score, _shift(score, 1), np.where(skip, _shift(score, 2), -np.inf)])
        step = options.argmax(axis=0)
        came_from[t] = index - step
        score = options.max(axis=0) + on_states[:, t]
    state = np.where(score[:, -1] >= score[:, -2], len(states) - 1, len(states) - 2)
    path = np.zeros((voters, frames), np.int64)
    path[:, -1] = state
    for t in range(frames - 1, 0, -1):
        state = came_from[t, np.arange(voters), state]
        path[:, t - 1] = state

    digit_states = 2 * np.arange(len(digits)) + 1
    on_digit = path[:, :, np.newaxis] == digit_states  # (voters, frames, digits)
    probabilities = np.exp(on_states[:, :, digit_states])
    confidences = np.where(on_digit, probabilities, 0).max(axis=1)
    spans = []
    for k in range(len(digits)):
        frames_on = np.flatnonzero(on_digit[0, :, k])
        spans.append((int(frames_on[0]), int(frames_on[-1]) + 1))
    return confidences.tolist(), spans


def decode(member_logits: list[np.ndarray], whole: bool = True) -> list[LineReading]:
    """Read a batch of lines with one model or more: ``member_logits[m]`` is (lines, frames, classes).

    A digit is only as sure as the least sure model on it, so that a reading
    one model doubts goes to review; with ``whole``, the whole reading is as
    likely as the voters find it on average (``LineReading.probability``), a
    forward pass a line that a first look, never reported, can spare. A model
    that knows no sign never reads one.
    """
    members = [log_softmax(_with_sign(np.asarray(logits, np.float64))) for logits in member_logits]
    readings = []
    for line in range(len(members[0])):
        per_model = np.stack([m[line] for m in members])
        candidates = sorted({greedy(lp) for lp in per_model})
        # One candidate needs no vote; its likelihood only where its probability is asked for.
        scored = candidates if len(candidates) > 1 or whole else []
        likelihoods = {c: log_likelihoods(per_model, c) for c in scored}
        digits = max(candidates, key=lambda c: float(likelihoods[c].sum())) if scored else candidates[0]
        per_voter, spans = align_voters(per_model, digits)
        confidences = [min(c) for c in zip(*per_voter, strict=True)] if digits else []
        is_digit = [c != SIGN for c in digits]
        readings.append(
            LineReading(
                digits.replace(SIGN, ""),
                [c for c, keep in zip(confidences, is_digit, strict=True) if keep],
                [s for s, keep in zip(spans, is_digit, strict=True) if keep],
                unanimous=len(candidates) == 1,
                signs=[c for c, keep in zip(confidences, is_digit, strict=True) if not keep],
                probability=float(np.exp(likelihoods[digits].mean())) if whole else 0.0,
            )
        )
    return readings


def _with_sign(logits: np.ndarray) -> np.ndarray:
    """Logits of ``CLASSES`` classes: a model without the sign class never reads one."""
    missing = CLASSES - logits.shape[-1]
    if missing <= 0:
        return logits
    return np.concatenate([logits, np.full((*logits.shape[:-1], missing), -1e9)], axis=-1)


def _states(digits: str) -> np.ndarray:
    """The CTC state sequence: blank, digit, blank, digit, ..., blank (as class numbers)."""
    states = [BLANK]
    for d in digits:
        states += [SIGN_CLASS if d == SIGN else int(d) + 1, BLANK]
    return np.array(states)


def _shift(scores: np.ndarray, by: int) -> np.ndarray:
    """``scores`` moved ``by`` states to the right (along the last axis), -inf coming in on the left."""
    shifted = np.full_like(scores, -np.inf)
    shifted[..., by:] = scores[..., : scores.shape[-1] - by]
    return shifted


def _skip_allowed(states: np.ndarray) -> np.ndarray:
    """Whether a path may jump two states to reach each state: only onto a digit unlike the one before."""
    skip = np.zeros(len(states), bool)
    skip[2:] = (states[2:] != BLANK) & (states[2:] != states[:-2])
    return skip
