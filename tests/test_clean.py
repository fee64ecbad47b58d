"""Cleaning a page before digits are looked for: margins, uneven light, rules and other lines left out, digits kept."""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.clean import clean_page, flattened, main_line, skew, without_margins, without_rules
from digits.recognition.lines import stroke_width
from tests.synth import draw_digits


def ink(page: np.ndarray) -> np.ndarray:
    return page < 128


def register_crop() -> tuple[np.ndarray, np.ndarray]:
    """A row number as an archive cuts it from a register: a dark margin at the left, ruled lines, printed
    words at its foot. Returns the crop and where its digits' ink is."""
    digits = draw_digits("47", height=40, margin=20)
    h, w = digits.shape
    crop = np.full((h * 3, w + 60), 235, np.uint8)
    crop[h : 2 * h, 50 : 50 + w] = digits
    crop[:, :40] = 25  # the page's edge and the dark beyond it
    crop[:, 40:46] = np.linspace(60, 220, 6).astype(np.uint8)  # its shaded edge
    crop[8:10, 40:] = 90  # a rule across the top, from the margin to the crop's edge
    crop[:, -5:-3] = 100  # the column's rule at the right
    cv2.putText(crop, "Trykt for", (55, crop.shape[0] - 6), cv2.FONT_HERSHEY_PLAIN, 0.8, 60, 1)
    digits_ink = np.zeros(crop.shape, bool)
    digits_ink[h : 2 * h, 50 : 50 + w] = ink(digits)
    return crop, digits_ink


def test_a_register_crop_keeps_its_digits_and_loses_its_margin_rules_and_printed_foot():
    crop, digits_ink = register_crop()
    cleaned = clean_page(crop)
    assert cleaned.shape == crop.shape, "boxes stay in page pixels"
    kept = ink(cleaned)
    assert kept[digits_ink].mean() > 0.95, "the digits' strokes stay"
    assert not kept[~cv2.dilate(digits_ink.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)].any(), (
        "nothing but the digits is left: no margin, no rule, no print"
    )


def test_what_is_left_of_a_ragged_page_edge_beside_its_margin_goes():
    crop, digits_ink = register_crop()
    h = crop.shape[0] // 3
    crop[2 * h + 4 : 3 * h - 4, 46:49] = 90  # a sliver of the page's edge, beyond the margin's straight border
    kept = ink(clean_page(crop))
    assert kept[digits_ink].mean() > 0.95, "the digits stay"
    assert not kept[:, 40:50].any(), "the edge's remains go"


def test_a_digit_touching_a_stroke_along_a_tight_crops_side_stays():
    digit = draw_digits("7", height=40, margin=4)
    digit = digit[: np.flatnonzero(ink(digit).any(axis=1))[-1] + 1]  # cut right under the 7's foot
    # A neighbour's stroke (or a printed line) along the crop's foot, dark from end to end, touching the 7.
    crop = np.vstack([digit, np.full((3, digit.shape[1]), 30, np.uint8)])
    seven = ink(digit)
    assert ink(clean_page(crop))[:-3][seven].mean() > 0.95, "a margin as thin as a stroke takes no digit with it"


def test_a_rule_through_a_digit_goes_and_the_strokes_that_cross_it_stay():
    page = draw_digits("17", height=60, margin=30)
    y = page.shape[0] // 2
    page[y - 1 : y + 2, :] = 40  # a printed line right through both digits
    cleaned = without_rules(page)
    written = ink(page)[: y - 4].any(axis=0) | ink(page)[y + 4 :].any(axis=0)
    assert (cleaned[y, ~written] > 200).all(), "the rule is gone"
    column = ink(page)[:, 15:-15].any(axis=0)
    crossed = [x for x in np.flatnonzero(column) if ink(page)[y - 4, x + 15] and ink(page)[y + 4, x + 15]]
    assert crossed and all(ink(cleaned)[y, x + 15] for x in crossed), "where a stroke crosses the rule, it is whole"


def test_uneven_light_and_a_light_on_dark_scan_are_no_margin():
    page = draw_digits("305", height=60)
    shaded = (page * np.linspace(0.5, 1.0, page.shape[1])[None, :]).astype(np.uint8)  # a lamp at the right
    plain = ink(clean_page(page)).sum()
    assert abs(ink(clean_page(shaded)).sum() - plain) < 0.03 * plain, "the shade is not ink"
    inverted = 255 - page  # light ink on dark paper: the dark is paper, not a margin
    assert np.array_equal(without_margins(inverted), inverted)
    assert abs(ink(clean_page(inverted)).sum() - plain) < 0.03 * plain


def test_a_single_digit_filling_its_scan_is_never_taken_for_a_margin_or_a_rule():
    one = draw_digits("1", height=60, margin=3)
    assert ink(clean_page(one)).sum() >= 0.97 * ink(one).sum()
    for digits in ("7", "11", "-"):
        tight = draw_digits(digits, height=60, margin=3) if digits != "-" else dash()
        assert ink(clean_page(tight)).sum() >= 0.97 * ink(tight).sum(), digits


def dash() -> np.ndarray:
    page = np.full((30, 90), 240, np.uint8)
    page[13:18, 4:86] = 30
    return page


def test_only_the_main_line_of_ink_stays():
    page = np.full((300, 200), 255, np.uint8)
    digits = draw_digits("52", height=40, margin=10, paper=255)
    page[120 : 120 + digits.shape[0], 20 : 20 + digits.shape[1]] = digits
    cv2.putText(page, "note", (60, 30), cv2.FONT_HERSHEY_PLAIN, 1.0, 0, 1)  # small print far above
    kept = ink(main_line(page))
    assert kept[120:].sum() == ink(page)[120:].sum() and not kept[:60].any()


def test_a_faint_number_outweighs_a_bold_printed_foot_and_a_rule_joining_them():
    page = np.full((240, 120), 255, np.uint8)
    digits = draw_digits("40", height=24, margin=0, thickness=1, ink=175, paper=255)  # faded ink, a fine pen
    page[90 : 90 + digits.shape[0], 40 : 40 + digits.shape[1]] = digits
    cv2.putText(page, "Trykt for", (4, 232), cv2.FONT_HERSHEY_DUPLEX, 0.5, 20, 2)  # the form's bold foot
    cv2.line(page, (110, 0), (112, 239), 150, 1)  # the column's rule, faint and slanted: cleaning left it
    kept = main_line(page) < 0.8 * 255
    faint = page < 0.8 * 255
    number = (slice(90, 90 + digits.shape[0]), slice(0, 100))
    assert kept[number].sum() == faint[number].sum(), "the number stays"
    assert not kept[215:, :100].any(), "the print goes"


def test_a_year_written_above_a_row_number_is_not_its_line():
    page = np.full((200, 120), 255, np.uint8)
    year = draw_digits("1934", height=22, margin=0, gap=4, paper=255)
    page[8 : 8 + year.shape[0], 10 : 10 + year.shape[1]] = year
    number = draw_digits("1", height=20, margin=0, paper=255)
    page[90 : 90 + number.shape[0], 50 : 50 + number.shape[1]] = number
    kept = ink(main_line(page))
    assert kept[90:].sum() == ink(page)[90:].sum(), "the row's number stays"
    assert not kept[:60].any(), "the year above it goes"


def test_a_one_filling_a_tight_crop_is_never_taken_for_a_rule_and_painted_away():
    one = draw_digits("1", height=60, margin=3, thickness=1, paper=255)  # a fine pen
    page = np.full((one.shape[0], one.shape[1] + 40), 255, np.uint8)
    page[:, : one.shape[1]] = one
    page[-8:-3, -12:-7] = 0  # a full stop after it
    page[2:6, -10:-2] = 0  # and a speck above that, a band of its own
    kept = ink(main_line(page))
    assert kept[:, : one.shape[1]].sum() == ink(one).sum(), "the 1 stays whole"


def test_a_hairline_left_of_a_pages_edge_is_no_line_of_writing():
    page = np.full((200, 120), 255, np.uint8)
    digits = draw_digits("37", height=20, margin=0, paper=255)
    page[80 : 80 + digits.shape[0], 40 : 40 + digits.shape[1]] = digits
    page[0:30, 20] = 60  # a pixel-thin piece of the page's edge, taller than the digits
    kept = ink(main_line(page, stroke_width(page)))
    assert kept[80:].sum() == ink(page)[80:].sum(), "the number stays"


def test_a_hairline_half_as_thick_as_a_fine_pens_strokes_is_no_line_of_writing():
    # A register row scanned at 150 dpi: its small "0" 2 pixels wide, a piece of the column's rule 1 pixel wide.
    page = np.full((67, 68), 255, np.uint8)
    cv2.ellipse(page, (50, 30), (3, 4), 0, 0, 360, 60, 1, cv2.LINE_AA)
    page[0:16, 66] = 120
    assert stroke_width(page) == 2
    kept = main_line(page, 2) < 0.8 * 255
    assert kept[20:40].sum() == (page < 0.8 * 255)[20:40].sum(), "the 0 stays"


def test_a_rules_hairline_above_the_only_line_of_writing_is_painted():
    page = np.full((90, 120), 255, np.uint8)
    cv2.putText(page, "81", (40, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 40, 3)
    page[8, 30:75] = 140  # a piece of a rule's hairline along the crop's top
    stroke = stroke_width(page)
    assert stroke >= 3
    kept = main_line(page, stroke) < 0.8 * 255
    assert not kept[:15].any(), "the hairline goes"
    assert kept[20:70].sum() == (page < 0.8 * 255)[20:70].sum(), "the number stays whole"


def small_zero(height: int, width: int, paper: int) -> np.ndarray:
    """A page with a small "0" in its middle drawn a pixel wide, as a register row scanned at 150 dpi."""
    page = np.full((height, width), paper, np.uint8)
    cv2.ellipse(page, (width // 2, height // 2), (3, 4), 0, 0, 360, paper - 150, 1)
    return page


def test_the_stroke_width_is_the_pens_not_that_of_a_shade_beside_the_page_edge():
    page = small_zero(104, 56, 210).astype(np.float32)
    page[:, :22] *= np.linspace(0.87, 1.0, 22)[None, :]  # a shade 22 px wide, never 30 levels darker
    assert stroke_width(page.astype(np.uint8)) <= 3


def test_a_rule_along_a_crops_side_goes_though_it_reaches_neither_end_or_breaks_up():
    broken = small_zero(104, 56, 235)
    broken[:70, 52] = 90  # a page's edge line, broken up by a coarse scan
    broken[78:82, 52:54] = broken[85:, 52:54] = 100
    beside = small_zero(121, 57, 235)
    beside[12:107, 55:] = 90  # a rule the crop was cut beside, reaching neither its top nor its foot
    for page in (broken, beside):
        cleaned = without_rules(flattened(page))
        assert not ink(cleaned)[:, 50:].any(), "no piece of the line stays"
        assert ink(cleaned).sum() == ink(page)[:, :50].sum(), "the 0 stays whole"


def test_the_faint_shade_beside_a_margin_goes_with_it():
    crop = small_zero(208, 110, 210).astype(np.float32)
    crop[:, :30] = 20  # the dark beyond the page's edge
    crop[:, 30:50] *= np.linspace(0.86, 0.91, 20)[None, :]  # the page's shade beside it, wider than a stroke
    cleaned = clean_page(crop.astype(np.uint8))
    assert cleaned[:, :50].min() == 255, "no grey is left where a small number's ink would join it"
    assert ink(cleaned).sum() == ink(crop)[:, 50:].sum(), "the 0 stays whole"


def turned(image: np.ndarray, angle: float, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """``image`` turned ``angle`` degrees anticlockwise about its middle, as a page laid askew on a scanner."""
    h, w = image.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def test_a_register_crop_turned_a_few_degrees_loses_its_margin_and_rules_as_a_straight_one_does():
    crop, digits_ink = register_crop()
    for angle in (-3.5, 2.5):
        turned_crop = turned(crop, angle)
        turned_digits = turned(digits_ink.astype(np.uint8), angle, cv2.INTER_NEAREST) > 0
        assert abs(skew(turned_crop) - angle) < 0.3, "the slant is measured"
        cleaned = clean_page(turned_crop)
        assert cleaned.shape == crop.shape, "boxes stay in page pixels"
        kept = ink(cleaned)
        assert kept[turned_digits].mean() > 0.9, "the digits' strokes stay"
        near = cv2.dilate(turned_digits.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        assert not kept[~near].any(), "nothing but the digits is left: no margin, no rule, no print"
    assert skew(crop) == 0, "a straight crop is cleaned as it is"


def test_a_slanted_one_filling_a_tight_crop_keeps_its_ink_whether_or_not_it_is_straightened():
    for thickness in (1, 4):
        one = draw_digits("1", height=60, margin=3, thickness=thickness)
        for angle in (-4.0, -2.0, 3.0):
            slanted = turned(one, angle)
            assert ink(clean_page(slanted)).sum() >= 0.97 * ink(slanted).sum(), (thickness, angle)
