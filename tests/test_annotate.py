"""Review pictures: the boxes, digits and confidences a reviewer checks, and the ``annotation`` column."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digits.contracts import Row
from digits.layouts import load_layout
from digits.recognition.annotate import COLOURS, MIN_HEIGHT, TITLE_HEIGHT, Pictures, draw
from digits.recognition.model import get_models
from digits.recognition.pipeline import recognize_bytes
from digits.results import read_rows
from digits.samples import SAMPLE_VALUES, draw_page, scan_bytes
from digits.settings import Settings
from ingest import submit
from layouts import FOLDER


def cheque_png() -> bytes:
    return scan_bytes([draw_page(load_layout("cheque", FOLDER), SAMPLE_VALUES["cheque"][0])], ".png")


def test_each_digit_box_is_drawn_where_the_row_says_in_the_status_colour():
    field = np.full((100, 300), 240, np.uint8)
    row = Row(
        job_id="j", source="a.png", page=1, field="amount", digits="17", confidence="0.5100",
        status="review", digit_confidences="0.9900;0.5100", boxes="110,20,30,40;160,20,30,40",
    )  # fmt: skip
    picture = draw(row, field, left=100, top=0)
    scale = MIN_HEIGHT / 100  # a field lower than MIN_HEIGHT is enlarged
    assert picture.shape == (TITLE_HEIGHT + MIN_HEIGHT, round(300 * scale), 3)
    for x, y, w, h in ((110, 20, 30, 40), (160, 20, 30, 40)):
        # Each corner of each box, moved by the field's corner on the page and the enlargement.
        for cx, cy in ((x, y), (x + w, y), (x, y + h), (x + w, y + h)):
            pixel = picture[TITLE_HEIGHT + round(cy * scale), round((cx - 100) * scale)]
            assert tuple(int(v) for v in pixel) == COLOURS["review"], (cx, cy)
    # Labels are drawn above the boxes, the title in the band: neither is blank.
    assert (picture[:TITLE_HEIGHT] != 255).any()
    assert (picture[TITLE_HEIGHT : TITLE_HEIGHT + round(20 * scale)] != 240).any()


@pytest.fixture(scope="module")
def models():
    return get_models(Settings())


def test_only_rows_to_review_get_a_picture_unless_every_row_is_asked_for(models, tmp_path):
    # A layout that expects five amount digits sends the four-digit amount to review.
    text = (FOLDER / "cheque.toml").read_text().replace("max_digits = 8", "digits = 5")
    (tmp_path / "strict.toml").write_text(text)
    layout = load_layout("strict", tmp_path)
    rows = recognize_bytes(cheque_png(), "cheque.png", "t", models, 0.9, layout, Pictures(tmp_path / "out"))
    statuses = {row.field: (row.status, row.annotation) for row in rows}
    assert statuses["date"] == ("ok", "")
    status, annotation = statuses["amount"]
    assert status == "review" and annotation.startswith("annotations/") and annotation.endswith("-p1-amount.png")
    picture = cv2.imread(str(tmp_path / "out" / annotation))
    assert picture is not None and picture.shape[0] >= TITLE_HEIGHT + MIN_HEIGHT

    every = recognize_bytes(cheque_png(), "cheque.png", "t", models, 0.9, layout, Pictures(tmp_path / "all", True))
    assert all((tmp_path / "all" / row.annotation).is_file() for row in every)


def test_a_job_submitted_with_annotate_has_a_picture_for_every_row_beside_its_csv(client):
    pages = [draw_page(load_layout("form", FOLDER), values, seed=i) for i, values in enumerate(SAMPLE_VALUES["form"])]
    job = submit([("form.tif", scan_bytes(pages, ".tif"))], layout="form", annotate=True, celery=client)
    job.wait(timeout=90)
    rows = job.rows()
    assert len(rows) == 8
    pictures = [job.csv_path.parent / row["annotation"] for row in rows]
    assert all(path.is_file() for path in pictures)
    assert len(set(pictures)) == 8, "a picture per page and field"
    written = {row["annotation"] for row in read_rows(job.csv_path)}
    assert written == {row["annotation"] for row in rows}
