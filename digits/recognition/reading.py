"""What one reader read on one area: the digits, how sure it is of each, and where each lies."""

from __future__ import annotations

from dataclasses import dataclass, field

from digits.recognition.segment import Box


@dataclass(frozen=True)
class Reading:
    """Digits read on one page by one model, with a confidence and a page box per digit."""

    digits: str
    confidences: list[float]
    boxes: list[Box]
    model: str
    unanimous: bool = True
    """Whether every model (and view) behind the reading read the same digits on its own."""
    whole: Reading | None = None
    """The classifier's reading of all the ink as one digit, where it has room for one only."""
    doubt: str = ""
    """Why a person should look whatever the confidences (the readers disagree), for the row's ``error``."""
    marks: list[float] = field(default_factory=list)
    """For each piece of ink the reader left out as no digit, how sure it is of that: a row is ``ok``
    only if it is sure of every one, for a piece it is unsure of may be a digit it dropped."""
    signs: list[float] = field(default_factory=list)
    """The confidence of each written sign read beside the digits (a letter, a dash): see ``LineReading``."""
    probability: float | None = None
    """How likely its readers find the whole reading, where they say (the string models; see
    ``LineReading.probability``); None for the classifier, which judges each digit on its own."""
    frame: Box | None = None
    """Where on the image they were given (a page, a field or a comb box) its readers read: for the string
    models the line, ink beyond which they never saw; for the classifier, which reads every piece of ink cut
    apart, the whole image. None where not known."""
