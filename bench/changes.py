"""What ``bench.photos`` and ``bench.scans`` share: a file changed as another photo or scan would be, and the
kinds of change asked for on the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

import cv2
import numpy as np

Change = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""A change of a colour image, with its random draws."""


def changed(data: bytes, change: Change | None, rng: np.random.Generator, quality: int) -> bytes:
    """An image file changed by ``change``, saved as JPEG at ``quality`` (None: the file itself)."""
    if change is None:
        return data
    image = change(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), rng)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def add_kinds_argument(parser: argparse.ArgumentParser, kinds: Iterable[str]) -> None:
    """The optional ``KIND ...`` arguments, all kinds if none is given."""
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"kinds of change, all if none: {', '.join(kinds)}")


def chosen_kinds(parser: argparse.ArgumentParser, asked: list[str], kinds: Iterable[str]) -> list[str]:
    """The kinds ``asked`` for, or every kind; a kind there is not ends the command, saying which there are."""
    kinds = list(kinds)
    unknown = sorted(set(asked) - set(kinds))
    if unknown:
        parser.error(f"no such kind of change: {', '.join(unknown)}; choose among {', '.join(kinds)}")
    return asked or kinds
