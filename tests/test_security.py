"""Nothing gets in: a Redis reachable from other machines must have a password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from digits.settings import Settings


@pytest.mark.parametrize(
    "url",
    ["redis://localhost:6379/0", "redis://127.0.0.1:6380/1", "redis://[::1]:6379/0", "redis://:secret@10.0.0.5:6379/0",
     "unix:///run/redis.sock"],
)  # fmt: skip
def test_redis_on_this_machine_or_with_a_password_is_accepted(url):
    assert Settings(redis_url=url).redis_url == url


@pytest.mark.parametrize("url", ["redis://10.0.0.5:6379/0", "redis://redis:6379/0", "redis://user@192.168.1.9/0"])
def test_redis_on_another_machine_without_a_password_is_refused_unless_allowed(url):
    with pytest.raises(ValidationError, match="without a password"):
        Settings(redis_url=url)
    assert Settings(redis_url=url, allow_open_redis=True).redis_url == url


def test_the_command_line_refuses_it_with_advice_and_no_traceback(tmp_path):
    env = {"DIGITS_REDIS_URL": "redis://10.0.0.5:6379/0", "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "digits.cli", "status"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "DIGITS_ALLOW_OPEN_REDIS=true" in done.stderr and "requirepass" in done.stderr
    assert "Traceback" not in done.stderr


def test_names_given_at_submit_never_make_anything_be_written_outside_the_results(client, served):
    from ingest import submit
    from tests.synth import draw_digits, encode

    before = {p for p in served.root.parent.rglob("*")}
    names = ["../../escape-1.png", "/tmp/escape-2.png", "..\\..\\escape-3.png"]
    job = submit([(name, encode(draw_digits("4"))) for name in names], annotate=True, celery=client)
    job.wait(timeout=60)
    rows = job.rows()
    assert sorted(row["source"] for row in rows) == sorted(names), "the names are kept as given, as data"
    pictures = [(job.csv_path.parent / row["annotation"]).resolve() for row in rows]
    assert all(p.is_file() and p.is_relative_to(served.results.resolve()) for p in pictures)
    created = {p for p in served.root.parent.rglob("*")} - before
    assert all(p.resolve().is_relative_to(served.results.resolve()) for p in created), created
    assert not list(Path("/tmp").glob("escape-*")) and not list(served.root.parent.parent.glob("escape-*"))
