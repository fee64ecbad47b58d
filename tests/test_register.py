"""Registration: photos of a form, however cropped, scaled, turned or seen at an angle, land their fields
on the layout drawn from one sample; pages that are not the form go to review, saying why."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from digits.contracts import OK, REVIEW
from digits.layouts import load_layout
from digits.recognition.combs import find_boxes
from digits.recognition.imaging import decode_pages
from digits.recognition.model import get_models
from digits.recognition.pipeline import OFF_PHOTO, UNMATCHED, recognize_bytes, region_pixels
from digits.recognition.register import MIN_AGREEMENT, MIN_LEAD, match_page, plausible, reference, register_page
from digits.samples import SAMPLE_VALUES, draw_page
from digits.settings import Settings
from layouts import FOLDER
from tests.conftest import REPO, SHARED_DATA
from tests.synth import encode, photographed

SAMPLE, FILLED = SAMPLE_VALUES["form"]
"""The form the layout is drawn from, and another one filled in otherwise."""


@pytest.fixture(scope="module")
def models():
    return get_models(Settings())


@pytest.fixture
def form_folder(tmp_path):
    """The shipped form layout, drawn from a sample that lies beside it as its reference."""
    text = (FOLDER / "form.toml").read_text()
    (tmp_path / "form.toml").write_text('reference = "form-sample.png"\n' + text)
    cv2.imwrite(str(tmp_path / "form-sample.png"), draw_page(load_layout("form", FOLDER), SAMPLE, seed=0))
    return tmp_path


def box_places(page: np.ndarray, region: tuple[float, float, float, float], count: int) -> np.ndarray:
    """The comb boxes found in a field, as fractions of the page (left, top, right, bottom per box)."""
    x0, y0, x1, y1 = region_pixels(region, page.shape)
    boxes = find_boxes(page[y0:y1, x0:x1], count)
    assert boxes is not None, "the field's boxes are not where the layout says"
    height, width = page.shape
    return np.array(
        [[(x0 + a) / width, (y0 + t) / height, (x0 + r) / width, (y0 + b) / height] for a, t, r, b in boxes]
    )


@pytest.mark.parametrize(
    "photo",
    [
        {"scale": 0.6, "upside_down": True},
        {"scale": 1.4},
        {"corners": ((0.15, 0.1), (0.85, 0.08), (0.9, 0.9), (0.12, 0.93)), "scale": 0.8},
    ],
    ids=["perspective, turned round, smaller", "perspective, larger", "small in the photo"],
)
def test_a_photographed_form_lands_its_fields_on_the_boxes(form_folder, photo):
    layout = load_layout("form", form_folder)
    sample = cv2.imread(str(layout.reference), cv2.IMREAD_GRAYSCALE)
    page = photographed(draw_page(layout, FILLED, seed=1), **photo)
    registered = register_page(page, layout.reference)
    assert registered is not None
    registered = registered.page
    assert registered.shape[0] / registered.shape[1] == pytest.approx(sample.shape[0] / sample.shape[1], abs=0.002)
    for field in (f for f in layout.fields if f.comb):
        found, drawn = box_places(registered, field.region, field.comb), box_places(sample, field.region, field.comb)
        # Within a tenth of a box's height of where the sample has them.
        tolerance = 0.1 * (drawn[0, 3] - drawn[0, 1])
        assert np.abs(found - drawn)[:, [1, 3]].max() < tolerance, field.name
        assert np.abs(found - drawn)[:, [0, 2]].max() < tolerance * sample.shape[0] / sample.shape[1], field.name


def test_a_photographed_form_is_read_right_through_its_reference(form_folder, models):
    layout = load_layout("form", form_folder)
    page = photographed(draw_page(layout, FILLED, seed=1), scale=0.8, upside_down=True)
    rows = recognize_bytes(encode(page), "photo.png", "t", models, 0.9, layout)
    assert [(row.field, row.digits) for row in rows] == list(FILLED.items())
    assert not any(row.error == UNMATCHED for row in rows)


def test_a_page_that_is_not_the_form_goes_to_review_saying_why(form_folder, models):
    layout = load_layout("form", form_folder)
    cheque = draw_page(load_layout("cheque", FOLDER), SAMPLE_VALUES["cheque"][0])
    assert register_page(cheque, layout.reference) is None
    rows = recognize_bytes(encode(cheque), "cheque.png", "t", models, 0.9, layout)
    assert [row.field for row in rows] == [field.name for field in layout.fields]
    assert {(row.status, row.error) for row in rows} == {(REVIEW, UNMATCHED)}


def test_the_reference_is_prepared_once_until_its_file_changes(form_folder):
    path = form_folder / "form-sample.png"
    first = reference(path)
    assert reference(path) is first
    cv2.imwrite(str(path), draw_page(load_layout("form", FOLDER), FILLED, seed=1))
    assert reference(path) is not first


def test_homographies_no_photo_could_give_are_refused():
    shape, ref = (1000, 800), (1000, 800)
    assert plausible(np.eye(3), shape, ref)
    assert plausible(np.diag([0.5, 0.5, 1.0]), (2000, 1600), ref), "a finer photo"
    assert plausible(np.diag([0.3, 0.3, 1.0]), (4000, 4000), ref), "the form in the middle of a larger photo"
    assert not plausible(np.diag([-1.0, 1.0, 1.0]), shape, ref), "a mirror image: paper seen from behind"
    assert not plausible(np.diag([0.5, 1.0, 1.0]), shape, ref), "half the form off the page"
    assert not plausible(np.diag([5.0, 5.0, 1.0]), shape, ref), "the form a fifth of the photo's width"
    assert not plausible(np.array([[1, 0, 0], [0, 1, 0], [0.002, 0, 1.0]]), shape, ref), "the horizon on the page"


C1 = SHARED_DATA / "c1-forms-sample" / "images"
"""Photos of filled-in C1 tally forms (shared data, never copied into the repository)."""


@pytest.fixture(scope="module")
def c1_folder(shared_data, tmp_path_factory):
    """The worked example's layout with TPS_041.jpg beside it as its reference, as docs/forms.md says."""
    if not C1.is_dir():
        pytest.skip(f"the C1 form photos are not at {C1}")
    folder = tmp_path_factory.mktemp("c1")
    shutil.copy(REPO / "docs" / "examples" / "c1" / "c1.toml", folder)
    shutil.copy(C1 / "TPS_041.jpg", folder / "c1-sample.jpg")
    return folder


@pytest.mark.needs_data
@pytest.mark.parametrize("photo", ["TPS_108.jpg", "TPS_430.jpg", "TPS_442.jpg", "TPS_157.jpg", "TPS_372.jpg"])
def test_real_photos_of_the_c1_form_land_each_field_on_its_boxes(c1_folder, photo):
    # Upside down (108, 430), dark (442), 218 pixels wide (157), the one whose fields moved most (372).
    layout = load_layout("c1", c1_folder)
    sample = decode_pages(layout.reference.read_bytes())[0]
    registered = register_page(decode_pages((C1 / photo).read_bytes())[0], layout.reference)
    assert registered is not None
    registered = registered.page
    for field in layout.fields:
        found, drawn = box_places(registered, field.region, 3), box_places(sample, field.region, 3)
        box_height = drawn[0, 3] - drawn[0, 1]
        assert np.abs(found - drawn)[:, [1, 3]].max() < 0.2 * box_height, field.name
        assert np.abs(found - drawn)[:, [0, 2]].max() < 0.2 * box_height * sample.shape[0] / sample.shape[1], field.name


def test_a_field_the_photo_ends_in_goes_to_review_saying_why(form_folder, models):
    layout = load_layout("form", form_folder)
    page = draw_page(layout, FILLED, seed=1)
    # The photo ends at 87% of the form's width: past the customer number's last box, through the last box of
    # the account number and of the date, and across the amount's region right of the written amount.
    photo = page[:, : round(0.87 * page.shape[1])]
    rows = {row.field: row for row in recognize_bytes(encode(photo), "photo.png", "t", models, 0.9, layout)}
    for name in ("customer", "amount"):
        assert (rows[name].digits, rows[name].status) == (FILLED[name], OK), name
    for name in ("account", "date"):
        assert (rows[name].status, rows[name].error) == (REVIEW, OFF_PHOTO), name


@pytest.mark.needs_data
def test_a_small_slanted_photo_that_fits_as_well_a_section_off_goes_to_review(c1_folder, models):
    # TPS_230 is 232 pixels wide; seen at an angle, its form shifted by one of its three alike sections agrees
    # with the reference about as well as in place, and its first field would be read from the second's boxes.
    layout = load_layout("c1", c1_folder)
    page = decode_pages((C1 / "TPS_230.jpg").read_bytes())[0]
    assert match_page(page, reference(layout.reference)).trusted
    slanted = photographed(page, ((0.155, 0.076), (0.983, 0.115), (0.927, 0.924), (0.129, 0.85)), 1.24, background=80)
    match = match_page(slanted, reference(layout.reference))
    assert match.agreement >= MIN_AGREEMENT and match.lead < MIN_LEAD and not match.trusted
    rows = recognize_bytes(encode(slanted), "slanted.png", "t", models, 0.95, layout)
    assert {(row.status, row.error) for row in rows} == {(REVIEW, UNMATCHED)}
