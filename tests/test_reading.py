"""Reading a page two ways: CTC decoding, mapping frames to page boxes, and choosing a reading."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from digits.layouts import Field
from digits.recognition.choice import ReadingChoice
from digits.recognition.ctc import decode
from digits.recognition.lines import (
    FRAME_PIXELS,
    FRAMES,
    LINE_HEIGHT,
    LINE_WIDTH,
    SHRUNK_STROKE,
    THINNEST_STROKE,
    WIDEST_STROKE,
    prepare_line,
    reading_scale,
    stroke_width,
)
from digits.recognition.pipeline import (
    SEVERAL_SEEN,
    Reading,
    Support,
    _alone,
    _heard_in_a_box,
    _reads_more,
    choose,
    ok_bar,
    ok_until,
    sure_alone,
    sureness,
    why_review,
)
from digits.recognition.segment import Box, find_digits
from digits.training.choice import fit
from tests.conftest import REPO
from tests.synth import draw_digits


def logits_for(frames: list[int]) -> np.ndarray:
    """Logits whose best class per frame is given (0 is the blank, d + 1 the digit d)."""
    out = np.full((1, len(frames), 11), -5.0, np.float32)
    for t, best in enumerate(frames):
        out[0, t, best] = 5.0
    return out


def test_ctc_decoding_merges_repeats_and_drops_blanks():
    # "1", "1" again after a blank, then "0" held over three frames.
    [reading] = decode([logits_for([0, 2, 2, 0, 2, 0, 1, 1, 1, 0])])
    assert reading.digits == "110"
    assert reading.spans == [(1, 3), (4, 5), (6, 9)]
    assert all(0.99 < c <= 1 for c in reading.confidences)


def test_a_blank_line_reads_as_nothing():
    assert decode([logits_for([0] * FRAMES)])[0].digits == ""


def test_prepared_line_has_the_model_shape_and_maps_frames_back_to_the_page():
    page = draw_digits("4096", margin=40)
    line, placement = prepare_line(page)
    assert line.shape == (LINE_HEIGHT, LINE_WIDTH) and line.max() <= 1
    ys, xs = np.nonzero(page < 128)
    whole = placement.box(0, placement.width // 4)
    assert abs(whole.x - xs.min()) <= 3 and abs(whole.x + whole.w - xs.max()) <= 6
    assert abs(whole.y - ys.min()) <= 3


def test_a_register_crop_is_framed_around_its_writing_not_a_rules_remains_its_underline_or_its_printed_foot():
    digits = draw_digits("38", height=30, margin=0, paper=245)
    crop = np.full((240, 130), 245, np.uint8)
    top, left = 100, 45
    crop[top : top + digits.shape[0], left : left + digits.shape[1]] = digits
    written = slice(top, top + digits.shape[0])
    crop[0:110, 30:32] = 60  # what is left of the column's rule, from the crop's top into the line
    cv2.line(crop, (40, top + 42), (110, top + 36), 30, 3)  # the clerk's underline, longer than a digit
    cv2.putText(crop, "Trykt", (5, 234), cv2.FONT_HERSHEY_DUPLEX, 1.0, 20, 2)  # the form's printed foot
    _, placement = prepare_line(crop)
    assert placement.y >= written.start - 4, "the rule's remains above the line are not framed with it"
    assert placement.y + placement.h <= top + 50, "nor the printed foot below it"
    assert placement.x <= left + 2 and placement.x + placement.w >= left + digits.shape[1] - 2, "the digits are"


def test_a_faint_rule_broken_into_dashes_beside_a_number_does_not_frame_it():
    digits = draw_digits("9", height=18, margin=0, thickness=1, paper=245)  # a fine pen's stroke
    crop = np.full((200, 135), 245, np.uint8)
    top, left = 70, 95
    crop[top : top + digits.shape[0], left : left + digits.shape[1]] = digits
    # A column's rule a scan has faded into dashes, slanting a pixel: one of them more ink than the 9.
    for start, end in ((0, 14), (17, 25), (30, 48), (54, 59), (61, 69), (72, 102), (106, 120), (122, 139), (142, 147)):
        crop[start:end, 64 + start // 70 : 66 + start // 70] = 70
    _, placement = prepare_line(crop)
    assert placement.x >= left - 4 and placement.w <= digits.shape[1] + 8, "the rule is left beside the number"
    assert placement.h <= digits.shape[0] + 8, "and the number fills the line's height"


def _reading(
    digits: str, model: str, confidence: float = 0.99, width: int = 20, probability: float | None = None
) -> Reading:
    """A reading whose digits stand side by side, each ``width`` wide and 40 high."""
    boxes = [Box(i * width, 0, width, 40) for i in range(len(digits))]
    return Reading(digits, [confidence] * len(digits), boxes, model, probability=probability)


def test_agreeing_readings_are_only_as_sure_as_the_less_sure_model_but_never_less_than_the_string_models_alone():
    reading, support = choose(_reading("25", "cnn", 0.9), _reading("25", "crnn", 0.8))
    assert support == Support.AGREED and reading.digits == "25" and reading.confidences == [0.8, 0.8]
    # String models sure enough to stand alone, at their stricter bar: the classifier agreeing keeps them ok.
    reading, support = choose(_reading("25", "cnn", 0.6), _reading("25", "crnn", 0.99))
    assert (reading.digits, support) == ("25", Support.STRING_MODELS)
    assert min(reading.confidences) >= ok_bar(support, 0.95)
    assert reading.model == "cnn", "the row still names the classifier the service reads with"
    # Not where they read it unanimously only, nor where the classifier left out ink it is unsure is no digit.
    split = replace(_reading("25", "crnn", 0.99), unanimous=False)
    assert choose(_reading("25", "cnn", 0.6), split)[1] == Support.AGREED
    doubted = replace(_reading("25", "cnn", 0.6), marks=[0.7])
    reading, support = choose(doubted, _reading("25", "crnn", 0.99))
    assert ok_until(reading, support) < 0.9


def test_two_digits_written_close_that_the_classifier_reads_as_one_are_shown_as_the_string_models_read_them():
    # An "11" written close in the middle of a register crop, which the classifier reads whole as a "4".
    four = Reading("4", [0.88], [Box(77, 65, 25, 23)], "cnn", frame=Box(0, 0, 134, 190))
    eleven = Reading("11", [0.76, 0.92], [Box(80, 70, 10, 17), Box(90, 65, 9, 23)], "crnn", probability=0.89)
    shown, support = choose(replace(four, whole=four), eleven)
    assert (shown.digits, support) == ("11", Support.NONE) and "4 cut apart, 11 as a line" in shown.doubt
    # Not where the string models do not all read two digits there.
    assert choose(replace(four, whole=four), replace(eleven, unanimous=False))[0].digits == "4"
    # Nor at a side of a digit's crop cut from a line of them, where the one more is a neighbour's stroke.
    five = Reading("5", [0.9], [Box(0, 4, 36, 30)], "cnn", frame=Box(0, 0, 38, 38))
    fifteen = Reading("15", [0.73, 0.89], [Box(0, 7, 6, 12), Box(3, 4, 32, 30)], "crnn", probability=0.75)
    assert choose(replace(five, whole=five), fifteen)[0].digits == "5"


def _narrow(cut: str, whole: str, confidence: float = 0.99) -> Reading:
    """A cutting reading of ink with room for one digit, with its whole-ink reading."""
    return replace(_reading(cut, "cnn", confidence, width=12), whole=_reading(whole, "cnn", confidence))


def test_where_there_is_room_for_one_digit_the_classifier_reads_it_whole():
    chosen, support = choose(_narrow("7", "7", 0.98), _reading("1", "crnn", 0.7))
    assert (replace(chosen, doubt=""), support) == (_reading("7", "cnn", 0.98), Support.NONE)
    assert chosen.doubt == "the two ways of reading disagree: 7 cut apart, 1 as a line", "the reviewer is told why"
    # Every string model reading another digit more surely: theirs stands, as sure as they find the whole reading.
    line = _reading("1", "crnn", 0.9, probability=0.85)
    chosen, support = choose(_narrow("7", "7", 0.6), line)
    assert (replace(chosen, doubt=""), support) == (line, Support.STRING_MODELS)
    assert sureness(chosen, support) < ok_bar(support, 0.9), "under the bar, a person decides"
    # Split among themselves, they are only shown to the person who decides.
    split = replace(_reading("1", "crnn", 0.9), unanimous=False)
    assert choose(_narrow("7", "7", 0.6), split) == (replace(split, doubt=chosen.doubt), Support.NONE)
    # The string model saw two digits in one, less surely than the classifier its one: the classifier's stands.
    assert choose(_narrow("8", "8", 0.95), _reading("31", "crnn", 0.9))[0].digits == "8"
    # Every string model reads two digits, surer than the classifier of one: a number written close.
    chosen, support = choose(_narrow("8", "8", 0.5), _reading("31", "crnn", 0.99))
    assert (replace(chosen, doubt=""), support) == (_reading("31", "crnn", 0.99), Support.STRING_MODELS)
    assert chosen.doubt == "the two ways of reading disagree: 8 cut apart, 31 as a line", "told why, if in review"
    # Cutting split a broken "5" in two; the string model saw one digit: the ink is read whole.
    assert choose(_narrow("52", "5"), _reading("5", "crnn", 0.8)) == (_reading("5", "cnn", 0.8), Support.AGREED)
    # Cutting found pieces of a digit that the string models could not read at all: a person sees the
    # classifier's guess at the whole ink, never an empty row.
    chosen, support = choose(_narrow("71", "7", 0.7), _reading("", "crnn"))
    assert (replace(chosen, doubt=""), support) == (_reading("7", "cnn", 0.7), Support.NONE)
    # Two plain ones side by side: both count two digits, and agree.
    assert choose(_narrow("11", "1"), _reading("11", "crnn"))[0].digits == "11"
    # A short amount written tall: both see several digits, and the string model reads them.
    assert choose(_narrow("82", "8"), _reading("872", "crnn")) == (_reading("872", "crnn"), Support.STRING_MODELS)
    # Without a string model, a single cut digit is read whole too.
    assert choose(_narrow("4", "9"), None) == (_reading("9", "cnn"), Support.AGREED)


def test_only_a_single_digit_the_classifier_is_sure_of_stands_without_the_string_models():
    assert sure_alone(_narrow("7", "7", 0.9995), 0.9)
    assert not sure_alone(_narrow("7", "7", 0.998), 0.9)  # sure enough for ok, not enough to stand alone
    assert not sure_alone(_narrow("52", "5", 0.9999), 0.9)  # cut in two: a broken digit, or two digits
    assert not sure_alone(_reading("7", "cnn", 0.9999, width=80), 0.9)  # wide ink: room for more digits
    # The bar keeps a share of the doubt the review threshold allows, so a stricter threshold raises it.
    assert not sure_alone(_narrow("7", "7", 0.9995), 0.99)


def test_a_sure_single_digit_stands_unless_the_string_models_read_more_digits_in_its_ink():
    six = _reading("6", "cnn", 0.9999)
    assert _alone(six, _reading("5", "crnn", 0.99)) == (six, Support.AGREED)  # another single digit: it stands
    # The first string model glancing at it must read more digits surely for the others to be asked...
    assert not _reads_more(six, _reading("16", "crnn", SEVERAL_SEEN / 2))
    assert _reads_more(six, _reading("16", "crnn", SEVERAL_SEEN))
    # ...and then all of them reading more digits, however unsure of which together, is enough for a person.
    assert _alone(six, _reading("16", "crnn", SEVERAL_SEEN / 2))[1] == Support.NONE
    assert _alone(six, None) == (six, Support.AGREED)  # no string model
    # A "10" whose 1 runs into a small 0 is one piece, which the classifier can be sure is a 6.
    reading, support = _alone(six, _reading("10", "crnn", 0.6))
    assert (reading.digits, support) == ("6", Support.NONE) and "10 as a line" in reading.doubt
    assert why_review(reading, None, support, 0.9) == reading.doubt


def test_a_single_digit_under_the_threshold_goes_to_review_unless_the_string_models_read_it_more_surely():
    # Under the review threshold, read alike (less surely than the bar, as a whole) or not read by the string
    # models, its row goes to review...
    unsure = _narrow("7", "7", 0.8)
    assert not sure_alone(unsure, 0.9)
    for line in (_reading("7", "crnn", 0.95, probability=0.85), _reading("", "crnn")):
        reading, support = choose(unsure, line)
        assert reading.digits == "7" and ok_until(reading, support) < 0.9
    # ...but another digit, or a number written close, that every string model reads more surely stands as
    # they read it, held to their bar (a page's rule beside a "3" made the classifier read "1").
    for line in (_reading("3", "crnn", 0.99), _reading("23", "crnn", 0.97)):
        reading, support = choose(unsure, line)
        assert reading.digits == line.digits and support == Support.STRING_MODELS


def test_on_a_wide_line_the_string_model_wins():
    # Touching digits and a separator fooled the cutting into one wide blob.
    blob = Reading("4", [0.99], [Box(0, 0, 200, 40)], "cnn")
    assert choose(blob, _reading("470000", "crnn", 0.8))[0].digits == "470000"
    # The string models read it unanimously: their support, whatever the cutting says.
    unanimous = _reading("2250", "crnn", 0.6)
    assert choose(_reading("2150", "cnn"), unanimous) == (unanimous, Support.STRING_MODELS)
    split_vote = Reading("2250", [0.6] * 4, [Box(i * 20, 0, 20, 40) for i in range(4)], "crnn", unanimous=False)
    chosen, support = choose(_reading("2150", "cnn"), split_vote)
    assert (replace(chosen, doubt=""), support) == (split_vote, Support.NONE)
    assert chosen.doubt.startswith("the line readers disagree among themselves")


def test_a_digit_cut_apart_beside_the_string_models_frame_sends_their_reading_to_review():
    # A small crop's leading "5", against its side, was left out of the line's frame: they read "0000".
    cut = _reading("50000", "cnn")
    line = replace(_reading("0000", "crnn"), boxes=cut.boxes[1:], frame=Box(18, 0, 85, 40))
    chosen, support = choose(cut, line)
    assert (chosen.digits, support) == ("0000", Support.NONE)
    assert chosen.doubt.startswith("5 cut apart beside the line")
    # The remains of a rule beside the number, cut as a "1" five times its height, are no digit of it.
    ruled = replace(cut, digits="10000", boxes=[Box(0, -80, 20, 200), *cut.boxes[1:]])
    assert choose(ruled, line) == (line, Support.STRING_MODELS)
    # Nor is a "1" as far from the number as a neighbouring column.
    apart = replace(cut, digits="10000", boxes=[Box(-40, 0, 20, 40), *cut.boxes[1:]])
    assert choose(apart, line) == (line, Support.STRING_MODELS)


def test_a_row_sent_to_review_says_why_in_the_words_a_reviewer_reads():
    date = Field("date", (0.1, 0.1, 0.3, 0.1), digits=8)
    agreed = Support.AGREED
    assert why_review(_reading("1234567", "cnn", 0.99), date, agreed, 0.9) == "the layout wants 8 digits, 7 read"
    amount = Field("amount", (0.1, 0.1, 0.3, 0.1), max_digits=4)
    too_long = why_review(_reading("12345", "cnn", 0.99), amount, agreed, 0.9)
    assert too_long == "the layout allows at most 4 digits, 5 read"
    year = Reading("1977", [0.999, 0.62, 0.9995, 0.999], [Box(i * 20, 0, 20, 40) for i in range(4)], "cnn")
    assert why_review(year, None, agreed, 0.9) == "digit 2 (9) at 0.62, below 0.9"
    assert why_review(year, None, Support.NONE, 0.9) == "digit 2 (9) at 0.62, below 0.9", "a lone digit under the bar"
    chosen, _ = choose(_narrow("7", "7", 0.98), _reading("1", "crnn", 0.7))
    assert why_review(chosen, None, Support.NONE, 0.9) == chosen.doubt
    # Each digit sure, the whole reading less so (a digit too many, or one left out): the reviewer is told that.
    unsure_whole = _reading("25", "crnn", 0.99, probability=0.8)
    said = why_review(unsure_whole, None, Support.STRING_MODELS, 0.9)
    assert said == "the string models read 25 only 0.8 surely as a whole, below 0.9"


def test_without_a_string_model_the_classifier_decides_alone():
    assert choose(_reading("12", "cnn"), None) == (_reading("12", "cnn"), Support.AGREED)


def test_a_reading_only_the_string_models_vouch_for_is_as_sure_as_they_find_the_whole_reading():
    line = _reading("25", "crnn", 0.99, probability=0.8)
    assert sureness(line, Support.STRING_MODELS) == 0.8, "each digit sure, the whole reading less so"
    assert sureness(line, Support.AGREED) == 0.99, "cutting agreeing: as sure as its least sure digit"
    assert sureness(_reading("", "crnn", probability=0.9), Support.STRING_MODELS) is None, "nothing read"
    assert ok_bar(Support.AGREED, 0.9) == ok_bar(Support.STRING_MODELS, 0.9) == 0.9
    assert ok_bar(Support.NONE, 0.9) > 1, "readers that disagree: never ok"


def test_blank_and_flat_pages_prepare_to_empty_lines():
    for page in (np.full((60, 200), 240, np.uint8), np.random.default_rng(0).integers(200, 256, (60, 200), np.uint8)):
        line, _ = prepare_line(page)
        assert line.shape == (LINE_HEIGHT, LINE_WIDTH)


def rings(pen: int, shape: tuple[int, int] = (120, 200)) -> np.ndarray:
    """Three 0s drawn with a pen ``pen`` pixels wide (anti-aliased), dark on light paper."""
    page = np.full(shape, 240, np.uint8)
    for x in (40, 90, 140):
        cv2.ellipse(page, (x, 60), (15, 25), 0, 0, 360, 25, pen, cv2.LINE_AA)
    return page


def test_strokes_are_read_resized_to_between_the_thinnest_and_widest_and_others_as_they_are():
    thin, wide = rings(1), rings(10)
    assert stroke_width(thin) < THINNEST_STROKE and stroke_width(wide) > WIDEST_STROKE
    assert reading_scale(thin) == pytest.approx(THINNEST_STROKE / stroke_width(thin))
    assert reading_scale(wide) == pytest.approx(SHRUNK_STROKE / stroke_width(wide))
    assert reading_scale(rings(3)) == 1.0
    assert reading_scale(np.full((120, 200), 240, np.uint8)) == 1.0, "blank paper has no strokes to measure"
    assert reading_scale(rings(1, (3000, 2000))) == 1.0, "a whole page of fine writing is not made larger still"


def test_a_huge_scan_is_read_at_normal_stroke_width_and_boxed_on_the_page():
    page = cv2.resize(draw_digits("4096", margin=40), None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC)
    line, placement = prepare_line(page)
    assert placement.shrink < 0.5 and line.max() > 0.9
    ys, xs = np.nonzero(page < 128)
    whole = placement.box(0, placement.width // 4)
    assert abs(whole.x - xs.min()) <= 8 * 3 and abs(whole.x + whole.w - xs.max()) <= 8 * 6
    assert abs(whole.y - ys.min()) <= 8 * 3


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0, w) * max(0, h)
    return inter / (a.w * a.h + b.w * b.h - inter)


@pytest.mark.parametrize("enlarged", [1, 6])
def test_a_digit_the_string_model_marks_at_one_frame_is_boxed_where_its_ink_is(enlarged):
    page = cv2.resize(draw_digits("40721", margin=30), None, fx=enlarged, fy=enlarged, interpolation=cv2.INTER_CUBIC)
    _, placement = prepare_line(page)
    digits = [digit.box for digit in find_digits(page)]
    # The frame at each digit's centre, as narrow a span as CTC gives.
    per_frame = placement.w / placement.width * FRAME_PIXELS / placement.shrink
    first = placement.x / placement.shrink
    spans = [(f, f + 1) for f in (int((box.x + box.w / 2 - first) / per_frame) for box in digits)]
    boxes = placement.digit_boxes(spans)
    assert all(overlap(a, b) >= 0.9 for a, b in zip(boxes, digits, strict=True)), (boxes, digits)
    strips = [overlap(placement.box(*span), digit) for span, digit in zip(spans, digits, strict=True)]
    assert np.mean(strips) < 0.5, "the frames alone make strips narrower than the digits"


def _spaced(digits: str, model: str, confidence: float, gap: int) -> Reading:
    """Digits 20 wide and 40 high, ``gap`` pixels apart."""
    boxes = [Box(i * (20 + gap), 0, 20, 40) for i in range(len(digits))]
    return Reading(digits, [confidence] * len(digits), boxes, model)


def test_the_shipped_choice_keeps_clear_separate_digits_and_leaves_touching_ones_to_the_string_models():
    choice = ReadingChoice.load(REPO / "model_store")
    assert choice is not None, "model_store/reading-choice.json is shipped"
    # Five clear digits well apart, which the string models read otherwise: the cut reading, for a person to confirm.
    apart = _spaced("28614", "cnn", 0.999, gap=12)
    chosen, support = choose(apart, _reading("28611", "crnn", 0.96), choice)
    assert (replace(chosen, doubt=""), support) == (apart, Support.NONE)
    assert choose(apart, _reading("28611", "crnn", 0.96)) == (_reading("28611", "crnn", 0.96), Support.STRING_MODELS)
    # Touching digits cut into one wide piece and a sliver: the string models' reading stands.
    touching = Reading("83", [0.9, 0.6], [Box(0, 0, 70, 40), Box(70, 25, 8, 12)], "cnn")
    assert choose(touching, _reading("839", "crnn", 0.7), choice)[0].digits == "839"
    # One cut piece against a line of several digits is never the choice's to make.
    blob = Reading("4", [1.0], [Box(0, 0, 200, 40)], "cnn")
    assert choose(blob, _reading("470000", "crnn", 0.8), choice)[0].digits == "470000"


def test_the_choice_fit_finds_the_weights_that_made_the_outcomes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 3))
    truth = np.array([1.5, -2.0, 0.5])
    y = (rng.random(4000) < 1 / (1 + np.exp(-(x @ truth + 0.7)))).astype(float)
    weights, bias = fit(x, y, l2=0.0)
    assert np.allclose(weights, truth, atol=0.2) and abs(bias - 0.7) < 0.2


def _mark(sureness: float) -> Reading:
    """Ink with room for one digit that the classifier takes, piece and whole, for no digit."""
    none = replace(_reading("", "cnn"), marks=[sureness])
    return replace(none, whole=none)


def test_ink_the_classifier_surely_takes_for_no_digit_stands_alone_and_a_line_readers_digit_there_only_if_surer():
    assert sure_alone(_mark(0.9995), 0.9), "a cross in a box: no digit, and no string model asked"
    assert not sure_alone(_mark(0.8), 0.9)
    # Every string model reads a digit more surely than the classifier takes the ink for none: theirs stands,
    # held to their bar; else a person decides, shown their digits rather than nothing.
    chosen, support = choose(_mark(0.8), _reading("1", "crnn", 0.99))
    assert (chosen.digits, support) == ("1", Support.STRING_MODELS) and "1 as a line" in chosen.doubt
    chosen, support = choose(_mark(0.98), _reading("12", "crnn", 0.6))
    assert (chosen.digits, support) == ("12", Support.NONE) and "12 as a line" in chosen.doubt
    # Where they read nothing either, the classifier's reading stands: no digit.
    assert choose(_mark(0.98), _reading("", "crnn"))[0].digits == ""


def test_in_a_comb_box_the_string_models_are_heard_only_when_they_read_one_digit_surely():
    assert _heard_in_a_box(_reading("7", "crnn", 0.97), 0.95) is not None  # a sure disagreement goes to a person
    for unheard in (_reading("7", "crnn", 0.6), _reading("11", "crnn", 0.99), _reading("", "crnn"), None):
        assert _heard_in_a_box(unheard, 0.95) is None  # the classifier's reading of the box stands alone
