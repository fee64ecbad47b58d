"""`digits train` writes a new, loadable model version with honest metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from digits.store import list_models
from digits.training.amounts import coarse_line
from digits.training.augment import coarse_scan, optdigits_bitmap, semeion_bitmap, small_bitmap
from digits.training.data import ORAND_DIGIT_REPEATS, load_data, orand_split

pytestmark = pytest.mark.processes


@pytest.mark.needs_data
@pytest.mark.parametrize(
    ("arch", "data_seen"),
    [
        (
            "cnn",
            [
                "mnist",
                "usps",
                "ardis",
                "optdigits",
                "orand-car-a-digits",
                "drawn block digits",
                "drawn marks",
                "c1-forms-sample (training half)",
            ],
        ),
        ("seed-mlp", ["mnist"]),  # the seed recipe is MNIST only
    ],
)
def test_train_writes_the_next_version_with_metadata(tmp_path, shared_data, arch, data_seen):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "digits.cli", "train", "--arch", arch, "--data", str(shared_data),
               "--epochs", "2", "--limit", "4000", "--store", str(tmp_path / "new-store")]  # fmt: skip
    for _ in range(2):  # the first run makes the store
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    models = list_models(tmp_path / "new-store")
    assert [m.version for m in models] == [1, 2]
    meta = json.loads(models[-1].metadata_path.read_text())
    assert meta["architecture"] == arch
    assert meta["data_seen"] == data_seen
    assert meta["training_digits"] == 4000
    assert meta["seed"] == 20261129  # the default, recorded so that a run can be repeated
    # Even 4,000 digits and two epochs learn something; chance is 10%.
    assert meta["held_out_accuracy"]["mnist-test"] > 0.6


@pytest.mark.needs_data
def test_a_classifier_goes_on_from_its_own_weights_as_a_new_version_that_says_so(tmp_path, shared_data):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    store = tmp_path / "store"
    base = [sys.executable, "-m", "digits.cli", "train", "--data", str(shared_data), "--limit", "2000",
            "--store", str(store), "--epochs", "1"]  # fmt: skip
    assert subprocess.run(base, env=env, capture_output=True, timeout=600).returncode == 0
    done = subprocess.run([*base, "--from", "digits-cnn@1"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "saved digits-cnn@2" in done.stdout and "min)" in done.stdout  # the time it took, for the budget
    first, continued = list_models(store)
    meta = continued.metadata()
    assert (continued.name, continued.version) == ("digits-cnn", 2)
    assert meta["continued_from"] == "digits-cnn@1" and meta["learning_rate"] < 1e-3
    # Going on from trained weights keeps what they knew: better than one pass from fresh weights gave.
    assert meta["held_out_accuracy"]["mnist-test"] >= first.metadata()["held_out_accuracy"]["mnist-test"] - 0.02

    missing = subprocess.run([*base, "--from", "digits-cnn@9"], env=env, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 1 and "no model 'digits-cnn@9'" in missing.stderr


@pytest.mark.needs_data
def test_cheque_digits_are_learnt_from_the_training_amounts_and_held_out_with_theirs(shared_data):
    training_amounts, held_amounts = orand_split(shared_data)
    split = load_data(shared_data)
    held_x, held_y = split.held_out["orand-digits-held-out"]
    # Every digit of the held-out amounts, in order, and no other: the string model's
    # held-out amounts stay unseen by the CNN too.
    assert "".join(map(str, held_y)) == "".join(held_amounts.labels)
    learnt = split.train_y[split.seen.index("orand-car-a-digits")]
    assert len(learnt) == ORAND_DIGIT_REPEATS * len("".join(training_amounts.labels))
    assert held_x.shape[1:] == (28, 28) and held_x.dtype == np.uint8 and held_x.max() == 255
    # The string model has a pool of cheque digits of its own.
    assert "orand-car-a-digits" not in load_data(shared_data, with_cheque_digits=False).seen


def test_semeion_bitmaps_stretch_a_digit_to_fill_its_box_unless_asked_to_keep_its_shape():
    one = np.zeros((40, 40), np.uint8)
    one[5:35, 18:22] = 255
    stretched = semeion_bitmap(one)
    assert stretched.shape == (16, 16) and stretched.dtype == np.uint8
    assert stretched.all(), "a lone bar stretched to fill the box covers all of it"
    kept = semeion_bitmap(one, keep_shape=True)
    assert set(np.unique(kept)) == {0, 255}
    columns = np.flatnonzero(kept.any(axis=0))
    assert columns.min() >= 6 and columns.max() <= 9, columns


def test_optdigits_bitmaps_count_the_ink_of_each_four_by_four_block():
    tall = np.full((64, 32), 255, np.uint8)  # centred on a square: ink on its middle half
    expected = np.zeros((8, 8), np.uint8)
    expected[:, 2:6] = 255
    assert np.array_equal(optdigits_bitmap(tall, keep_shape=True), expected)
    assert optdigits_bitmap(tall).all()


def test_a_small_bitmap_of_blank_paper_stays_blank():
    blank = np.zeros((28, 28), np.uint8)
    assert small_bitmap(blank, np.random.default_rng(0)) is blank


@pytest.mark.parametrize("grid", [16, 32])
def test_a_coarse_scan_is_pure_black_and_white_and_enlarged_by_repeating_pixels(grid):
    seven = np.zeros((28, 28), np.uint8)
    seven[5:8, 6:22] = 200
    for y in range(8, 24):
        seven[y, 20 - (y - 8) // 2 : 23 - (y - 8) // 2] = 230
    scanned = coarse_scan(seven, np.random.default_rng(grid), grid)
    assert set(np.unique(scanned)) == {0, 255}
    # Every row is a copy of one of the grid's rows and every column of one of its columns: stair steps.
    assert len(np.unique(scanned, axis=0)) <= grid and np.unique(scanned, axis=1).shape[1] <= grid
    assert scanned.shape[0] >= grid


def test_a_coarse_line_keeps_its_size_and_has_no_grey():
    page = np.full((40, 120), 230, np.uint8)
    page[8:32, 10:14] = 40
    page[8:32, 50:70] = 60
    scanned = coarse_line(page, np.random.default_rng(0))
    assert scanned.shape == page.shape and set(np.unique(scanned)) == {0, 255}
    assert scanned[20, 12] == 0 and scanned[2, 100] == 255
