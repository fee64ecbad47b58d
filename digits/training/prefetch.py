"""Make each training pass's data in background processes, one pass ahead of the model.

Training alternates two kinds of work: preparing a pass's digits or lines
(distorting, composing, normalising: Python and OpenCV, one core) and fitting
the model to them (TensorFlow, every core). Done in turn, only one core works
while the data is prepared, and the model waits. Here the next pass is prepared by
low-priority processes while TensorFlow fits the current one, so they take
only the CPU it leaves, and whatever is left of the preparation then runs on
every core.

A pass is made in parts, each with its own random generator seeded from
(seed, pass, part): the data is the same whatever the number of processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import cv2
import numpy as np

BACKGROUND_NICENESS = 10
"""How much lower than training's the preparing processes' priority is: the model's fitting
comes first, and the preparation takes the CPU it leaves."""

PartMaker = Callable[[dict, np.random.Generator, int], Any]
"""``make(shared, rng, part)``: one part of a pass; a module-level function, so that it can be sent to a process."""

_shared: dict = {}


class Prefetcher:
    """Passes of training data made by ``make`` in background processes, each started while the one before is fitted.

    The first pass is started at once, so that it is made while training sets
    up. ``shared`` (the raw digits, the recipe) is sent to each process once,
    when it starts. Use as a context manager, so that the processes end with
    the training.
    """

    def __init__(
        self, make: PartMaker, shared: dict, parts: int, seed: int, passes: int, processes: int | None = None
    ) -> None:
        self._make, self._parts, self._seed, self._passes = make, parts, seed, passes
        # Spawned, not forked: a fork of a process that runs TensorFlow's threads can hang.
        self._pool = ProcessPoolExecutor(
            processes or os.cpu_count() or 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(shared,),
        )
        self._pending: dict[int, list[Future]] = {}
        self._submit(0)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(cancel_futures=True)

    def parts_of(self, number: int) -> list:
        """The parts of pass ``number`` (0, then 1, ...), in order; starts making the next pass before returning."""
        parts = [future.result() for future in self._pending.pop(number)]
        self._submit(number + 1)
        return parts

    def _submit(self, number: int) -> None:
        if number < self._passes:
            self._pending[number] = [
                self._pool.submit(_make_part, self._make, self._seed, number, part) for part in range(self._parts)
            ]


def _start(shared: dict) -> None:
    os.nice(BACKGROUND_NICENESS)
    cv2.setNumThreads(1)  # the processes already share the cores among themselves
    _shared.update(shared)


def _make_part(make: PartMaker, seed: int, number: int, part: int) -> Any:
    return make(_shared, np.random.default_rng([seed, number, part]), part)
