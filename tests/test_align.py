"""Page alignment: scans turned, shifted and at other resolutions still fit the layout drawn once."""

from __future__ import annotations

import numpy as np
import pytest

from digits.layouts import load_layout
from digits.recognition.align import align_page, find_paper, skew_degrees
from digits.recognition.model import get_models
from digits.recognition.pipeline import recognize_bytes
from digits.samples import PAPER, SAMPLE_VALUES, draw_page, scan_bytes
from digits.settings import Settings
from layouts import FOLDER
from tests.synth import on_scanner_bed, turned_in_place


@pytest.fixture(scope="module")
def models():
    return get_models(Settings())


def sample_pages(name: str, dpi: int = 200) -> list[np.ndarray]:
    layout = load_layout(name, FOLDER)
    return [draw_page(layout, values, dpi, seed=i) for i, values in enumerate(SAMPLE_VALUES[name])]


@pytest.mark.parametrize("degrees", [-5.0, -2.5, 3.0, 5.0])
def test_skew_of_a_form_turned_in_place_is_measured(degrees):
    page = sample_pages("form")[0]
    assert skew_degrees(page) == pytest.approx(0.0, abs=0.2)
    assert skew_degrees(turned_in_place(page, degrees)) == pytest.approx(degrees, abs=0.2)


@pytest.mark.parametrize(("degrees", "shift"), [(5.0, (0.0, 0.0)), (-5.0, (0.0, 0.0)), (0.0, (0.05, -0.04))])
def test_the_paper_is_cut_from_the_scanner_bed_and_straightened(degrees, shift):
    page = sample_pages("cheque")[0]
    paper = find_paper(on_scanner_bed(page, degrees, shift))
    assert paper.shape == pytest.approx(page.shape, rel=0.01)
    # The bed is gone: what was cut out is paper and print, not the bed's grey.
    edge = np.concatenate([paper[2, 2:-2], paper[-3, 2:-2], paper[2:-2, 2], paper[2:-2, -3]])
    assert np.median(edge) > PAPER - 20


def test_a_straight_page_that_fills_the_scan_is_left_as_it_is():
    page = sample_pages("form")[0]
    assert align_page(page) is page


SCANS = {
    "turned +5 on the bed": lambda page: on_scanner_bed(page, 5.0),
    "turned -5 on the bed": lambda page: on_scanner_bed(page, -5.0),
    "turned +5 in a feeder": lambda page: turned_in_place(page, 5.0),
    "turned -5 in a feeder": lambda page: turned_in_place(page, -5.0),
    "shifted on the bed": lambda page: on_scanner_bed(page, 0.0, (0.05, -0.04)),
}
"""What scanners do to a page, by name."""


@pytest.mark.parametrize("name", list(SAMPLE_VALUES))
@pytest.mark.parametrize("scan", [*SCANS, "150 dpi", "300 dpi"])
def test_every_field_is_read_right_on_turned_shifted_and_rescaled_samples(models, name, scan):
    if scan.endswith("dpi"):
        pages = sample_pages(name, dpi=int(scan.split()[0]))
    else:
        pages = [SCANS[scan](page) for page in sample_pages(name)]
    ext = ".png" if len(pages) == 1 else ".tif"
    rows = recognize_bytes(scan_bytes(pages, ext), f"{name}{ext}", "align", models, 0.9, load_layout(name, FOLDER))
    read = [(row.page, row.field, row.digits) for row in rows]
    expected = [
        (page, field, digits) for page, values in enumerate(SAMPLE_VALUES[name], 1) for field, digits in values.items()
    ]
    assert read == expected
