"""Soak: many files through a real `digits up`, every one accounted for, memory flat.

CI runs 1,000 files (a thousand in one inbox sub-folder); the full soak is ``DIGITS_SOAK_FILES=20000 pytest -m soak``
(or ``python -m bench.soak --files 20000``, which prints the whole report).
"""

from __future__ import annotations

import json
import os

import pytest

from bench.soak import run

SOAK_FILES = int(os.environ.get("DIGITS_SOAK_FILES", "1000"))
"""How many files the soak drops into one inbox sub-folder."""


@pytest.mark.soak
def test_a_soak_accounts_for_every_file_and_keeps_memory_flat():
    report = run(SOAK_FILES, workers=2, timeout=max(600, SOAK_FILES / 5))
    shown = json.dumps(report, indent=2)
    assert report["rows"] == SOAK_FILES, shown
    assert report["duplicated_sources"] == 0 and report["missing_sources"] == 0, shown
    assert report["in_done"] == SOAK_FILES and report["left_in_processing"] == 0, shown
    assert report["accuracy"] >= 0.98, shown
    # Every process of ours within MAX_GROWTH of its warm size (Redis keeps a week of results, by design).
    assert report["memory_flat"], shown
