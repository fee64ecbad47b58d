"""Layouts: the file format, the shipped samples read field by field, and layouts chosen by folder or at submit."""

from __future__ import annotations

import csv
import re
import shutil

import pytest

from digits.layouts import LayoutError, layout_for_inbox_path, load_layout
from digits.recognition.model import get_models
from digits.recognition.pipeline import areas_of, fitted, open_document, recognize_bytes, region_pixels
from digits.samples import SAMPLE_VALUES, draw_page, scan_bytes, write_samples
from digits.settings import Settings
from ingest import submit
from layouts import FOLDER
from tests.conftest import REPO
from tests.synth import encode


@pytest.fixture(scope="module")
def models():
    return get_models(Settings())


def sample_pages(name: str) -> list:
    layout = load_layout(name, FOLDER)
    return [draw_page(layout, values, seed=i) for i, values in enumerate(SAMPLE_VALUES[name])]


def expected_rows(name: str) -> list[tuple[int, str, str]]:
    """(page, field, digits) of every field of every page of a sample, in layout order."""
    pages = enumerate(SAMPLE_VALUES[name], start=1)
    return [(page, field, digits) for page, values in pages for field, digits in values.items()]


@pytest.mark.parametrize("name", list(SAMPLE_VALUES))
def test_shipped_layouts_load(name):
    layout = load_layout(name, FOLDER)
    assert [f.name for f in layout.fields] == list(SAMPLE_VALUES[name][0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[fields]]\nregion = [0.1, 0.1, 0.2, 0.2]\n", "has no name"),
        ('[[fields]]\nname = "a"\nregion = [0.1, 0.1]\n', "region must be"),
        ('[[fields]]\nname = "a"\nregion = [0.9, 0.1, 0.2, 0.2]\n', "does not lie inside the page"),
        ('[[fields]]\nname = "a"\nregion = [0.1, 0.1, 0.2, 0.2]\ncomb = 0\n', "comb must be"),
        ('[[fields]]\nname = "a"\nregion = [0, 0, 1, 1]\n[[fields]]\nname = "a"\nregion = [0, 0, 1, 1]\n', "repeat"),
        ('description = "nothing"\n', r"no \[\[fields\]\]"),
        ("fields = [\n", "not valid TOML"),
        ('[[fields]]\nname = "a"\nregion = [0, 0, 1, 1]\nprinted = [[0.9, 0, 0.2, 1]]\n', "printed region"),
    ],
)
def test_a_layout_that_makes_no_sense_says_what_to_fix(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(LayoutError, match=message):
        load_layout("bad", tmp_path)


def test_unknown_or_unsafe_layout_names_are_refused_with_what_exists(tmp_path):
    with pytest.raises(LayoutError, match=r"no layout 'cheq'.*cheque, form"):
        load_layout("cheq", FOLDER)
    with pytest.raises(LayoutError, match="names a file"):
        load_layout("../etc/passwd", FOLDER)


FIELD = '[[fields]]\nname = "a"\nregion = [0.1, 0.1, 0.2, 0.2]\n'


def test_a_layout_names_its_reference_image_beside_it(tmp_path):
    (tmp_path / "sample.jpg").write_bytes(b"the sample")
    (tmp_path / "mine.toml").write_text('reference = "sample.jpg"\n' + FIELD)
    assert load_layout("mine", tmp_path).reference == tmp_path / "sample.jpg"
    (tmp_path / "plain.toml").write_text(FIELD)
    assert load_layout("plain", tmp_path).reference is None


@pytest.mark.parametrize("name", ["../sample.jpg", "/etc/passwd", "sub/sample.jpg", "sub\\sample.jpg", "..", "", 3])
def test_a_reference_outside_the_layouts_folder_is_refused(tmp_path, name):
    (tmp_path / "mine.toml").write_text(f"reference = {name!r}\n".replace("'", '"') + FIELD)
    with pytest.raises(LayoutError, match="plain file name of an image in the layout's folder"):
        load_layout("mine", tmp_path)


def test_a_missing_reference_image_says_where_to_put_it(tmp_path):
    (tmp_path / "mine.toml").write_text('reference = "sample.jpg"\n' + FIELD)
    with pytest.raises(LayoutError, match=re.escape(f"sample.jpg is not in {tmp_path}; copy the sample")):
        load_layout("mine", tmp_path)


def test_the_worked_example_of_a_form_from_one_sample_loads_once_its_sample_is_beside_it(tmp_path):
    shutil.copy(REPO / "docs" / "examples" / "c1" / "c1.toml", tmp_path)
    with pytest.raises(LayoutError, match=r"c1-sample\.jpg is not in"):
        load_layout("c1", tmp_path)
    (tmp_path / "c1-sample.jpg").write_bytes(b"the photo docs/forms.md says to copy")
    layout = load_layout("c1", tmp_path)
    assert [(f.name, f.comb) for f in layout.fields] == [("count1", 3), ("count2", 3), ("count3", 3)]


def test_an_inbox_folder_named_like_a_layout_uses_it():
    assert layout_for_inbox_path("cheque/scan-1.tif", FOLDER) == "cheque"
    assert layout_for_inbox_path("cheque/2026/scan-1.tif", FOLDER) == "cheque"
    assert layout_for_inbox_path("scan-1.tif", FOLDER) is None
    assert layout_for_inbox_path("receipts/scan-1.tif", FOLDER) is None


@pytest.mark.parametrize(("name", "ext"), [("cheque", ".png"), ("cheque", ".pdf"), ("form", ".tif"), ("form", ".pdf")])
def test_samples_give_one_right_row_per_field_and_page(models, name, ext):
    pages = sample_pages(name)
    data = scan_bytes(pages, ext)
    rows = recognize_bytes(data, f"{name}{ext}", "t", models, 0.9, load_layout(name, FOLDER))
    assert [(r.page, r.field, r.digits) for r in rows] == expected_rows(name)
    # The printed title holds digits (No. 4711-2026): outside every field, they never leak.
    assert not any("4711" in r.digits for r in rows)
    # Each digit's box lies inside its field's region on the page.
    layout = load_layout(name, FOLDER)
    height, width = pages[0].shape
    for row in rows:
        left, top, w, h = next(f.region for f in layout.fields if f.name == row.field)
        for box in row.boxes.split(";"):
            x, y, bw, bh = map(int, box.split(","))
            assert left * width - 1 <= x and x + bw <= (left + w) * width + 1
            assert top * height - 1 <= y and y + bh <= (top + h) * height + 1


def test_without_a_layout_the_page_is_one_field(models):
    rows = recognize_bytes(encode(sample_pages("cheque")[0]), "cheque.png", "t", models, 0.9)
    assert [(r.page, r.field) for r in rows] == [(1, "all")]


def test_the_samples_dropped_into_their_layout_folders_are_read_field_by_field(inbox_stack, tmp_path):
    # The shipped samples as a user gets them: cheque.png/.pdf and the two-page form.tif/.pdf.
    written = write_samples(tmp_path / "samples", FOLDER)
    with open(tmp_path / "samples" / "truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    inbox_stack.start_ingester()
    for path in written:
        layout = next(row["layout"] for row in truth if row["file"] == path.name)
        inbox_stack.drop(f"{layout}/{path.name}", path.read_bytes())
    rows = inbox_stack.wait_for_inbox_rows(len(truth), timeout=120)
    read = sorted((r["source"], r["page"], r["field"], r["digits"]) for r in rows)
    assert read == sorted((f"{t['layout']}/{t['file']}", t["page"], t["field"], t["digits"]) for t in truth)
    assert len(truth) == 20


def test_a_two_page_form_pdf_submitted_with_its_layout_gives_a_row_per_field_and_page(client):
    job = submit([("form.pdf", scan_bytes(sample_pages("form"), ".pdf"))], layout="form", celery=client)
    job.wait(timeout=90)
    rows = job.rows()
    assert [(r["page"], r["field"], r["digits"]) for r in rows] == expected_rows("form")
    assert {r["source"] for r in rows} == {"form.pdf"}


def test_submitting_with_an_unknown_layout_queues_nothing(client):
    with pytest.raises(LayoutError, match="no layout 'cheques'"):
        submit([("cheque.png", encode(sample_pages("cheque")[0]))], layout="cheques", celery=client)


def test_pre_printed_cents_in_the_amount_box_are_never_read(models, tmp_path):
    # The sample cheque has ",00" printed in its amount box; the layout marks that region `printed`.
    cheque = scan_bytes(sample_pages("cheque"), ".png")
    rows = recognize_bytes(cheque, "cheque.png", "t", models, 0.9, load_layout("cheque", FOLDER))
    assert next(r.digits for r in rows if r.field == "amount") == "1250"
    # The printed zeros are painted over before the field is read; without that line in the layout they stay.
    text = "\n".join(line for line in (FOLDER / "cheque.toml").read_text().splitlines() if "printed" not in line)
    (tmp_path / "unmarked.toml").write_text(text)
    marked, unmarked = load_layout("cheque", FOLDER), load_layout("unmarked", tmp_path)
    amount_field = next(f for f in marked.fields if f.name == "amount")
    for layout, inked in ((marked, False), (unmarked, True)):
        document = fitted(open_document(cheque, "cheque.png", "t", layout))
        [amount] = [a for a in areas_of(document.pages, layout) if a.field.name == "amount"]
        x0, y0, _, _ = region_pixels(amount.field.region, document.pages[0].shape)
        px0, py0, px1, py1 = region_pixels(amount_field.printed[0], document.pages[0].shape)
        cents = amount.image[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0]
        assert bool((cents < 128).any()) == inked
