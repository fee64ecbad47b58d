"""Cutting digits out of a page and normalising them like MNIST."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from digits.recognition.borders import box_border_mask
from digits.recognition.segment import (
    CANVAS,
    faint,
    find_digits,
    grey_percentiles,
    ink_image,
    normalise_digit,
    shaded,
)
from tests.synth import draw_digits


def test_a_line_of_digits_is_cut_left_to_right():
    page = draw_digits("4071")
    digits = find_digits(page)
    assert len(digits) == 4
    xs = [d.box.x for d in digits]
    assert xs == sorted(xs)
    # Each box lies on the page and the boxes do not overlap.
    for left, right in itertools.pairwise(digits):
        assert left.box.x + left.box.w <= right.box.x
    assert all(d.image.shape == (CANVAS, CANVAS) for d in digits)


def test_blank_paper_has_no_digits():
    assert find_digits(np.full((200, 300), 235, np.uint8)) == []


def test_a_shade_beside_a_pages_edge_is_faint_and_a_pens_digit_is_not():
    shaded = np.full((200, 110), 235, np.uint8)
    shaded[:, :30] = np.linspace(190, 235, 30).astype(np.uint8)  # lighter away from where the margin was
    assert faint(shaded)
    written = draw_digits("7")
    assert not faint(written)
    # The same digit in pencil, barely darker than the paper, is faint too.
    assert faint(np.maximum(written, 200).astype(np.uint8))


def test_a_blurred_stroke_too_faint_to_be_ink_is_a_shade_and_a_blank_photos_noise_is_not():
    noise = np.random.default_rng(0).normal(0, 4, (40, 36))
    blank = np.clip(235 + noise, 0, 255).astype(np.uint8)
    assert ink_image(blank) is None and not shaded(blank)
    stroke = blank.copy()
    cv2.line(stroke, (18, 6), (18, 34), 197, 4)
    stroke = cv2.GaussianBlur(stroke, (0, 0), 1.5)
    assert ink_image(stroke) is None and shaded(stroke)


def test_light_ink_on_dark_paper_reads_like_dark_on_light():
    page = draw_digits("38")
    dark_on_light = find_digits(page)
    light_on_dark = find_digits(255 - page)
    assert [d.box for d in dark_on_light] == [d.box for d in light_on_dark]
    for a, b in zip(dark_on_light, light_on_dark, strict=True):
        assert np.abs(a.image - b.image).mean() < 0.02


def test_specks_of_dust_are_not_digits():
    page = draw_digits("7")
    rng = np.random.default_rng(1)
    for y, x in zip(rng.integers(5, page.shape[0] - 5, 12), rng.integers(5, page.shape[1] - 5, 12), strict=True):
        if page[y, x] > 200:
            cv2.circle(page, (int(x), int(y)), 1, 30, -1)
    assert len(find_digits(page)) == 1


def test_a_detached_bar_stays_with_its_digit():
    page = np.full((120, 100), 240, np.uint8)
    cv2.line(page, (40, 20), (75, 20), 20, 5)  # the 5's bar, not touching
    cv2.line(page, (40, 30), (40, 55), 20, 5)
    cv2.ellipse(page, (52, 75), (18, 18), 0, -100, 160, 20, 5)
    assert len(find_digits(page)) == 1


def test_an_underline_joins_no_digits_and_a_strike_through_is_kept():
    page = draw_digits("47", height=45)
    cut = [d.box for d in find_digits(page)]
    assert len(cut) == 2
    left, right = cut[0].x + cut[0].w // 2, cut[1].x + cut[1].w // 2
    bottom = cut[0].y + cut[0].h
    underlined = page.copy()
    # Drawn by hand under both digits, apart from them, and shorter than twice their height (no rule's remains).
    cv2.line(underlined, (left, bottom + 9), (right, bottom + 5), 30, 3)
    assert [d.box for d in find_digits(underlined)] == cut, "the underline is no digit, nor part of one"
    struck = page.copy()
    cv2.line(struck, (left, bottom - 22), (right, bottom - 24), 30, 3)
    assert len(find_digits(struck)) == 1, "a number struck through stays one piece, never two clean digits"


def test_a_digits_bowl_broken_off_below_it_is_no_underline():
    page = np.full((120, 110), 240, np.uint8)
    for start, end in (((35, 20), (75, 20)), ((35, 20), (35, 50)), ((35, 50), (70, 50)), ((70, 50), (76, 62))):
        cv2.line(page, start, end, 20, 4)  # a 5's bar, stem and the top of its bowl
    cv2.ellipse(page, (52, 70), (28, 14), 0, 10, 170, 20, 4)  # the rest of the bowl, apart: flat, but curved
    (five,) = find_digits(page)
    assert five.box.y + five.box.h > 80, "the bowl is part of the digit"


def test_normalised_digit_fits_mnist_box_with_centre_of_mass_in_the_middle():
    crop = np.zeros((300, 90), np.uint8)
    cv2.line(crop, (45, 10), (45, 290), 255, 12)
    image = normalise_digit(crop)
    ys, _xs = np.nonzero(image > 0.05)
    assert ys.max() - ys.min() + 1 <= 21  # the long side is scaled to 20 px
    assert image.max() == 1.0
    rows, cols = np.indices(image.shape)
    assert abs((rows * image).sum() / image.sum() - CANVAS / 2) <= 1
    assert abs((cols * image).sum() / image.sum() - CANVAS / 2) <= 1


def test_ink_image_is_none_for_a_flat_page_and_ink_high_otherwise():
    assert ink_image(np.full((50, 50), 128, np.uint8)) is None
    ink = ink_image(draw_digits("1"))
    assert ink is not None and ink.max() == 255 and (ink == 0).mean() > 0.5


def test_a_printed_box_border_is_found_and_an_oval_zero_is_not():
    page = np.zeros((80, 200), np.uint8)
    cv2.rectangle(page, (10, 10), (190, 70), 255, 2)
    cv2.ellipse(page, (60, 40), (12, 20), 0, 0, 360, 255, 3)  # a "0" inside the box
    border = box_border_mask(page > 0)
    assert border[10, 100] and border[40, 10] and border[70, 100] and border[40, 190]
    assert not border[40, 48] and not border[20, 60], "the zero is not part of the border"


def test_an_empty_form_box_has_no_digits():
    page = np.full((80, 200), 235, np.uint8)
    cv2.rectangle(page, (10, 10), (190, 70), 40, 2)
    assert find_digits(page) == []


def test_digits_touching_their_box_are_cut_apart_from_it():
    page = draw_digits("407", margin=12)
    ys, xs = np.nonzero(page < 128)
    cv2.rectangle(page, (int(xs.min()) - 1, int(ys.min()) - 1), (int(xs.max()) + 1, int(ys.max()) + 1), 40, 2)
    assert len(find_digits(page)) == 3


def test_read_whole_a_digit_keeps_the_specks_inside_its_box_and_drops_the_dust_outside():
    page = np.full((80, 80), 255, np.uint8)
    cv2.rectangle(page, (30, 10), (40, 60), 0, -1)  # the digit's main stroke
    for y in (14, 24, 34):
        page[y : y + 3, 45:48] = 0  # a thin stroke a coarse scan broke into specks, beside it
    cv2.rectangle(page, (30, 8), (50, 9), 0, -1)  # the bar that spans the digit's box
    page[72:75, 72:75] = 0  # dust
    (whole,) = find_digits(page, as_one=True)
    assert (whole.box.x, whole.box.y, whole.box.w, whole.box.h) == (30, 8, 21, 53)
    cut = find_digits(page)
    assert len(cut) == 1 and cut[0].box.w == 21, "cutting drops the specks, as before"
    assert not np.array_equal(whole.image, cut[0].image)


def test_a_rules_remains_far_longer_than_the_digits_beside_them_is_not_cut_as_a_digit():
    # An archive's crop: a small number, and what cleaning left of a rule (thin) and of a page edge's shade (faint).
    page = np.full((220, 150), 250, np.uint8)
    cv2.putText(page, "47", (70, 110), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 30, 2, cv2.LINE_AA)
    cv2.line(page, (20, 0), (20, 120), 60, 2)
    page[:, 130:145] = 215
    digits = find_digits(page)
    assert len(digits) == 2 and all(d.box.x >= 60 and d.box.x + d.box.w <= 125 for d in digits), digits


def test_grey_percentiles_are_numpys_counted_instead_of_sorted():
    rng = np.random.default_rng(7)
    for levels in (rng.integers(0, 256, (300, 200)), np.clip(rng.normal(230, 20, 5001), 0, 255), np.full(3, 9)):
        levels = levels.astype(np.uint8)
        q = (0, 1, 37.5, 50, 99, 99.9, 100)
        assert grey_percentiles(levels, q) == pytest.approx(np.percentile(levels, q), abs=1e-9)
