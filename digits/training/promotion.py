"""The gate before a model is rolled out: does the candidate read at least as much as the current models?

Both read the same held-out files: the held-out side of the corrections (the
site's own fields, split by file hash) and the held-out sets of ``digits
evaluate``. On each set the gate compares accuracy and the **read rate at the
promised error**: the share of files that can be ``ok`` at the lowest review
threshold that keeps the error among ``ok`` rows at most the target (0.5% by
default). A candidate passes when it does not fall behind on any set by more
than the noise of a set that size, and reads more of the held-out corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

from digits.corrections import HELD_OUT, Snapshot
from digits.recognition.model import Models
from digits.training.evaluate import Sample, SourceReport, judge_set

CORRECTIONS_SET = "corrections-held-out"
"""Name of the set made of the held-out corrections."""

NOISE_SIGMAS = 2.0
"""How many standard errors of a share, on a set that size, count as noise."""


@dataclass(frozen=True)
class Comparison:
    """The current models and the candidate on one set of files."""

    source: str
    current: SourceReport
    candidate: SourceReport
    target: float

    @property
    def files(self) -> int:
        return self.current.files

    def read_rate(self, report: SourceReport) -> float:
        """Share of files ``ok`` at the lowest threshold meeting the target error (0 if none does)."""
        met = report.curve.meeting(self.target)
        return met[1] if met else 0.0

    def noise(self, current: float, candidate: float) -> float:
        """A difference of two shares smaller than this is noise on a set this size."""
        share = (current + candidate) / 2
        return max(NOISE_SIGMAS * sqrt(share * (1 - share) / max(1, self.files)), 1 / max(1, self.files))

    def worse(self) -> list[str]:
        """What the candidate does worse than noise allows on this set (empty when nothing)."""
        found = []
        for what, before, after in (
            ("accuracy", self.current.accuracy, self.candidate.accuracy),
            ("read rate", self.read_rate(self.current), self.read_rate(self.candidate)),
        ):
            if after < before - self.noise(before, after):
                found.append(f"{self.source}: {what} {after:.2%}, against {before:.2%} now")
        return found


def correction_samples(snapshot: Snapshot) -> list[Sample]:
    """The held-out corrections as files to read, each labelled with what a person read."""
    return [
        Sample(CORRECTIONS_SET, example.crop, snapshot.path(example).read_bytes(), example.label)
        for example in snapshot.of(HELD_OUT)
    ]


def compare(
    current: Models, candidate: Models, sets: dict[str, list[Sample]], review_threshold: float, target: float
) -> list[Comparison]:
    """Read every set with both, and compare them set by set."""
    comparisons = []
    for source, samples in sets.items():
        reports = [judge_set(source, samples, models, review_threshold)[0] for models in (current, candidate)]
        comparisons.append(Comparison(source, *reports, target))
    return comparisons


def verdict(comparisons: list[Comparison]) -> list[str]:
    """Why the candidate may not be rolled out; empty when it may."""
    reasons = [reason for comparison in comparisons for reason in comparison.worse()]
    corrections = [c for c in comparisons if c.source == CORRECTIONS_SET]
    if not corrections or not corrections[0].files:
        reasons.append(
            "no held-out corrections to show that it reads more of the site's fields: "
            "write a snapshot with `digits corrections --snapshot` once reviewers have keyed some"
        )
    else:
        mine = corrections[0]
        before, after = mine.read_rate(mine.current), mine.read_rate(mine.candidate)
        if after <= before:
            reasons.append(f"{CORRECTIONS_SET}: read rate {after:.2%}, not more than {before:.2%} now")
    return reasons
