"""From a file's bytes to result rows: decode, read each page (or each field of a layout) two ways, judge confidence.

Each page or field is read by cutting it into digits for the digit classifier, and,
when a string model is installed, as a whole line by the string model (unless it is a
single digit the classifier is sure enough of alone; see ``sure_alone``). The
reading that suits the page is kept: the classifier's for a single digit, the
string model's for a line, where touching digits and separators fool the
cutting. A row is trusted only when its reading is vouched for (see ``choose``
and ``Support``) and its readers are sure enough of it (``sureness``); otherwise it
goes to review. With a layout, pages are first registered to its reference image
or aligned (``fitted``), and pre-printed text in the fields is erased.

Used by the Celery task, ``digits recognize`` and ``digits evaluate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np

from digits.contracts import EMPTY, OK, REVIEW, WHOLE_PAGE, Row
from digits.layouts import Field, Layout
from digits.recognition.align import align_page
from digits.recognition.annotate import Pictures, field_frame
from digits.recognition.borders import erase, find_printed_lines
from digits.recognition.choice import ReadingChoice
from digits.recognition.clean import clean_box, clean_page
from digits.recognition.combs import Cell, comb_cells, search_area
from digits.recognition.ctc import LineReading
from digits.recognition.imaging import UnreadableImage, check_page_count, count_pages, decode_pages, rescaled
from digits.recognition.lines import LINE_VIEWS, dark_on_light, prepare_views, reading_scale
from digits.recognition.model import CLASSES, NOT_A_DIGIT, Classifier, Models
from digits.recognition.reading import Reading
from digits.recognition.register import register_page, share_on_photo
from digits.recognition.segment import Box, faint, find_pieces, shaded

NOTHING_ON_THE_PAGE = (
    "no handwritten digits found on the whole page; if it is a form or a cheque, read it with its layout: "
    "drop it into the inbox folder named like the layout (inbox/cheque/), or pass --layout NAME"
)
"""The ``error`` of an ``empty`` row of a page read whole: a form's fields are read through a layout."""

PAGES_AT_ONCE = 16
"""Pages of a long document decoded at a time in one process (``recognize_files``)."""

READ_PIXELS = 48_000_000
"""Most page pixels read together (``recognize_documents``): about a dozen Letter pages at 200 dpi,
a batch of 64 cheques, or thousands of single-digit scans. Each page read holds some times its own size
in intermediate images until its group is done; a full page costs far more than a model call,
so larger groups would gain little."""

SINGLE_DIGIT_ASPECT = 1.5
"""Ink no wider than this times its height has room for one digit only: the bar lies
between the widths of single digits and of amounts, with room to spare for wide single digits."""


def read_by_cutting(pages: list[np.ndarray], models: Models, framed: Sequence[bool] | None = None) -> list[Reading]:
    """Cut each page into digits and classify them all in one model call.

    Where the ink has room for one digit only, the page is also read as one
    digit made of all its ink (``Reading.whole``). ``framed`` says which pages
    may hold a printed box's frame (all, if None; see ``find_pieces``). A comb
    box found without its frame that seems blank but holds a shade (``shaded``)
    reads no digit and a mark it is not at all sure is none: a blurred photo's
    faint "1" is no reason to read the field without it.
    """
    framed = _framed(pages, framed)
    found = [find_pieces(page, each) for page, each in zip(pages, framed, strict=True)]
    cut = [pieces.digits() if pieces else [] for pieces in found]
    narrow = [bool(digits) and _aspect([d.box for d in digits]) < SINGLE_DIGIT_ASPECT for digits in cut]
    whole = [
        [] if not one else digits if pieces.is_one_stroke() else pieces.digits(as_one=True)
        for pieces, digits, one in zip(found, cut, narrow, strict=True)
    ]
    images = [digit.image for digits in cut + whole for digit in digits]
    probabilities = _classify_distinct(images, models.classifier)
    # Both readings of a page are of all of it: the classifier reads every piece of ink cut apart.
    frames = [Box(0, 0, page.shape[1], page.shape[0]) for page in pages] * 2
    readings, start = [], 0
    for digits, frame in zip(cut + whole, frames, strict=True):
        page = probabilities[start : start + len(digits)]
        start += len(digits)
        labels = page.argmax(axis=1)
        kept = [i for i, label in enumerate(labels) if label != NOT_A_DIGIT]
        boxes = [digits[i].box for i in kept]
        left_out = [i for i, label in enumerate(labels) if label == NOT_A_DIGIT]
        doubted = [i for i in left_out if not _closes_the_number(digits[i].box, boxes)]
        readings.append(
            Reading(
                "".join(str(int(labels[i])) for i in kept),
                [float(page[i, labels[i]]) for i in kept],
                boxes,
                models.classifier.label,
                marks=[float(page[i, NOT_A_DIGIT]) for i in doubted],
                frame=frame,
            )
        )
    for i, (page, pieces, each) in enumerate(zip(pages, found, framed, strict=True)):
        if pieces is None and not each and shaded(page):
            readings[i] = replace(readings[i], marks=[0.0])
    return [
        replace(reading, whole=readings[len(pages) + i] if room_for_one else None)
        for i, (reading, room_for_one) in enumerate(zip(readings[: len(pages)], narrow, strict=True))
    ]


STOP_HEIGHT = 1 / 3
"""A dash or a stop closing a number ("7.795.-", "12.") is at most this share of its line's height, from its
digits' highest top to their lowest foot."""


def _closes_the_number(piece: Box, digits: list[Box]) -> bool:
    """Whether ``piece``, ink the classifier takes for no digit, is a dash or a stop closing the number whose
    digits lie in ``digits``: wholly after them, at most ``STOP_HEIGHT`` of their line's height, no taller
    than wide, and on that line below its top third.

    Cheque amounts and register numbers are often closed so, and the classifier,
    which sees each piece enlarged, can doubt that a thick dash is no digit: that
    doubt would send a number read right to review. No digit is that small and
    flat; a figure written small and raised (cents, a 5's flag cut off) sits
    higher, and stays a mark that may be a digit.
    """
    if not digits:
        return False
    top, bottom = min(box.y for box in digits), max(box.y + box.h for box in digits)
    middle = piece.y + piece.h / 2
    after = piece.x >= max(box.x + box.w for box in digits)
    small = piece.h <= STOP_HEIGHT * (bottom - top) and piece.w >= piece.h
    return after and small and top + (bottom - top) / 3 <= middle <= bottom


def _classify_distinct(images: list[np.ndarray], classifier: Classifier) -> np.ndarray:
    """Class probabilities of each image, shape (n, ``CLASSES``), classifying each distinct image once.

    A single digit cut from its page and all the ink of that page read as one
    digit are nearly always the same image: classifying both would double the
    classifier's work on single digits.
    """
    slots: dict[bytes, int] = {}
    distinct: list[np.ndarray] = []
    for image in images:
        key = image.tobytes()
        if key not in slots:
            slots[key] = len(distinct)
            distinct.append(image)
    if not distinct:
        return np.zeros((0, CLASSES), np.float32)
    found = classifier.probabilities(np.stack(distinct))
    return found[[slots[image.tobytes()] for image in images]]


def read_as_lines(
    pages: list[np.ndarray], models: Models, framed: Sequence[bool] | None = None
) -> list[Reading | None]:
    """Read each page as one line with the string model (None for all when there is none; ``framed`` as for
    ``read_by_cutting``)."""
    if models.reader is None or not pages:
        return [None] * len(pages)
    views = [prepare_views(page, LINE_VIEWS, each) for page, each in zip(pages, _framed(pages, framed), strict=True)]
    # A line with no ink holds no digit, whatever a model makes of a blank input.
    inked = [i for i, page_views in enumerate(views) if page_views[0][0].any()]
    read = models.reader.read(np.stack([[line for line, _ in views[i]] for i in inked])) if inked else []
    lines = [LineReading("", [], []) for _ in pages]
    for i, line in zip(inked, read, strict=True):
        lines[i] = line
    readings = []
    for line, page_views in zip(lines, views, strict=True):
        placement = page_views[0][1]  # spans are frames of the first view, the line as it is
        boxes = placement.digit_boxes(line.spans)
        readings.append(
            Reading(
                line.digits,
                line.confidences,
                boxes,
                models.reader.label,
                line.unanimous,
                signs=line.signs,
                probability=line.probability,
                frame=placement.frame,
            )
        )
    return readings


def glance_at_lines(pages: list[np.ndarray], models: Models, framed: Sequence[bool]) -> list[LineReading | None]:
    """Each page read as one line by the first string model alone, in the plain view (None for all when there is
    none): a first look at a sixth of ``read_as_lines``'s cost, whose readings are never reported."""
    if models.reader is None or not pages:
        return [None] * len(pages)
    views = [prepare_views(page, LINE_VIEWS[:1], each)[0][0] for page, each in zip(pages, framed, strict=True)]
    return list(models.reader.glance(np.stack(views)))


def _framed(pages: list[np.ndarray], framed: Sequence[bool] | None) -> Sequence[bool]:
    return [True] * len(pages) if framed is None else framed


class Support(IntEnum):
    """Who vouches for a reading, weakest first; each level says how sure of it they are (``sureness``)."""

    NONE = 0
    """The readers disagree: the row always goes to review."""
    STRING_MODELS = 1
    """Only the string models, unanimously (cutting fails on touching digits and separators): as sure as they
    find the whole reading likely."""
    AGREED = 2
    """Cutting and the string models read the same digits, or the classifier is the only reader:
    there is no string model, or a single digit it is sure of alone (``sure_alone``). As sure as the
    least sure digit."""


CLASSIFIER_ALONE_DOUBT = 0.01
"""A single digit the classifier is sure of, keeping only this share of the doubt the review
threshold allows (0.999 for a threshold of 0.9), stands whatever digit the string models read
there: their disagreements would only send good digits to review. The bar is the lowest that
keeps wrong digits among ok rows rare on every held-out set; a lower one lets too many wrong
cheque digits through (docs/recognition.md, "Sure single digits")."""

SEVERAL_SEEN = 0.3
"""A first string model that, glancing at the classifier's sure single digit, reads more digits there, each at
least this surely, has every string model read the ink; where they too read more digits, a person decides
(``_alone``): a number written joined, as a "10" whose 1 runs into a small 0, is one piece that the classifier,
which knows single digits only, can be sure is a 6."""


def _keeping_doubt(threshold: float, share: float) -> float:
    """A confidence bar that allows only ``share`` of the doubt the review ``threshold`` allows."""
    return 1 - (1 - threshold) * share


def sure_alone(cutting: Reading, threshold: float) -> bool:
    """Whether ``cutting`` is one digit (or none, only marks), in ink with room for one, that the classifier is
    sure enough of alone.

    The classifier's whole reading stands there whatever digit the string
    models read (see ``_alone``): they would only send it to review by
    disagreeing. They are the costliest part of reading a single digit, so
    only the first of them glances at it, and all read it only where it sees
    several digits; in a comb box, where they could not move it, none.
    """
    whole = cutting.whole
    bar = _keeping_doubt(threshold, CLASSIFIER_ALONE_DOUBT)
    if whole is None:
        return False
    if not cutting.digits and not whole.digits:
        # No digit at all: ink the classifier is as sure is none (a cross in a box, a dash) is left at that.
        return min(cutting.marks + whole.marks, default=0.0) >= bar
    return len(cutting.digits) == 1 and min(whole.confidences, default=0.0) >= bar


def sureness(reading: Reading, support: Support) -> float | None:
    """How sure the readers that vouch for ``reading`` are of it, the row's ``confidence``; None where no digit
    was read.

    Where only the string models vouch for it, their probability of the whole
    reading: with no second reader to disagree, they can be sure of each digit
    they read and still read one too many (an end mark) or too few, which only
    the whole reading's probability counts. Otherwise its least sure digit,
    each as sure as the less sure of the readers that agree on it.
    """
    if not reading.digits:
        return None
    if support == Support.STRING_MODELS and reading.probability is not None:
        return reading.probability
    return min(reading.confidences)


def ok_bar(support: Support, threshold: float) -> float:
    """The lowest ``sureness`` a reading with ``support`` needs to be ``ok``: none is enough where the readers
    disagree."""
    return float("inf") if support == Support.NONE else threshold


def ok_until(reading: Reading, support: Support) -> float:
    """The highest review threshold at which ``reading`` is still ``ok`` (``ok_bar`` turned round).

    Lets one reading of a file be judged at every threshold, to draw the
    operating curve, without reading the file again. Below 0 for a reading
    that is never ``ok`` (nothing read, or readers that disagree).
    """
    sure = sureness(reading, support)
    if sure is None or support == Support.NONE:
        return -1.0
    # Ink left out as no digit must be as surely none as the digits are digits (``_row``).
    return min([sure, *reading.marks])


def choose(cutting: Reading, line: Reading | None, choice: ReadingChoice | None = None) -> tuple[Reading, Support]:
    """The reading to report, and who vouches for it.

    Where the ink has room for one digit (``cutting.whole`` is set) and one
    digit was read (or the string models read none), the classifier's reading
    stands; where the string models read other digits there (or digits where
    the classifier sees none), theirs stands only if they all read them more
    surely than the classifier reads its own, and held to their bar (a rule's
    remains beside the writing mislead the classifier, which reads all the ink
    whole); else a person decides. Where several digits were
    read differently, ``choice`` weighs each reading's evidence: a cut reading
    it prefers stands, for a person to confirm (no support); else the string
    models' reading stands, as it always does without a ``choice``. Cutting and
    the string models agreeing is the strongest support; otherwise the string
    models reading unanimously is support too, judged by their probability of the whole reading,
    unless cutting reads a digit beside their frame, which they never saw (``_left_out``). A
    classifier that agrees less surely never weakens what they vouch for alone.
    A line where the string models read a written sign beside digits (a
    letter after a number, as in "12a") goes to a person, whatever else.
    """
    reading, support = _choose(cutting, line, choice)
    if line is not None and reading.digits and max(line.signs, default=0.0) >= SIGN_SEEN:
        sign = "a letter or sign beside the digits, which are not all the field holds"
        return replace(reading, doubt="; ".join(d for d in (sign, reading.doubt) if d)), Support.NONE
    return reading, support


SIGN_SEEN = 0.5
"""A written sign the string models read at least this surely sends its line to a person."""


def _choose(cutting: Reading, line: Reading | None, choice: ReadingChoice | None) -> tuple[Reading, Support]:
    room_for_one = cutting.whole is not None
    if cutting.whole and (len(cutting.digits) == 1 or (line and len(line.digits) <= 1)):
        # Ink with room for one digit, and one digit read (or none by the string
        # models: a digit a coarse scan broke into pieces, which a person can
        # still guess): the classifier reads single digits better than the
        # string model, and reads them best whole, as it learnt them.
        cutting = cutting.whole
    if line is None:
        return cutting, Support.AGREED
    if cutting.digits == line.digits:
        # Each digit is only as sure as the less sure model: when both misread a
        # digit the same way, one of them is rarely confident about it. Yet the
        # classifier agreeing never weakens what the string models vouch for alone.
        sure = [min(a, b) for a, b in zip(cutting.confidences, line.confidences, strict=True)]
        agreed = replace(cutting, confidences=sure, whole=None, unanimous=True)
        vouched = replace(agreed, confidences=line.confidences, probability=line.probability)  # the string models
        if line.unanimous and ok_until(vouched, Support.STRING_MODELS) > ok_until(agreed, Support.AGREED):
            return vouched, Support.STRING_MODELS
        return agreed, Support.AGREED
    disagree = f"the two ways of reading disagree: {cutting.digits or '-'} cut apart, {line.digits or '-'} as a line"
    if room_for_one and len(cutting.digits) == 1:
        # A classifier unsure of its one digit, where every string model reads a digit, or a number written
        # close or underlined, more surely: theirs stands, held to their bar. Otherwise a person decides.
        return _surer(cutting, line, max(cutting.confidences), disagree)
    if room_for_one and not cutting.digits and cutting.marks:
        # The classifier takes the ink for no digit at all (a cross, a dash, or a page's rule left beside the
        # writing): the string models' digits stand only where they read them more surely, held to their bar.
        return _surer(cutting, line, max(cutting.marks), disagree)
    several = len(cutting.digits) > 1 and len(line.digits) > 1
    if several and choice is not None and choice.prefers_cutting(cutting, line):
        # Separate, clear digits that the string models misread (another writer's
        # hand than the cheques they learnt): a person confirms the cut reading.
        return replace(cutting, doubt=disagree), Support.NONE
    # Touching digits, separators, patterned paper: the string models read them better, but not ink they never saw.
    left_out = _left_out(cutting, line)
    if left_out:
        beside = f"{left_out} cut apart beside the line, which the string models did not read; {disagree}"
        return replace(line, doubt=beside), Support.NONE
    if line.unanimous:
        return line, Support.STRING_MODELS
    return replace(line, doubt=f"the line readers disagree among themselves; {disagree}"), Support.NONE


BESIDE_GAP = 0.6
"""A digit cut apart at most this many digit heights beside the digits the string models read around is one
more digit of the number, not a neighbour's stroke at the crop's side (``_left_out``)."""

BESIDE_HEIGHT = (0.7, 2.0)
"""Such a digit is between these shares of those digits' height: a dash or a speck is shorter, and the remains
of a rule or a page's edge, cut as a "1", reach far higher."""


def _left_out(cutting: Reading, line: Reading) -> str:
    """The digits cut apart wholly or mostly beyond the string models' frame, close beside and as tall as those
    within it ("" where there are none).

    The line's frame leaves out the remains of a rule or a page's edge along a
    crop's side; a "1" or a thin "5" written against the side of a small crop
    looks like one, and the string models, never shown it, read the number
    without it as surely as with it.
    """
    frame = line.frame
    if frame is None:
        return ""
    within = [_within_frame(box, frame) for box in cutting.boxes]
    inside = [box for box, held in zip(cutting.boxes, within, strict=True) if held]
    if not inside:
        return ""
    height = float(np.median([box.h for box in inside]))
    left, right = min(box.x for box in inside), max(box.x + box.w for box in inside)
    top, bottom = min(box.y for box in inside), max(box.y + box.h for box in inside)
    shortest, tallest = (share * height for share in BESIDE_HEIGHT)
    beside = ""
    for digit, box, held in zip(cutting.digits, cutting.boxes, within, strict=True):
        gap = left - (box.x + box.w) if box.x < left else box.x - right
        level = top <= box.y + box.h / 2 <= bottom  # on the line, not above or below it
        if not held and gap <= BESIDE_GAP * height and shortest <= box.h <= tallest and level:
            beside += digit
    return beside


def _within_frame(box: Box, frame: Box) -> bool:
    """Whether most of ``box``'s width lies within ``frame``'s."""
    overlap = min(box.x + box.w, frame.x + frame.w) - max(box.x, frame.x)
    return overlap > box.w / 2


def _surer(cutting: Reading, line: Reading, cut_confidence: float, disagree: str) -> tuple[Reading, Support]:
    """Where the ink has room for one digit and the two ways disagree: the string models' reading where they
    read digits there more surely than the classifier reads its own (standing, held to their bar, only where
    they all read it, else shown to the person who decides); else the cut reading, for a person to judge,
    unless it holds no digit at all or the string models read a number written close (``_written_close``)."""
    if line.digits and min(line.confidences) > cut_confidence:
        return replace(line, doubt=disagree), Support.STRING_MODELS if line.unanimous else Support.NONE
    if line.digits and not cutting.digits:
        # The classifier takes all the ink for marks, the string models read digits in it: a person is better
        # shown their digits than nothing, and a row with nothing read would say the field is empty.
        return replace(line, doubt=disagree), Support.NONE
    if _written_close(cutting, line):
        return replace(line, doubt=disagree), Support.NONE
    return replace(cutting, doubt=disagree), Support.NONE


def _written_close(cutting: Reading, line: Reading) -> bool:
    """Whether every string model reads more digits than the classifier's one, in ink clear of the image's
    left and right sides: then a person is better shown their digits.

    Two digits written close, such as "11" or "21", fit the room of one, and
    the classifier, reading all the ink as one digit, often takes them for a
    "4"; the string models read two, if unsure of which. At a side of a crop cut
    from a line of digits, the one more they read is often a neighbour's
    stroke the crop took in ("5" read "15"), so there the classifier's digit is
    shown. Where they are surer of their digits than the classifier is of its
    one, their reading stands (``_surer``); this only decides what the person
    is shown where they are not.
    """
    frame = cutting.frame
    if frame is None or not cutting.boxes or not line.unanimous or len(line.digits) <= len(cutting.digits):
        return False
    left, right = min(box.x for box in cutting.boxes), max(box.x + box.w for box in cutting.boxes)
    return left > frame.x and right < frame.x + frame.w


def _aspect(boxes: list[Box]) -> float:
    """Width over height of the ink's bounding box."""
    left, right = min(b.x for b in boxes), max(b.x + b.w for b in boxes)
    top, bottom = min(b.y for b in boxes), max(b.y + b.h for b in boxes)
    return (right - left) / max(1, bottom - top)


@dataclass(frozen=True)
class Area:
    """What is read as one piece: a whole page, a layout field cut from it, or one box of a comb field."""

    page: int
    field: Field | None
    image: np.ndarray
    left: int = 0
    top: int = 0
    """Where the image's corner lies on the page, to give boxes in page pixels."""
    framed: bool = True
    """Whether a printed box's frame may be in ``image``: not in a comb box cut without its frame."""


def areas_of(pages: list[np.ndarray], layout: Layout | None) -> list[Area]:
    """Each page whole, or each layout field of each page with its printed lines erased; each cleaned (``clean_page``,
    a comb box found inside its frame by ``clean_box``).

    With a layout, ``pages`` must be in the layout's frame already (``fitted``),
    so that the layout's regions fall on its fields. A comb field gives one area
    per printed box found inside its region, frame left out (``comb_cells``; the
    region evenly divided where the boxes cannot be found): each box holds one
    digit, which is read like a single digit on its own.
    """
    if layout is None:
        return [Area(number, None, clean_page(page)) for number, page in enumerate(pages, start=1)]
    areas = []
    for number, page in enumerate(pages, start=1):
        for field in layout.fields:
            x0, y0, x1, y1 = region = region_pixels(field.region, page.shape)
            if field.comb:
                # The boxes are looked for a little beyond a region drawn roughly around them.
                left, top, right, bottom = search_area(region, page.shape)
                around = _field_image(page, field, (left, top, right, bottom))
                cells = comb_cells(around, field.comb, (x0 - left, y0 - top, x1 - left, y1 - top))
                areas += [Area(number, field, _cleaned(c), left + c.left, top + c.top, c.framed) for c in cells]
                continue
            crop = _field_image(page, field, region)
            lines, _ = find_printed_lines(crop)
            areas.append(Area(number, field, clean_page(erase(crop, lines)), x0, y0))
    return areas


def _field_image(page: np.ndarray, field: Field, pixels: tuple[int, int, int, int]) -> np.ndarray:
    """The part ``pixels`` (left, top, right, bottom) of a page, dark on light, with the field's printed parts
    painted over."""
    x0, y0, x1, y1 = pixels
    crop = dark_on_light(page[y0:y1, x0:x1])
    if field.printed:
        # Pre-printed text in the field (",00", a currency sign) is never handwriting.
        crop = crop.copy()
        paper = int(np.percentile(crop, 90))
        for part in field.printed:
            px0, py0, px1, py1 = region_pixels(part, page.shape)
            crop[max(0, py0 - y0) : max(0, py1 - y0), max(0, px0 - x0) : max(0, px1 - x0)] = paper
    return crop


def _cleaned(cell: Cell) -> np.ndarray:
    """A comb box's image as it is read: a box found, frame left out, holds one digit and nothing to clean
    away (``clean_box``); a cell split evenly may still hold its frame and the form around it (``clean_page``)."""
    return clean_page(cell.image) if cell.framed else clean_box(cell.image)


def region_pixels(region: tuple[float, float, float, float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A layout region on a page of ``shape`` (height, width), as pixel edges left, top, right, bottom."""
    height, width = shape[:2]
    left, top, w, h = region
    x0, y0 = round(left * width), round(top * height)
    return x0, y0, max(x0 + 1, round((left + w) * width)), max(y0 + 1, round((top + h) * height))


@dataclass(frozen=True)
class Document:
    """A decoded file to read, and what its rows say about it."""

    pages: list[np.ndarray]
    source: str
    job_id: str
    sha256: str
    layout: Layout | None = None
    pictures: Pictures | None = None
    """Where review pictures go (rows to review, or all if it says so); none without it."""
    first_page: int = 1
    """Number of the first of ``pages`` in its file (a page of a split document is read alone)."""
    unmatched: frozenset[int] = frozenset()
    """Pages (1 for the first of ``pages``) that could not be registered to the layout's reference image."""
    outlines: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    """Where the photo ends on each page registered to the layout's reference image (``Registered.outline``),
    by page number as in ``unmatched``."""


def open_document(
    data: bytes,
    source: str,
    job_id: str,
    layout: Layout | None = None,
    pictures: Pictures | None = None,
    pages: range | None = None,
) -> Document:
    """A file's bytes decoded into a ``Document`` (of the pages numbered in ``pages`` only, if given).

    Raises ``UnreadableImage`` with the reason.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    return Document(decode_pages(data, pages), source, job_id, sha256, layout, pictures, pages.start if pages else 1)


def recognize_bytes(
    data: bytes,
    source: str,
    job_id: str,
    models: Models,
    review_threshold: float,
    layout: Layout | None = None,
    pictures: Pictures | None = None,
) -> list[Row]:
    """One row per page, or per page and layout field, for a file; a single error row when it cannot be read.

    With ``pictures``, rows to review (or all rows, if it says so) get a
    picture of what was read, and its path in ``annotation``.
    """
    return recognize_files([(data, source)], job_id, models, review_threshold, layout, pictures)[0]


def recognize_files(
    files: list[tuple[bytes, str]],
    job_id: str,
    models: Models,
    review_threshold: float,
    layout: Layout | None = None,
    pictures: Pictures | None = None,
    max_pages: int | None = None,
) -> list[list[Row]]:
    """``recognize_bytes`` for many ``(data, source)`` files, read together (see ``recognize_documents``).

    A file of more than ``max_pages`` pages gets one error row. One of more than
    ``PAGES_AT_ONCE`` is read that many pages at a time, and shorter ones are
    decoded only ``READ_PIXELS`` at a time, so that memory grows neither with a
    document's length nor with the number of files.
    """
    rows: list[list[Row]] = [[] for _ in files]
    short: list[tuple[int, Document]] = []  # decoded whole, read together once they hold READ_PIXELS

    def read_short() -> None:
        read = recognize_documents([document for _, document in short], models, review_threshold)
        for (index, _), document_rows in zip(short, read, strict=True):
            rows[index] = document_rows
        short.clear()

    for index, (data, source) in enumerate(files):
        try:
            pages = count_pages(data)
            if max_pages is not None:
                check_page_count(pages, max_pages)
            if pages <= PAGES_AT_ONCE:
                short.append((index, open_document(data, source, job_id, layout, pictures)))
                if sum(page.size for _, document in short for page in document.pages) >= READ_PIXELS:
                    read_short()
                continue
            for first in range(1, pages + 1, PAGES_AT_ONCE):
                part = open_document(
                    data, source, job_id, layout, pictures, range(first, min(first + PAGES_AT_ONCE, pages + 1))
                )
                rows[index] += recognize_documents([part], models, review_threshold)[0]
        except UnreadableImage as problem:
            sha256 = hashlib.sha256(data).hexdigest()
            rows[index] = [Row.failed(job_id, source, sha256, models.label, f"{source}: {problem}")]
    read_short()
    return rows


def recognize_documents(documents: list[Document], models: Models, review_threshold: float) -> list[list[Row]]:
    """The rows of each document, read together: every digit of all of them in one call per model (per group).

    One model call costs about as much for one digit as for a few hundred, so a
    worker reads the files it has gathered as one batch. The string models read
    every area but the single digits the classifier is sure of alone. Documents
    of large pages are read in groups of at most ``READ_PIXELS``, so that a
    batch of full-page scans does not hold the intermediate images of all of them at once.
    """
    rows: list[list[Row]] = []
    for group in _by_pixels(documents, READ_PIXELS):
        rows += _recognize_together(group, models, review_threshold)
    return rows


def _by_pixels(documents: list[Document], most: int) -> list[list[Document]]:
    """``documents`` in order, cut into runs of at most ``most`` page pixels (a larger document alone)."""
    groups: list[list[Document]] = []
    size = 0
    for document in documents:
        pixels = sum(page.size for page in document.pages)
        if not groups or size + pixels > most:
            groups.append([])
            size = 0
        groups[-1].append(document)
        size += pixels
    return groups


def _recognize_together(documents: list[Document], models: Models, review_threshold: float) -> list[list[Row]]:
    """The rows of each document, every digit of all of them in one call per model."""
    documents = [fitted(document) for document in documents]
    areas = [areas_of(document.pages, document.layout) for document in documents]
    every = [area for own in areas for area in own]
    chosen = iter(read_images([a.image for a in every], models, review_threshold, framed=[a.framed for a in every]))
    return [
        _rows(document, own, [next(chosen) for _ in own], review_threshold)
        for document, own in zip(documents, areas, strict=True)
    ]


UNMATCHED = "the page could not be matched to the layout's reference image"
"""The ``error`` of each row of a page that registration failed on: its fields were cut from the page as it is."""

OFF_PHOTO = "part of the field lies off the photo: photograph the whole form and submit it again"
"""The ``error`` of the row of a field the photo ends in (``off_photo``)."""


def fitted(document: Document) -> Document:
    """The document with its pages in its layout's frame, so that the layout's regions fall on its fields.

    A layout with a reference image has each page registered to it
    (``register_page``), where the photo ends kept in ``outlines``; a page that
    cannot be, and the pages of a layout without one, are aligned
    (``align_page``), and the former marked ``unmatched``: their rows go to
    review. Without a layout, pages stay as they are.
    """
    layout = document.layout
    if layout is None:
        return document
    if layout.reference is None:
        return replace(document, pages=[align_page(page) for page in document.pages])
    registered = [register_page(page, layout.reference) for page in document.pages]
    unmatched = frozenset(number for number, page in enumerate(registered, start=1) if page is None)
    outlines = {number: done.outline for number, done in enumerate(registered, start=1) if done is not None}
    pages = [
        align_page(page) if done is None else done.page for page, done in zip(document.pages, registered, strict=True)
    ]
    return replace(document, pages=pages, unmatched=unmatched, outlines=outlines)


def read_images(
    images: list[np.ndarray], models: Models, review_threshold: float, *, framed: Sequence[bool] | None = None
) -> list[tuple[Reading, Support]]:
    """The reading kept for each image, each read whole, and who vouches for it (see ``choose``).

    Every digit of all the images goes through one classifier call, and every
    image but the single digits the classifier is sure enough of alone
    (``sure_alone``; outside comb boxes, only where the ink is not ``faint``)
    through one string model call; the first string model
    glances at those outside comb boxes first (``glance_at_lines``). A digit
    under the review threshold is asked about too: its row goes to review
    whatever they read, but what a person is shown, and the row's digits, may
    be theirs (a number written close, ink the classifier takes whole for no
    digit). ``framed`` says which images may hold a printed box's frame (all, if None).
    Images of thin or wide strokes are read resized (``reading_scale``), but
    not comb boxes, whose one digit the classifier reads best at the box's own
    size (a box is a digit's frame already). The boxes are given in the images'
    own pixels.
    """
    framed = _framed(images, framed)
    factors = [reading_scale(image) if each else 1.0 for image, each in zip(images, framed, strict=True)]
    images = [rescaled(image, factor) for image, factor in zip(images, factors, strict=True)]
    cuttings = read_by_cutting(images, models, framed)
    # A sure single digit on a page with faint ink only may be the shade beside a page's edge, a smear the
    # classifier takes for a "1": the string models read it too. Not in a comb box, which has no page edge and
    # where a ballpoint digit in a photo is often as faint.
    sure = [
        sure_alone(cutting, review_threshold) and not (each and faint(image))
        for cutting, each, image in zip(cuttings, framed, images, strict=True)
    ]
    # A sure single digit is read by every string model only where the first, glancing at it, reads more digits
    # in its ink (``_alone``); a comb box never, for it holds one digit at most.
    glanced = [i for i, (one, each) in enumerate(zip(sure, framed, strict=True)) if one and each]
    looks = glance_at_lines([images[i] for i in glanced], models, [framed[i] for i in glanced])
    several = {i for i, look in zip(glanced, looks, strict=True) if _reads_more(cuttings[i].whole, look)}
    asked = [i for i, one in enumerate(sure) if not one or i in several]
    lines = dict(zip(asked, read_as_lines([images[i] for i in asked], models, [framed[i] for i in asked]), strict=True))
    chosen = []
    for i, (cutting, one, each) in enumerate(zip(cuttings, sure, framed, strict=True)):
        line = lines.get(i)
        if one:
            chosen.append(_alone(cutting.whole, line))
            continue
        if not each:
            line = _heard_in_a_box(line, review_threshold)
            if line is None and cutting.whole is not None:
                cutting = replace(cutting.whole, whole=cutting.whole)  # a box's one digit, read whole
        chosen.append(choose(cutting, line, models.choice))
    return [(_unscaled(reading, factor), support) for (reading, support), factor in zip(chosen, factors, strict=True)]


def _unscaled(reading: Reading, factor: float) -> Reading:
    """``reading`` of an image resized ``factor`` times, its boxes in the image's own pixels."""
    if factor == 1:
        return reading

    def back(box: Box) -> Box:
        x, y, w, h = (round(v / factor) for v in (box.x, box.y, box.w, box.h))
        return Box(x, y, max(1, w), max(1, h))

    return replace(
        reading,
        boxes=[back(box) for box in reading.boxes],
        frame=reading.frame and back(reading.frame),
        whole=reading.whole and _unscaled(reading.whole, factor),
    )


def _alone(whole: Reading, line: Reading | None) -> tuple[Reading, Support]:
    """A single digit (or only marks) the classifier is sure of alone: it stands, unless the string models,
    asked because the first of them glanced more digits there (``SEVERAL_SEEN``), read more digits in its ink
    too; then a person decides.

    However unsure they are together of which digits those are: models that
    read a joined "10" as "10" and as "16" agree it is no single digit.
    """
    if line is None or len(line.digits) <= len(whole.digits):
        return whole, Support.AGREED
    joined = f"{whole.digits or 'no digit'} read whole, but {line.digits} as a line: a number written joined?"
    return replace(whole, doubt=joined), Support.NONE


def _reads_more(whole: Reading, line: Reading | LineReading | None) -> bool:
    """Whether ``line`` reads more digits than ``whole``, each at least ``SEVERAL_SEEN`` surely."""
    return line is not None and len(line.digits) > len(whole.digits) and min(line.confidences) >= SEVERAL_SEEN


def _heard_in_a_box(line: Reading | None, threshold: float) -> Reading | None:
    """The string models' reading of a comb box's inside, or None where it is not heard.

    A box holds one digit at most, and the string models learnt lines, not the
    block digits forms ask for in boxes: they are heard there only when they
    read one digit at least as surely as the review threshold (their
    disagreement then sends the box to a person). Otherwise the classifier's
    reading of the box, read whole, stands alone at the threshold.
    """
    if line is None or len(line.digits) != 1 or min(line.confidences) < threshold:
        return None
    return line


def field_readings(
    document: Document, areas: list[Area], chosen: list[tuple[Reading, Support]]
) -> dict[tuple[int, str], tuple[Reading, Support]]:
    """The reading of each (page index, field name) of a document, and who vouches for it.

    ``chosen`` is the reading of each of its ``areas``. The boxes of a comb
    field come one after the other: their readings join into one. A reading
    whose count of digits the layout does not expect, every reading of a page
    that could not be matched to the layout's reference, and that of a field
    partly off the photo (``off_photo``) is vouched for by none.
    """
    readings: dict[tuple[int, str], tuple[Reading, Support]] = {}
    for area, (reading, support) in zip(areas, chosen, strict=True):
        shifted = [Box(b.x + area.left, b.y + area.top, b.w, b.h) for b in reading.boxes]
        reading = replace(reading, boxes=shifted, whole=None)
        key = (area.page, area.field.name if area.field else WHOLE_PAGE)
        if key in readings:
            before, before_support = readings[key]
            reading = Reading(
                before.digits + reading.digits,
                before.confidences + reading.confidences,
                before.boxes + reading.boxes,
                reading.model,
                doubt="; ".join(d for d in (before.doubt, reading.doubt) if d),
                marks=before.marks + reading.marks,
                signs=before.signs + reading.signs,
                probability=_joint(before.probability, reading.probability),
            )
            support = min(support, before_support)
        readings[key] = (reading, support)
    fields = {field.name: field for field in document.layout.fields} if document.layout else {}
    cut_off = off_photo(document, areas)
    for (index, name), (reading, _) in readings.items():
        untrusted = index in document.unmatched or (index, name) in cut_off
        if untrusted or not _as_expected(reading.digits, fields.get(name)):
            readings[index, name] = (reading, Support.NONE)
    return readings


MIN_ON_PHOTO = 0.9
"""Least share of a field's region (or of each of its comb boxes) that must lie on the photo for its reading to
be trusted. A photo cropped close to the form leaves a sliver of a region drawn roughly around a field
off it, and nothing of the digits; more, and a digit may be off the photo, the rest read as if it were all."""


def off_photo(document: Document, areas: list[Area]) -> frozenset[tuple[int, str]]:
    """The (page index, field name) of each field of a registered page with an area less than ``MIN_ON_PHOTO``
    on the photo: the photo ends inside the field (its rows go to review, ``OFF_PHOTO``)."""
    cut_off = set()
    for area in areas:
        outline = document.outlines.get(area.page)
        if outline is None or area.field is None:
            continue
        height, width = area.image.shape[:2]
        if share_on_photo(outline, area.left, area.top, area.left + width, area.top + height) < MIN_ON_PHOTO:
            cut_off.add((area.page, area.field.name))
    return frozenset(cut_off)


def _joint(first: float | None, second: float | None) -> float | None:
    """The probability of two readings of one field (comb boxes) both being right, where both have one."""
    return None if first is None or second is None else first * second


def _rows(
    document: Document, areas: list[Area], chosen: list[tuple[Reading, Support]], review_threshold: float
) -> list[Row]:
    """A document's rows from the chosen reading of each of its areas (with a layout, its pages are fitted already)."""
    layout, pictures = document.layout, document.pictures
    fields = {field.name: field for field in layout.fields} if layout else {}
    rows, cut_off = [], off_photo(document, areas)
    for (index, name), (reading, support) in field_readings(document, areas, chosen).items():
        field = fields.get(name)
        page = document.pages[index - 1]
        row = _row(document, document.first_page + index - 1, name, reading, support, review_threshold)
        if row.status == EMPTY and layout is None:
            row = row.model_copy(update={"error": NOTHING_ON_THE_PAGE})
        if index in document.unmatched:
            row = row.model_copy(update={"status": REVIEW, "error": UNMATCHED})
        elif (index, name) in cut_off:
            row = row.model_copy(update={"status": REVIEW, "error": OFF_PHOTO})
        elif row.status == REVIEW:
            row = row.model_copy(update={"error": why_review(reading, field, support, review_threshold)})
        region = region_pixels(field.region, page.shape) if field else None
        if pictures and pictures.wanted(row.status):
            row = row.model_copy(update={"annotation": pictures.write(row, *field_frame(page, region))})
        if pictures:
            pictures.keep_for_review(row, page, region)
        rows.append(row)
    return rows


def _row(document: Document, page: int, field: str, reading: Reading, support: Support, threshold: float) -> Row:
    """The row of one reading: ``ok`` if its ``sureness`` reaches the bar its ``support`` sets and every piece of
    ink left out as no digit is at least ``threshold`` sure to be none; ``empty`` with no digit and no such doubt."""
    lowest = sureness(reading, support)
    if min(reading.marks, default=1.0) < threshold:
        status = REVIEW
    else:
        status = EMPTY if lowest is None else OK if lowest >= ok_bar(support, threshold) else REVIEW
    return Row(
        job_id=document.job_id,
        source=document.source,
        page=page,
        field=field,
        digits=reading.digits,
        confidence=f"{lowest:.4f}" if lowest is not None else "",
        status=status,
        digit_confidences=";".join(f"{c:.4f}" for c in reading.confidences),
        boxes=";".join(str(box) for box in reading.boxes),
        model=reading.model,
        sha256=document.sha256,
    )


def why_review(reading: Reading, field: Field | None, support: Support, threshold: float) -> str:
    """Why a reading goes to review, in the words a reviewer reads beside it (the row's ``error``)."""
    read = len(reading.digits)
    if field is not None and field.digits is not None and read != field.digits:
        return f"the layout wants {field.digits} digits, {read} read"
    limit = field.max_digits or field.comb if field else None
    if limit is not None and read > limit:
        return f"the layout allows at most {limit} digits, {read} read"
    if reading.doubt:
        return reading.doubt
    sure = sureness(reading, support)
    if support == Support.STRING_MODELS and sure is not None and sure < threshold:
        return f"the string models read {reading.digits} only {sure:.4g} surely as a whole, below {threshold:.4g}"
    lowest = min(range(read), key=lambda i: reading.confidences[i], default=None)
    if lowest is not None and reading.confidences[lowest] < threshold:
        digit, confidence = reading.digits[lowest], reading.confidences[lowest]
        return f"digit {lowest + 1} ({digit}) at {confidence:.4g}, below {threshold:.4g}"
    return f"ink that may be a digit was left out: only {min(reading.marks):.4g} sure it is none, below {threshold:.4g}"


def _as_expected(digits: str, field: Field | None) -> bool:
    """Whether the number of digits read fits what the layout says of the field."""
    if field is None or not digits:
        return True
    limit = field.max_digits or field.comb
    return (field.digits is None or len(digits) == field.digits) and (limit is None or len(digits) <= limit)
