"""The loop closed: fine-tuning on reviewed fields, the promotion gate, and workers reading with what it promoted."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from redis import Redis

from digits.contracts import Row
from digits.corrections import load_snapshot
from digits.reviews import ReviewQueue, items_of
from digits.settings import Settings
from tests.conftest import REPO, digits_command
from tests.synth import FONTS, draw_digits, encode

DIGIT_MODEL, STRING_MODEL = (Settings.model_fields[field].default.split(",")[-1] for field in ("model", "string_model"))
"""One member of each default ensemble: fine-tuning one is as real as two, and half the time."""

NEW_DIGIT_MODEL, NEW_STRING_MODEL = (f"{name}@{int(version) + 1}" for name, _, version in
                                     (spec.partition("@") for spec in (DIGIT_MODEL, STRING_MODEL)))  # fmt: skip
"""The versions fine-tuning makes of them in a store that holds only them."""


def key_corrections(stack, count: int) -> None:
    """Rows a reviewer keyed: single digits and short lines drawn in the test's fonts, saved as a worker saves crops."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(count):
        digits = str(i % 10) if i % 2 else "".join(str(d) for d in rng.integers(0, 10, 3 + i % 3))
        sha256 = hashlib.sha256(f"scan-{i}".encode()).hexdigest()
        rows.append(Row(job_id="j", source=f"scan-{i:03d}.png", digits=digits, status="review", sha256=sha256,
                        digit_confidences=";".join("0.5" for _ in digits), model="m@1"))  # fmt: skip
    queue = ReviewQueue(Redis.from_url(stack.redis_url), stack.results, lease_seconds=60)
    items = items_of(rows, "inbox", 0.0, time.time())
    for i, item in enumerate(items):
        (stack.results / item.crop).parent.mkdir(parents=True, exist_ok=True)
        (stack.results / item.crop).write_bytes(encode(draw_digits(item.digits, font=FONTS[i % len(FONTS)])))
    queue.enqueue(items)
    for item in items:
        queue.next("ann")
        queue.decide(item.id, "ann", item.digits, seconds=1.0)


def run(stack, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digits.cli", *args], env=stack.env(**env), capture_output=True,
                          text=True, timeout=900, cwd=stack.root)  # fmt: skip


@pytest.mark.needs_data
def test_fine_tuned_models_once_promoted_are_the_ones_workers_read_with(stack, shared_data, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    for member in (DIGIT_MODEL, STRING_MODEL):
        for suffix in (".keras", ".json"):
            shutil.copy(REPO / "model_store" / f"{member}{suffix}", store)
    settings = {"DIGITS_MODEL_STORE": str(store), "DIGITS_MODEL": DIGIT_MODEL, "DIGITS_STRING_MODEL": STRING_MODEL,
                "DIGITS_DATA": str(shared_data)}  # fmt: skip
    key_corrections(stack, 60)
    assert run(stack, "corrections", "--snapshot", **settings).returncode == 0
    snapshot = load_snapshot(next((stack.results / "corrections").iterdir()), stack.results)

    tuned = run(stack, "train", "--corrections", "--epochs", "1", **settings)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "pass 1/1" in tuned.stdout
    promote = tuned.stdout.strip().splitlines()[-1]
    assert promote == f"compare and roll out: digits models promote {NEW_DIGIT_MODEL},{NEW_STRING_MODEL}", tuned.stdout
    for new, old in ((NEW_DIGIT_MODEL, DIGIT_MODEL), (NEW_STRING_MODEL, STRING_MODEL)):
        meta = json.loads((store / f"{new}.json").read_text())
        assert meta["fine_tuned_from"] == old and meta["corrections"] == snapshot.hash
        assert f"corrections:{snapshot.hash[:12]}" in meta["data_seen"]
        assert _weights(store / f"{new}.keras") != _weights(store / f"{old}.keras"), f"{new} learnt nothing"

    candidate = f"{NEW_DIGIT_MODEL},{NEW_STRING_MODEL}"
    promoted = run(stack, "models", "promote", candidate, "--limit", "30", "--force", **settings)
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert "corrections-held-out" in promoted.stdout, "the held-out corrections are one of the sets read"
    listed = run(stack, "models", "list", **settings).stdout.splitlines()[-1]
    assert NEW_DIGIT_MODEL in listed and NEW_STRING_MODEL in listed and "promoted" in listed

    stack.start_worker(concurrency=1, **settings)
    stack.start_ingester()
    stack.drop("after.png", encode(draw_digits("305")))
    rows = stack.wait_for_inbox_rows(1, timeout=120)
    assert rows[0]["model"] in (NEW_DIGIT_MODEL, NEW_STRING_MODEL), "read with the promoted versions"


def _weights(path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w).round(6).tobytes() for w in keras.models.load_model(path, compile=False).get_weights()]


@pytest.mark.needs_data
def test_the_gate_refuses_the_seed_mlp_and_workers_keep_their_models(stack, shared_data):
    default = digits_command(stack, "models", "list").stdout.splitlines()[-1]
    refused = run(stack, "models", "promote", "digits-seed-mlp@1", "--limit", "100", DIGITS_DATA=str(shared_data))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "read rate" in refused.stdout and "digits-seed-mlp@1" in refused.stdout, "both printed side by side"
    worse = [line for line in refused.stderr.splitlines() if line.startswith("refused:") and "against" in line]
    assert worse, refused.stderr
    assert "not rolled out" in refused.stderr
    assert digits_command(stack, "models", "list").stdout.splitlines()[-1] == default
