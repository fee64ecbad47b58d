"""Nothing gets in: Redis off this machine needs a password; names, links and queue messages stay data."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import Connection
from pydantic import ValidationError

from digits.celery_app import QUEUE, RECOGNIZE_TASK
from digits.settings import Settings
from ingest import submit
from tests.conftest import wait_until
from tests.synth import draw_digits, encode


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


def test_symbolic_links_in_the_inbox_are_never_followed_out_of_it(inbox_stack, tmp_path):
    secret = tmp_path / "outside" / "secret-42.png"
    secret.parent.mkdir()

    secret.write_bytes(encode(draw_digits("42")))
    inbox_stack.inbox.mkdir(parents=True, exist_ok=True)
    (inbox_stack.inbox / "link-42.png").symlink_to(secret)
    (inbox_stack.inbox / "linked-folder").symlink_to(secret.parent, target_is_directory=True)
    inbox_stack.dropped.update({"link-42.png", "linked-folder/secret-42.png"})
    inbox_stack.start_ingester()
    [row] = inbox_stack.wait_for_inbox_rows(1, timeout=60)
    assert row["source"] == "link-42.png" and row["status"] == "error"
    assert "symbolic links are not followed" in row["error"] and row["digits"] == "" and row["sha256"] == ""
    wait_until(lambda: (inbox_stack.failed / "link-42.png").is_symlink(), 10, "the link itself in failed/")
    time.sleep(2)  # a rescan or two: the linked folder's file is never taken either
    assert len(inbox_stack.inbox_rows()) == 1
    assert secret.read_bytes() and (inbox_stack.inbox / "linked-folder").is_symlink()


def test_the_queue_runs_no_pickle_and_no_task_it_does_not_know(client, served):
    with Connection(served.redis_url) as connection:
        producer = connection.Producer(serializer="pickle")
        payload = ((["/etc/passwd"],), {}, {})
        producer.publish(payload, routing_key=QUEUE, headers={"task": RECOGNIZE_TASK, "id": "pickled-1"},
                         serializer="pickle")  # fmt: skip
        producer.publish(((["touch /tmp/owned"],), {}, {}), routing_key=QUEUE, serializer="json",
                         headers={"task": "os.system", "id": "unknown-1"})  # fmt: skip
    # The worker refuses both and goes on serving.
    job = submit([("after-queue-attack-5.png", encode(draw_digits("5")))], celery=client)
    job.wait(timeout=60)
    assert job.rows()[0]["digits"] == "5"
    log = "".join(p.read_text(errors="replace") for p in served.root.glob("worker-*.log"))
    assert "untrusted content" in log or "ContentDisallowed" in log, "the pickled message was not refused"
    assert "unregistered task" in log.lower() and "os.system" in log
    assert not Path("/tmp/owned").exists()


def test_a_message_that_is_no_file_to_read_fails_alone_and_the_batch_goes_on(client, served):
    from digits.celery_app import task_states

    good = submit([("beside-bad-message-6.png", encode(draw_digits("6")))], celery=client)
    # Sent by name like any file, but not a FileTask: no source, no bytes, a field nobody knows.
    client.send_task(RECOGNIZE_TASK, args=[{"kind": "inbox", "command": "rm -rf /"}], task_id="not-a-file-1")
    # A chunk that names two files and carries none.
    client.send_task(RECOGNIZE_TASK, args=[{"ids": ["a", "b"], "files": []}], task_id="not-a-chunk-1")
    good.wait(timeout=60)
    assert good.rows()[0]["digits"] == "6"
    for refused in ("not-a-file-1", "not-a-chunk-1"):
        state = wait_until(lambda refused=refused: task_states(client, [refused]).get(refused), 30, "the refusal")
        assert state["status"] == "FAILURE" and "not a file to read" in str(state["result"])
