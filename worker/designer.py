"""The layout designer's task: a form's sample decoded, or read with the fields being drawn on it. Nothing is written.

The station (and ``digits layouts check``) sends it through Redis and waits
for its answer (``digits.celery_app.read_sample``): they never load
TensorFlow, and the sample is read by the same code, models and threshold as
every file the service reads.
"""

from __future__ import annotations

import base64
import hashlib

import cv2

from digits.celery_app import READ_SAMPLE_TASK, app
from digits.contracts import SampleResult, SampleTask
from digits.layouts import Layout, LayoutError, drawn_fields, load_layout
from digits.recognition.imaging import UnreadableImage, decode_pages
from digits.recognition.pipeline import Document, recognize_documents
from digits.settings import get_settings
from worker.tasks import models

DRAFT = "draft"
"""The name a layout being drawn goes by while it is tried."""


@app.task(name=READ_SAMPLE_TASK, pydantic=True)
def read_sample(task: SampleTask) -> SampleResult:
    """The sample's first page as a PNG (neither fields nor layout), or a row per field as read on it; why not,
    if it cannot be."""
    settings = get_settings()
    data = task.content()
    try:
        if len(data) > settings.max_file_bytes:
            raise UnreadableImage(f"{len(data):,} bytes, over the limit of DIGITS_MAX_FILE_MB")
        [page] = decode_pages(data, range(1, 2))
        height, width = page.shape
        if task.layout:
            layout = load_layout(task.layout, settings.layouts)
        elif task.fields:
            layout = Layout(DRAFT, drawn_fields(task.fields))
        else:
            encoded = cv2.imencode(".png", page)[1].tobytes()
            return SampleResult(width=width, height=height, page=base64.b64encode(encoded).decode("ascii"))
        document = Document([page], task.source, DRAFT, hashlib.sha256(data).hexdigest(), layout)
    except (UnreadableImage, LayoutError) as problem:
        return SampleResult(error=f"{task.source}: {problem}")
    rows = recognize_documents([document], models(), settings.review_threshold)[0]
    return SampleResult(width=width, height=height, rows=rows)
