"""The ingester in this process: queueing a burst of files in chunks, and waiting, losing nothing, when the results disk
refuses its own writes."""

from __future__ import annotations

import base64
import json
import math

from billiard.exceptions import TimeLimitExceeded
from redis import Redis

import ingest.watcher
from digits.celery_app import PUBLISH_CHUNK, QUEUE, make_app
from digits.contracts import files_of
from digits.results import read_rows
from digits.settings import Settings
from ingest.watcher import QUEUED_KEY, Ingester


def test_a_failed_file_waits_in_processing_while_its_error_row_cannot_be_written(tmp_path, private_redis, monkeypatch):
    settings = Settings(redis_url=private_redis.url, inbox=tmp_path / "inbox", archive=tmp_path,
                        results=tmp_path / "results")  # fmt: skip
    celery = make_app(private_redis.url)
    ingester = Ingester(settings, celery)
    # A task that failed for good (its file hung a worker) while the results disk refuses writes:
    # "results" is a file, so no CSV can be made below it, whoever writes.
    settings.results.write_text("not a folder")
    path = tmp_path / "processing" / "drop-1" / "hung.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"the scan")
    ingester.in_flight["drop-1"] = path
    celery.backend.mark_as_failure("drop-1", TimeLimitExceeded(20))

    ingester.collect()  # before, this raised and the ingester exited
    assert path.read_bytes() == b"the scan" and "drop-1" in ingester.in_flight

    settings.results.unlink()  # room again
    monkeypatch.setattr(ingest.watcher, "COLLECT_RETRY_SECONDS", 0)
    ingester._next_collect_try = 0
    ingester.collect()
    assert (tmp_path / "failed" / "hung.png").read_bytes() == b"the scan"
    assert not ingester.in_flight
    [row] = [row for csv_path in (settings.results / "inbox").glob("*.csv") for row in read_rows(csv_path)]
    assert row["source"] == "hung.png" and row["status"] == "error" and "time limit" in row["error"]


def test_empty_drop_folders_left_by_a_killed_ingester_are_removed_when_it_starts(tmp_path, private_redis):
    settings = Settings(redis_url=private_redis.url, inbox=tmp_path / "inbox", archive=tmp_path,
                        results=tmp_path / "results")  # fmt: skip
    ingester = Ingester(settings, make_app(private_redis.url))
    # Killed after making a drop's folders but before moving the file in (a file from a sub-folder).
    (tmp_path / "processing" / "drop-empty" / "cheque").mkdir(parents=True)
    waiting = tmp_path / "processing" / "drop-full" / "cheque" / "left.png"
    waiting.parent.mkdir(parents=True)
    waiting.write_bytes(b"the scan")

    ingester.recover()
    assert [p.name for p in (tmp_path / "processing").iterdir()] == ["drop-full"]
    assert waiting.read_bytes() == b"the scan"
    assert ingester.unsent == {"drop-full": waiting}


def test_a_file_waits_in_processing_under_its_drop_id_without_a_folder_of_its_own(tmp_path, private_redis):
    settings = Settings(redis_url=private_redis.url, inbox=tmp_path / "inbox", archive=tmp_path,
                        results=tmp_path / "results")  # fmt: skip
    (settings.inbox / "cheque").mkdir(parents=True)
    (settings.inbox / "cheque" / "taken.png").write_bytes(b"the scan")
    ingester = Ingester(settings, make_app(private_redis.url))
    ingester.take(settings.inbox / "cheque" / "taken.png")
    [(drop_id, path)] = ingester.unsent.items()
    assert path == tmp_path / "processing" / "cheque" / f"{drop_id}__taken.png" and path.read_bytes() == b"the scan"

    # A restarted ingester finds it (and an earlier version's processing/<drop_id>/<rel> beside it).
    old = tmp_path / "processing" / "drop-old" / "left.png"
    old.parent.mkdir()
    old.write_bytes(b"another scan")
    restarted = Ingester(settings, make_app(private_redis.url))
    restarted.recover()
    assert restarted.unsent == {drop_id: path, "drop-old": old}
    assert [restarted._source(p) for p in (path, old)] == ["cheque/taken.png", "left.png"]
    restarted._archive(path, tmp_path / "done")
    assert (tmp_path / "done" / "cheque" / "taken.png").read_bytes() == b"the scan"
    assert (tmp_path / "processing" / "cheque").is_dir(), "the inbox's folder stays, for the next file"


def test_a_burst_of_files_is_queued_a_chunk_at_a_time_and_refused_files_fail_on_the_way(tmp_path, private_redis):
    settings = Settings(redis_url=private_redis.url, inbox=tmp_path / "inbox", archive=tmp_path,
                        results=tmp_path / "results", stable_seconds=0, max_file_mb=0.001)  # fmt: skip
    settings.inbox.mkdir()
    files = 2 * PUBLISH_CHUNK + 5
    for i in range(files):
        (settings.inbox / f"scan-{i:03d}.png").write_bytes(b"a scan %d" % i)
    (settings.inbox / "huge.png").write_bytes(b"x" * 2000)  # over the 0.001 MB limit
    (settings.inbox / "link.png").symlink_to(settings.inbox / "scan-000.png")
    redis = Redis.from_url(private_redis.url)
    ingester = Ingester(settings, make_app(private_redis.url))
    notes = []
    note = ingester._marks.sadd
    ingester._marks.sadd = lambda key, *ids: notes.append(ids) or note(key, *ids)

    ingester.sweep()
    ingester.tick()  # notes each file's size
    ingester.tick()  # unchanged since: taken and queued

    assert not ingester.unsent and len(ingester.in_flight) == files
    messages = [json.loads(m) for m in redis.lrange(QUEUE, 0, -1)]
    carried = [files_of(json.loads(base64.b64decode(m["body"]))[0][0], m["headers"]["id"]) for m in messages]
    assert sorted(file_id for files in carried for file_id, _ in files) == sorted(ingester.in_flight)
    assert {m.decode() for m in redis.smembers(QUEUED_KEY)} == set(ingester.in_flight)
    # One note per chunk (the two refused files took their places in theirs), after its messages.
    assert len(notes) == math.ceil((files + 2) / PUBLISH_CHUNK) and max(map(len, notes)) <= PUBLISH_CHUNK
    # The files of each chunk travel together, a few messages for many files.
    assert len(messages) == sum(math.ceil(len(ids) / settings.chunk_files) for ids in notes)
    assert max(map(len, carried)) == settings.chunk_files
    failed = {p.name: p for p in (tmp_path / "failed").iterdir()}
    assert "over the 0.001 MB limit" in failed["huge.png.error.txt"].read_text()
    assert "symbolic links are not followed" in failed["link.png.error.txt"].read_text()
