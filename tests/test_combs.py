"""Comb boxes found inside a roughly drawn field, whether they share their sides or stand apart, each box's
inside delivered without its frame: crosses, upright strokes and the form's other lines do not mislead."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digits.layouts import load_layout
from digits.recognition.combs import comb_cells, find_boxes
from digits.recognition.model import get_models
from digits.recognition.pipeline import recognize_bytes
from digits.settings import Settings
from tests.synth import encode

PAPER, PRINT, INK = 240, 70, 30


BLOCK_DIGITS = {
    "S": [((4, 3), (12, 3)), ((12, 6), (12, 14))],  # a seven
    "F": [((4, 2), (4, 8)), ((4, 10), (12, 10)), ((10, 2), (10, 14))],  # a four
}
"""Strokes of block digits on a box of 16 x 16 units, the way a hand that lifts its pen leaves them: apart."""


def comb_field(
    marks: str, apart: bool = True, box: int = 56, gap: int = 14, line: int = 2, margin: tuple[int, int] = (30, 20)
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A field holding a row of printed boxes, one mark in each (a digit, "X" for a cross, "|" for a
    stroke from the box's top to its bottom, "O" for a square 0 nearly as tall as the box, " " for
    nothing, "S" and "F" for a block 7 and 4 written as forms ask, with the pen lifted between strokes,
    "i" for a 1 blurred too faint to count as ink),
    with ``margin`` (across, down) of paper around the row; and each box's printed frame as
    (left, top, right, bottom)."""
    count = len(marks)
    pitch = box + (gap if apart else 0)
    width, height = 2 * margin[0] + pitch * count + line, 2 * margin[1] + box + line
    field = np.full((height, width), PAPER, np.uint8)
    frames = []
    for i, mark in enumerate(marks):
        left, top = margin[0] + i * pitch, margin[1]
        right, bottom = left + box, top + box
        cv2.rectangle(field, (left, top), (right, bottom), PRINT, line)
        frames.append((left, top, right, bottom))
        inset = line + 3
        if mark == "X":
            cv2.line(field, (left + inset, top + inset), (right - inset, bottom - inset), INK, 3, cv2.LINE_AA)
            cv2.line(field, (right - inset, top + inset), (left + inset, bottom - inset), INK, 3, cv2.LINE_AA)
        elif mark == "O":
            cv2.rectangle(field, (left + box // 4, top + inset + 2), (right - box // 4, bottom - inset - 2), INK, 3)
        elif mark == "|":
            x = left + box // 3 + 5 * i  # not at the same place in every box, as no hand would
            cv2.line(field, (x, top + inset), (x, bottom - inset), INK, 3, cv2.LINE_AA)
        elif mark == "i":
            # A "1" a blurred photo left so faint that its box seems blank: less than MIN_CONTRAST darker.
            x = left + box // 2
            cv2.line(field, (x, top + inset + 4), (x, bottom - inset - 4), PAPER - 38, 4)
            inside = field[top + inset : bottom - inset + 1, left + inset : right - inset + 1]
            inside[:] = cv2.GaussianBlur(inside, (0, 0), 1.5)
        elif mark in BLOCK_DIGITS:
            for start, end in BLOCK_DIGITS[mark]:
                ends = [(left + x * box // 16, top + y * box // 16) for x, y in (start, end)]
                cv2.line(field, *ends, INK, 3, cv2.LINE_AA)
        elif mark != " ":
            font = cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC
            cv2.putText(field, mark, (left + box // 4, bottom - box // 5), font, box / 45, INK, 3, cv2.LINE_AA)
    return field, frames


def assert_inside_frames(found: list[tuple[int, int, int, int]], frames: list[tuple[int, int, int, int]]) -> None:
    """Each box found lies inside its printed frame, clear of its lines, and covers most of what they hold."""
    assert len(found) == len(frames)
    for (left, top, right, bottom), (fl, ft, fr, fb) in zip(found, frames, strict=True):
        assert fl + 2 <= left and right <= fr - 1 and ft + 2 <= top and bottom <= fb - 1
        assert right - left >= 0.8 * (fr - fl) and bottom - top >= 0.8 * (fb - ft)


def frame_left_in(cell: np.ndarray) -> bool:
    """Whether a printed line runs through ``cell``: a row or column inked over most of its length."""
    ink = cell < (PAPER + PRINT) / 2
    return bool(ink.mean(axis=0).max() > 0.6 or ink.mean(axis=1).max() > 0.6)


@pytest.mark.parametrize("apart", [True, False], ids=["boxes apart", "sides shared"])
def test_the_boxes_of_a_comb_are_found_and_their_frames_left_out(apart):
    field, frames = comb_field(" 47", apart=apart)
    assert_inside_frames(find_boxes(field, 3), frames)
    cells = comb_cells(field, 3)
    assert cells[0].image.min() > PAPER - 20, "an empty box gives paper only"
    assert not any(frame_left_in(cell.image) for cell in cells)
    assert [(cell.left, cell.top) for cell in cells] == [box[:2] for box in find_boxes(field, 3)]


def test_crosses_and_upright_strokes_are_not_taken_for_printed_sides():
    field, frames = comb_field("X|X|", gap=10)
    assert_inside_frames(find_boxes(field, 4), frames)
    crossed = comb_cells(field, 4)[0].image
    assert crossed.min() < INK + 40, "a crossed box's inside is delivered, cross and all, for the reader to judge"
    assert not frame_left_in(crossed)


def test_a_region_drawn_loosely_around_the_boxes_still_finds_them():
    field, frames = comb_field("123", margin=(60, 30))
    # The form's own rules above and beside the comb, caught by the loose region.
    cv2.line(field, (0, 8), (field.shape[1], 8), PRINT, 2)
    cv2.line(field, (field.shape[1] - 8, 0), (field.shape[1] - 8, field.shape[0]), PRINT, 2)
    # Off centre: the layout was drawn by eye.
    shifted = field[:, 35:]
    found = find_boxes(shifted, 3)
    assert_inside_frames(found, [(fl - 35, ft, fr - 35, fb) for fl, ft, fr, fb in frames])


def test_a_region_drawn_through_the_boxes_finds_them_just_beyond_it():
    field, frames = comb_field("X47", margin=(30, 20))
    top = frames[0][1] + 6  # the region's top edge runs below the boxes' top rule
    cells = comb_cells(field, 3, (0, top, field.shape[1], field.shape[0]))
    found = [(c.left, c.top, c.left + c.image.shape[1], c.top + c.image.shape[0]) for c in cells]
    assert_inside_frames(found, frames)
    assert not any(cell.framed or frame_left_in(cell.image) for cell in cells)


def test_boxes_whose_sides_a_dark_photo_left_broken_are_still_found():
    field, frames = comb_field(" 47")
    for left, top, _, bottom in frames[1:]:  # every other side broken over a third of its height
        field[top + (bottom - top) // 3 : top + 2 * (bottom - top) // 3, left - 2 : left + 3] = PAPER
    cells = comb_cells(field, 3)
    found = [(c.left, c.top, c.left + c.image.shape[1], c.top + c.image.shape[0]) for c in cells]
    assert_inside_frames(found, frames)


def test_a_field_without_boxes_is_divided_evenly():
    field = np.full((80, 300), PAPER, np.uint8)
    cv2.putText(field, "472", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, INK, 4)
    assert find_boxes(field, 3) is None
    cells = comb_cells(field, 3)
    assert [(cell.left, cell.top, cell.image.shape) for cell in cells] == [
        (0, 0, (80, 100)),
        (100, 0, (80, 100)),
        (200, 0, (80, 100)),
    ]


@pytest.fixture(scope="module")
def models():
    return get_models(Settings())


def read_comb_field(tmp_path, models, marks: str, left: int = 250, ext: str = ".jpg") -> list:
    """The rows of a page holding one comb field of ``marks`` (see ``comb_field``) at ``left``, read with a layout
    whose region is the field's."""
    field, _ = comb_field(marks)
    page = np.full((400, 700), PAPER, np.uint8)
    top = 150
    page[top : top + field.shape[0], left : left + field.shape[1]] = field
    height, width = page.shape
    region = [left / width, top / height, field.shape[1] / width, field.shape[0] / height]
    (tmp_path / "boxes.toml").write_text(f'[[fields]]\nname = "count"\nregion = {region}\ncomb = {len(marks)}\n')
    return recognize_bytes(encode(page, ext), f"boxes{ext}", "t", models, 0.9, load_layout("boxes", tmp_path))


def test_block_digits_written_with_the_pen_lifted_keep_every_stroke(tmp_path, models):
    # A 7's bar apart from its stem is no line of its own to leave out: without it, the 7 is a sure 1.
    rows = read_comb_field(tmp_path, models, "XSF")
    assert [(row.digits, row.status) for row in rows] == [("74", "ok")]


def test_digits_in_boxes_standing_apart_are_read_without_their_frames(tmp_path, models):
    rows = read_comb_field(tmp_path, models, "472", left=300, ext=".png")
    assert [row.digits for row in rows] == ["472"]


def test_a_box_that_seems_blank_but_holds_a_blurred_stroke_sends_its_field_to_review(tmp_path, models):
    # A blurred photo's faint "1" is no reason to read "471" as an ok "47"; a box left blank is.
    assert [(row.digits, row.status) for row in read_comb_field(tmp_path, models, "47 ")] == [("47", "ok")]
    (row,) = read_comb_field(tmp_path, models, "47i")
    assert row.status == "review"
    assert row.error.startswith("ink that may be a digit was left out")
