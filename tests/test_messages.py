"""The messages that carry files to the workers: one file, or a chunk of files that arrived together."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from digits.celery_app import CHUNK_BYTES, _chunks
from digits.contracts import JOB, FileChunk, FileTask, files_of


def _file(name: str, size: int = 10) -> FileTask:
    return FileTask.carrying(b"x" * size, kind=JOB, job_id="job-1", source=name)


def test_a_message_carries_one_file_under_its_own_id_or_a_chunk_with_each_files_id():
    alone = _file("a.png")
    assert files_of(alone.model_dump(), "message-1") == [("message-1", alone)]
    chunk = FileChunk(ids=["id-b", "id-c"], files=[_file("b.png"), _file("c.png")])
    carried = files_of(chunk.model_dump(), "message-2")
    assert [(file_id, file.source) for file_id, file in carried] == [("id-b", "b.png"), ("id-c", "c.png")]


@pytest.mark.parametrize(
    "message",
    [
        {"ids": ["id-a", "id-b"], "files": [_file("a.png").model_dump()]},  # an id without its file
        {"ids": [], "files": []},
        {"ids": ["id-a"], "files": [{"kind": "inbox", "command": "rm -rf /"}]},
        {"kind": "inbox", "command": "rm -rf /"},
    ],
)
def test_anything_else_is_refused(message):
    with pytest.raises(ValidationError):
        files_of(message, "message-3")


def test_files_sent_together_are_cut_into_chunks_bounded_by_count_and_bytes():
    small = [(f"id-{i}", _file(f"{i}.png")) for i in range(16 + 3)]
    large = ("id-large", _file("large.tif", CHUNK_BYTES))  # its base64 alone is over the bound
    chunks = _chunks([*small, large, ("id-last", _file("last.png"))], 16)
    assert [len(chunk) for chunk in chunks] == [16, 3, 1, 1]
    assert chunks[2] == [large]
    assert [file_id for chunk in chunks for file_id, _ in chunk] == [*(i for i, _ in small), "id-large", "id-last"]
