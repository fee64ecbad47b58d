"""The ingester in this process, when the results disk refuses its own writes: it waits and goes on, losing nothing."""

from __future__ import annotations

from billiard.exceptions import TimeLimitExceeded

import ingest.watcher
from digits.celery_app import make_app
from digits.results import read_rows
from digits.settings import Settings
from ingest.watcher import Ingester


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
