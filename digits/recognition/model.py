"""The Keras models: their architectures, and loading one once per process.

TensorFlow is imported here and only here (and in training), so that nothing
that merely queues work pays its start-up time or memory.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digits.recognition.choice import ReadingChoice
from digits.recognition.ctc import LineReading, decode
from digits.recognition.lines import FRAMES, LINE_HEIGHT, LINE_WIDTH
from digits.recognition.segment import CANVAS
from digits.settings import Settings
from digits.store import ModelNotFound, ModelRef, resolve_members

log = logging.getLogger(__name__)


_cache: dict[tuple[str, ...], Classifier | StringReader] = {}
_cache_lock = threading.Lock()


TENSORFLOW_NOTES = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \S+ +\d+ [\w.]+:\d+\] .*"
    r"|To enable the following instructions: .*"
)
"""What TensorFlow's C++ side prints as it loads (informational notes and warnings, in absl's format)."""

_importing = threading.Lock()


def import_keras():
    """Keras (and so TensorFlow), imported without TensorFlow's start-up chatter on stderr.

    As it loads, TensorFlow's C++ side prints notes (oneDNN, no CUDA drivers)
    before any of its log settings apply, and, once running, an error for the
    GPU it does not find, which reads like a failure. Unless the environment
    sets ``TF_CPP_MIN_LOG_LEVEL`` (``digits up -v`` sets it to 0), only fatal
    C++ messages are kept, and the notes printed while loading are dropped;
    whatever else was written to stderr meanwhile is written again.
    """
    with _importing:
        if "keras" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
            import keras

            return keras
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)  # C++ writes to the file descriptor, not to sys.stderr
            try:
                import keras
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                said = captured.read().decode(errors="replace").splitlines()
        kept = [line for line in said if not TENSORFLOW_NOTES.fullmatch(line)]
        if kept:
            print("\n".join(kept), file=sys.stderr)
        return keras


PADDED_SIZES = (4, 8, 12, 16, 24, 32, 48, 64)
"""The batch sizes a model is called with (see ``padded``): a batch is padded with blanks to the
next of them. A padded blank costs as much as a real input, so the steps are small: from 8 on, at
most a third of a call is padding (powers of two allowed half, and the string models, asked three
widths of a line at a time, often met it; docs/speed.md). The largest, ``LARGEST_BATCH``, bounds the models' working
memory, which grows with the batch and which TensorFlow keeps once taken: larger parts would make
each worker process hold more memory for good, without reading faster."""

LARGEST_BATCH = PADDED_SIZES[-1]
"""Larger batches are read in parts of this many."""


def padded(batch: np.ndarray) -> np.ndarray:
    """``batch`` with blank images added up to the next of ``PADDED_SIZES`` (a larger batch as it is).

    Keras traces a new graph for each batch size it meets (each trace takes
    time, and TensorFlow warns past five), and a worker reading batches of
    files meets dozens of sizes; padded, it meets a handful, each traced once
    per process.
    """
    size = next((size for size in PADDED_SIZES if size >= len(batch)), len(batch))
    if size == len(batch):
        return batch
    return np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])


def predict(model, batch: np.ndarray) -> np.ndarray:
    """``model``'s outputs for ``batch``, in calls of at most ``LARGEST_BATCH`` padded inputs.

    ``predict_on_batch`` runs the compiled graph: far cheaper a call than an
    eager call (above all through a recurrent layer) or ``model.predict``,
    which sets up a whole loop each time.
    """
    parts = [
        np.asarray(model.predict_on_batch(padded(part)))[: len(part)]
        for part in np.split(batch, range(LARGEST_BATCH, len(batch), LARGEST_BATCH))
    ]
    return np.concatenate(parts)


SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))
"""Pixel shifts (down, up, right, left) at which a doubtful digit is classified again."""

NOT_A_DIGIT = 10
"""The classifier's class for ink that is no digit (a cross, a dash, a letter, a piece of a frame).
A model that never learnt it (the seed's network) is read as finding every piece a digit."""

CLASSES = 11
"""The classifier's classes: ten digits, and ``NOT_A_DIGIT``."""

SURE = 0.99
"""Digits the classifier gives less than this are read again at the ``SHIFTS``: the extra
readings are spent on the doubtful digits, where they can change the reading, and not on
the sure ones, where they do not."""


class Classifier:
    """Loaded digit models that turn a batch of 28x28 digit images into probabilities.

    With several models (an ensemble), their probabilities are averaged.
    """

    def __init__(self, refs: list[ModelRef]) -> None:
        keras = import_keras()
        self.refs = refs
        self.label = "+".join(ref.label for ref in refs)
        self._members = [keras.models.load_model(ref.path, compile=False) for ref in refs]

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, ``CLASSES``), for images of shape (n, 28, 28).

        A digit the models are not sure of (under ``SURE``) is classified again
        shifted by a pixel each way (``SHIFTS``), and the five readings averaged:
        test-time augmentation, spent only on the few digits where it can matter.
        """
        if len(images) == 0:
            return np.zeros((0, CLASSES), np.float32)
        batch = np.asarray(images, np.float32).reshape(-1, CANVAS, CANVAS, 1)
        found = self._average(batch)
        doubtful = np.flatnonzero(found.max(axis=1) < SURE)
        if len(doubtful):
            shifted = np.concatenate([np.roll(batch[doubtful], shift, axis=(1, 2)) for shift in SHIFTS])
            again = self._average(shifted).reshape(len(SHIFTS), len(doubtful), -1)
            found[doubtful] = (found[doubtful] + again.sum(axis=0)) / (len(SHIFTS) + 1)
        return found

    def _average(self, batch: np.ndarray) -> np.ndarray:
        found = [predict(member, batch) for member in self._members]
        # A member without the class for marks never finds one.
        return np.mean([np.pad(f, ((0, 0), (0, CLASSES - f.shape[1]))) for f in found], axis=0)

    def warm_up(self, sizes: Sequence[int]) -> None:
        """Trace each model for each of the padded batch ``sizes`` (see ``Models.warm_up``)."""
        _trace_sizes(self._members, (CANVAS, CANVAS, 1), sizes)


class StringReader:
    """Loaded string models that read prepared lines (n, 32, 160) into digit strings.

    With several models, each proposes a reading and all of them vote on every
    proposal (see ``digits.recognition.ctc.decode``).
    """

    def __init__(self, refs: list[ModelRef]) -> None:
        keras = import_keras()
        self.refs = refs
        self.label = "+".join(ref.label for ref in refs)
        self._members = [keras.models.load_model(ref.path, compile=False) for ref in refs]

    def read(self, lines: np.ndarray) -> list[LineReading]:
        """Read lines of shape (n, views, 32, 160): every model reads every view, and all vote."""
        if len(lines) == 0:
            return []
        count, views = lines.shape[:2]
        batch = np.asarray(lines, np.float32).reshape(-1, LINE_HEIGHT, LINE_WIDTH, 1)
        voters = []
        for member in self._members:
            logits = predict(member, batch).reshape(count, views, FRAMES, -1)
            voters += [logits[:, view] for view in range(views)]
        return decode(voters)

    def glance(self, lines: np.ndarray) -> list[LineReading]:
        """Read lines of shape (n, 32, 160), one view each, with the first model alone: a first look that costs
        one input a line where ``read`` costs one a model and view."""
        if len(lines) == 0:
            return []
        batch = np.asarray(lines, np.float32).reshape(-1, LINE_HEIGHT, LINE_WIDTH, 1)
        return decode([predict(self._members[0], batch).reshape(len(lines), FRAMES, -1)], whole=False)

    def warm_up(self, sizes: Sequence[int]) -> None:
        """Trace each model for each of the padded batch ``sizes`` (see ``Models.warm_up``)."""
        _trace_sizes(self._members, (LINE_HEIGHT, LINE_WIDTH, 1), sizes)


def _trace_sizes(members: list, shape: tuple[int, ...], sizes: Sequence[int]) -> None:
    for member in members:
        for size in sizes:
            member.predict_on_batch(np.zeros((size, *shape), np.float32))


class _PaddedSizesRetracing(logging.Filter):
    """Drops TensorFlow's warning that a model's graph was traced again for another batch size.

    ``padded`` keeps the sizes to a handful, each traced once per process; yet
    TensorFlow warns from the fifth, which ``digits recognize`` and ``digits
    evaluate`` (they trace as sizes come) would print among their output.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_PaddedSizesRetracing())


def limit_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools in this process, before it loads a model.

    Only environment variables are set here, which TensorFlow reads when it
    starts: importing TensorFlow itself takes seconds, too long for Celery's
    ``worker_process_init``.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


@dataclass(frozen=True)
class Models:
    """What a process reads with: the digit classifier, and the string model if installed."""

    classifier: Classifier
    reader: StringReader | None
    choice: ReadingChoice | None = None
    """Which reading stands where cutting and the string models disagree (``digits.recognition.choice``)."""

    @property
    def label(self) -> str:
        return self.classifier.label

    def warm_up(self, sizes: Sequence[int]) -> None:
        """Trace every model's graph for each of the padded batch ``sizes`` now, before work needs them.

        Without it, a busy worker would meet new batch sizes while files wait,
        and spend seconds tracing them.
        """
        self.classifier.warm_up(sizes)
        if self.reader is not None:
            self.reader.warm_up(sizes)


def get_models(settings: Settings) -> Models:
    """The models the settings name, loaded on first use and kept for the process.

    An empty ``string_model`` means none; so does a string model missing from
    the store, with a warning, so that a store holding only a digit model works.
    With a string model, the store's calibrated ``ReadingChoice`` (if any) says
    which reading stands where the two disagree.
    """
    reader = None
    if settings.string_model:
        try:
            reader = _load(StringReader, resolve_members(settings.string_model, settings.model_store))
        except ModelNotFound as missing:
            log.warning("reading without a string model: %s", missing)
    classifier = _load(Classifier, resolve_members(settings.model, settings.model_store))
    return Models(classifier, reader, ReadingChoice.load(settings.model_store) if reader else None)


def _load(kind: type, refs: list[ModelRef]):
    key = (kind.__name__, *(str(ref.path.resolve()) for ref in refs))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = kind(refs)
        return _cache[key]
