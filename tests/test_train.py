"""`digits train` writes a new, loadable model version with honest metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from worker.model_store import list_models


@pytest.mark.needs_data
@pytest.mark.parametrize(
    ("arch", "data_seen"),
    [("cnn", ["mnist", "usps", "ardis"]), ("seed-mlp", ["mnist"])],  # the seed recipe is MNIST only
)
def test_train_writes_the_next_version_with_metadata(tmp_path, shared_data, arch, data_seen):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "digits.cli", "train", "--arch", arch, "--data", str(shared_data),
               "--epochs", "2", "--limit", "4000", "--store", str(tmp_path)]  # fmt: skip
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    models = list_models(tmp_path)
    assert [m.version for m in models] == [1, 2]
    meta = json.loads(models[-1].metadata_path.read_text())
    assert meta["architecture"] == arch
    assert meta["data_seen"] == data_seen
    assert meta["training_digits"] == 4000
    # Even 4,000 digits and two epochs learn something; chance is 10%.
    assert meta["held_out_accuracy"]["mnist-test"] > 0.6
