"""Rolling a model version out to a running worker, mid-backlog, and back: nothing lost, each row names its models."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

from digits.settings import Settings
from tests.conftest import wait_until
from tests.synth import FONTS, draw_digits, encode

ROLLED_OUT = "digits-seed-mlp@1"
"""Another shipped model (the seed baseline), so that rows read after the roll-out are told apart by their ``model``."""


def models_command(stack, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "digits.cli", "models", *args], env=stack.env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def drop(stack, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}-{i:02d}.png" for i in range(count)]
    for i, name in enumerate(names):
        stack.drop(name, encode(draw_digits(f"{i % 10}{(i * 3) % 10}", font=FONTS[i % len(FONTS)])))
    return names


def models_of(stack, names: list[str]) -> set[str]:
    """The digit classifiers that read the files ``names``: a row whose reading the string models alone vouch
    for names theirs, which the roll-out does not change."""
    strings = "+".join(Settings().string_model.split(","))
    return {row["model"] for row in stack.inbox_rows() if row["source"] in names} - {strings}


def test_a_rollout_mid_backlog_loses_nothing_and_a_rollback_restores_the_models(stack):
    default = "+".join(Settings().model.split(","))
    stack.start_worker(concurrency=2, name="rolling", DIGITS_BATCH_SIZE="4")
    stack.start_ingester()
    before = drop(stack, "before", 4)
    stack.wait_for_inbox_rows(4, timeout=90)
    assert models_of(stack, before) == {default}

    backlog = drop(stack, "backlog", 40)
    wait_until(lambda: len(stack.inbox_rows()) >= 8, 60, "the backlog under way")
    said = models_command(stack, "rollout", "--model", ROLLED_OUT)
    assert "rolling@" in said, said  # the worker answered the pool restart
    assert ROLLED_OUT in models_command(stack, "list").splitlines()[-1]
    stack.wait_for_inbox_rows(44, timeout=180)
    time.sleep(1)
    counts = Counter(row["source"] for row in stack.inbox_rows())
    assert all(counts[name] == 1 for name in backlog), "a file was lost or doubled by the roll-out"

    after = drop(stack, "after", 4)
    stack.wait_for_inbox_rows(48, timeout=90)
    assert models_of(stack, after) == {ROLLED_OUT}

    assert default.replace("+", ",") in models_command(stack, "rollback")
    again = drop(stack, "again", 4)
    stack.wait_for_inbox_rows(52, timeout=90)
    assert models_of(stack, again) == {default}
