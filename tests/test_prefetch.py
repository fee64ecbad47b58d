"""Training passes made in background processes are the same, part for part, however many make them."""

from __future__ import annotations

import os

import numpy as np

from digits.training.prefetch import Prefetcher


def _numbers(shared: dict, rng: np.random.Generator, part: int) -> tuple[int, int, list[int]]:
    return part, os.getpid(), (shared["offset"] + rng.integers(1000, size=3)).tolist()


def _passes(processes: int) -> list[list[tuple[int, int, list[int]]]]:
    with Prefetcher(_numbers, {"offset": 5}, parts=4, seed=7, passes=3, processes=processes) as passes:
        return [passes.parts_of(number) for number in range(3)]


def test_passes_come_in_order_and_do_not_depend_on_the_number_of_processes():
    one, two = _passes(1), _passes(2)
    assert [[part for part, _, _ in parts] for parts in two] == [[0, 1, 2, 3]] * 3
    assert _drawn(one) == _drawn(two)
    # Made away from the training process, and each part and pass is drawn afresh.
    assert os.getpid() not in {pid for parts in two for _, pid, _ in parts}
    drawn = [tuple(numbers) for numbers in _drawn(two)]
    assert len(set(drawn)) == len(drawn)
    assert all(value >= 5 for numbers in drawn for value in numbers)  # the shared data reached the processes


def _drawn(passes: list[list[tuple[int, int, list[int]]]]) -> list[list[int]]:
    return [numbers for parts in passes for _, _, numbers in parts]
