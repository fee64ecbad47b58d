"""`digits evaluate`: per-source accuracy through the real pipeline, with pictures of the mistakes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import cv2
import pytest

from digits.settings import Settings


@pytest.mark.needs_data
def test_evaluate_prints_the_table_and_writes_confusion_and_mistakes(tmp_path, shared_data):
    out = tmp_path / "evaluation"
    done = subprocess.run(
        [sys.executable, "-m", "digits.cli", "evaluate", "--data", str(shared_data), "--out", str(out),
         "--limit", "60"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sources = ("mnist-test", "semeion-style", "usps-held-out", "ardis-held-out", "optdigits-held-out",
               "orand-digits-held-out", "orand-held-out", "mgr-rowid-numbers", "mgr-rowid-signs",
               "c1-forms-held-out")  # fmt: skip
    for source in sources:
        assert source in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    by_source = {s["source"]: s for s in summary["sources"]}
    assert by_source["mnist-test"]["files"] == 60 and by_source["mnist-test"]["accuracy"] >= 0.9
    assert "operating curve" in done.stdout
    for source in summary["sources"]:
        at_the_service_threshold = next(p for p in source["curve"] if p["threshold"] == Settings().review_threshold)
        assert at_the_service_threshold["read_rate"] == source["ok_rows"] / source["files"], source["source"]
        rates = [p["read_rate"] for p in source["curve"]]
        assert rates == sorted(rates, reverse=True), "a higher threshold never reads more"
    confusion = cv2.imread(str(out / "confusion.png"))
    assert confusion is not None and confusion.shape[0] > 400
    curves = cv2.imread(str(out / "curves.png"))
    plot = curves[35:-50, 71:-230].astype(int)  # inside the axes: grid lines are grey, curves coloured
    assert (plot.max(axis=2) - plot.min(axis=2) > 100).any(), "the operating curves are drawn"
    with open(out / "mistakes.csv", newline="") as handle:
        mistakes = list(csv.DictReader(handle))
    wrong = sum(s["files"] - s["right"] for s in summary["sources"])
    assert len(mistakes) == wrong
    for mistake in mistakes:
        assert mistake["truth"] != mistake["read"]
        assert (out / mistake["image"]).exists()
