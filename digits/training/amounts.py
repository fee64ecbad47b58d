"""Cheque amounts to train the string model on: real ones jittered, and ones composed from single digits.

Composed amounts put digits from every data set side by side, touching now and
then, with the separators, end marks and underlines that cheques carry and that
must never be read as digits, on paper with a drawn security pattern.
"""

from __future__ import annotations

import cv2
import numpy as np

from digits.recognition.clean import clean_page
from digits.recognition.ctc import SIGN, SIGN_CLASS
from digits.recognition.lines import prepare_line

MAX_DIGITS = 8
"""Longest amount the string model is trained on."""


def security_paper(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Light paper with a wavy line pattern, shading and noise, like a cheque's."""
    paper = np.full((height, width), rng.uniform(160, 240), np.float32)
    paper += np.linspace(0, rng.uniform(-25, 25), width)[None, :]
    if rng.random() < 0.8:
        ys = np.arange(height)[:, None]
        xs = np.arange(width)[None, :]
        period = rng.uniform(3, 9)
        wave = np.sin((ys + rng.uniform(2, 8) * np.sin(xs / rng.uniform(8, 30))) * 2 * np.pi / period)
        paper -= rng.uniform(5, 40) * (wave > rng.uniform(0.3, 0.9))
    paper += rng.normal(0, rng.uniform(1, 6), paper.shape)
    return paper


def compose_line(pool: list, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A made-up amount: grey image (dark ink on patterned paper) and its digit string."""
    count = int(rng.choice(np.arange(1, MAX_DIGITS + 1), p=[0.03, 0.05, 0.12, 0.25, 0.3, 0.15, 0.06, 0.04]))
    height = int(rng.integers(22, 44))
    pieces, text = [], ""
    # A dot between groups of thousands, as in 1.250.000, on half of the amounts.
    separated = rng.random() < 0.5
    for i in range(count):
        crop, label = pool[int(rng.integers(len(pool)))]
        scale = height * rng.uniform(0.85, 1.1) / crop.shape[0]
        width = max(2, round(crop.shape[1] * scale * rng.uniform(0.85, 1.15)))
        glyph = cv2.resize(crop, (width, max(2, round(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        pieces.append(("digit", glyph, int(rng.integers(-3, 4))))
        text += str(label)
        if separated and i < count - 1 and (count - 1 - i) % 3 == 0:
            pieces.append(("separator", _dot(height, rng), 0))
    if rng.random() < END_MARK_SHARE:
        pieces.append(("mark", end_mark(height, rng), 0))

    margin = int(rng.integers(2, 12))
    total = sum(g.shape[1] for _, g, _ in pieces) + 2 * margin + len(pieces) * height // 3
    canvas = np.zeros((height + 2 * margin + 8, total), np.float32)
    x = margin
    for kind, glyph, lift in pieces:
        h, w = glyph.shape
        top = margin + 4 + lift + (height - h if kind == "separator" else 0)
        if kind == "mark":
            top = margin + 4 + height // 2 - h // 2
        top = int(np.clip(top, 0, canvas.shape[0] - h))
        region = canvas[top : top + h, x : x + w]
        canvas[top : top + h, x : x + w] = np.maximum(region, glyph[: region.shape[0], : region.shape[1]])
        # Digits now and then touch or overlap, as in hurried handwriting.
        x += w + int(rng.integers(-height // 8, height // 3))
        x = max(x, 0)
    canvas = canvas[:, : min(canvas.shape[1], x + margin)]
    if rng.random() < 0.25:
        y = min(canvas.shape[0] - 2, margin + 4 + height + int(rng.integers(0, 4)))
        canvas[y : y + int(rng.integers(1, 3)), :] = rng.uniform(0.4, 1.0)  # an underline
    ink_strength = rng.uniform(60, 180)
    paper = security_paper(*canvas.shape, rng)
    page = np.clip(paper - ink_strength * canvas, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        page = cv2.GaussianBlur(page, (3, 3), rng.uniform(0.3, 1.0))
    _, data = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE), text


def compose_number(pool: list, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A number as a form's field holds one: 2 to 8 digits written apart, on plain paper; grey image and digits.

    The string models learn amounts, touching and crowded on patterned paper;
    these teach them that separated digits in another hand are digits too.
    """
    count = int(rng.integers(2, MAX_DIGITS + 1))
    height = int(rng.integers(22, 44))
    glyphs, text = [], ""
    for _ in range(count):
        crop, label = pool[int(rng.integers(len(pool)))]
        h = max(2, round(height * rng.uniform(0.9, 1.1)))
        glyphs.append(
            cv2.resize(crop, (max(2, round(crop.shape[1] * h / crop.shape[0])), h), interpolation=cv2.INTER_AREA)
        )
        text += str(label)
    gaps = [round(height * rng.uniform(0.12, 0.7)) for _ in glyphs]
    margin = int(rng.integers(2, 12))
    canvas = np.zeros(
        (round(height * 1.25) + 2 * margin, sum(g.shape[1] for g in glyphs) + sum(gaps) + 2 * margin), np.float32
    )
    x = margin
    for glyph, gap in zip(glyphs, gaps, strict=True):
        top = margin + int(rng.integers(0, max(1, canvas.shape[0] - 2 * margin - glyph.shape[0] + 1)))
        canvas[top : top + glyph.shape[0], x : x + glyph.shape[1]] = glyph
        x += glyph.shape[1] + gap
    paper = rng.uniform(200, 250) + rng.normal(0, rng.uniform(0.5, 4), canvas.shape)
    page = np.clip(paper - rng.uniform(80, 200) * canvas, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        page = cv2.GaussianBlur(page, (3, 3), rng.uniform(0.3, 1.0))
    return page, text


def coarse_line(page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey line as a coarse scan gives it: shrunk until its digits are 10-22 pixels high, thresholded to pure
    black and white, enlarged again by repeating pixels (stair-stepped edges, no grey).

    ``page`` holds digits about three quarters of its height high, as ``compose_line`` and ``compose_number`` draw
    them.
    """
    scale = min(1.0, rng.uniform(10, 22) / (0.75 * page.shape[0]))
    small = cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    otsu, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bitmap = np.where(small > otsu * rng.uniform(0.8, 1.1), 255, 0).astype(np.uint8)
    return cv2.resize(bitmap, (page.shape[1], page.shape[0]), interpolation=cv2.INTER_NEAREST)


def jitter_real(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real line as another pen and scanner might have made it.

    Slightly rotated, sheared and rescaled, and often bent here and there
    (``elastic``); thicker or thinner strokes; new contrast; now and then
    blurred or recompressed.
    """
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), rng.uniform(0.9, 1.1))
    matrix[0, 1] += rng.uniform(-0.2, 0.2)
    out = cv2.warpAffine(gray, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < ELASTIC_SHARE:
        out = elastic(out, rng)
    stroke = rng.random()
    if stroke < 0.2:
        out = cv2.erode(out, np.ones((2, 2), np.uint8))  # dark ink: a minimum filter thickens it
    elif stroke < 0.3:
        out = cv2.dilate(out, np.ones((2, 2), np.uint8))
    out = out.astype(np.float32)
    out = (out - 128) * rng.uniform(0.6, 1.2) + 128 + rng.uniform(-20, 20)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.3, 1.0))
    if rng.random() < 0.3:
        _, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        out = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return out


ELASTIC_SHARE = 0.5
"""Share of jittered real amounts that are also bent by ``elastic``."""


def elastic(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``gray`` bent by a smooth random displacement of up to about a tenth of its height.

    A global slant or rotation moves every digit alike; a writer's hand does
    not. Each real amount is seen 140 times in training, and bending its
    strokes differently each time gives more than repeating it (Simard et al.,
    2003, did the same for single digits).
    """
    h, w = gray.shape
    sigma = h * rng.uniform(0.08, 0.15)
    reach = h * rng.uniform(0.04, 0.1)
    shift = [cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) for _ in range(2)]
    shift = [s * reach / max(1e-6, float(np.abs(s).max())) for s in shift]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(gray, xs + shift[0], ys + shift[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def encode_labels(texts: list[str]) -> np.ndarray:
    """Labels for the CTC loss: column 0 holds the length, then digit + 1 (0 is the blank), ``SIGN`` as its class."""
    out = np.zeros((len(texts), MAX_DIGITS + 1), np.int32)
    for i, text in enumerate(texts):
        text = text[:MAX_DIGITS]
        out[i, 0] = len(text)
        out[i, 1 : len(text) + 1] = [SIGN_CLASS if c == SIGN else int(c) + 1 for c in text]
    return out


def batch_of_lines(images: list[np.ndarray]) -> np.ndarray:
    """Model inputs (n, 32, 160, 1) for grey line images, cleaned as the pipeline cleans a page (``clean_page``)."""
    return np.stack([prepare_line(clean_page(image))[0] for image in images])[..., None]


def _dot(height: int, rng: np.random.Generator) -> np.ndarray:
    size = max(3, int(height * rng.uniform(0.1, 0.2)))
    dot = np.zeros((size + int(size * rng.uniform(0, 1.2)), size), np.float32)
    cv2.ellipse(dot, (size // 2, size // 2), (size // 2, size // 2), 0, 0, 360, 1.0, -1)
    if dot.shape[0] > size:  # a comma's tail
        cv2.line(dot, (size // 2, size // 2), (0, dot.shape[0] - 1), 1.0, max(1, size // 3))
    return dot


END_MARK_SHARE = 0.4
"""Share of composed amounts closed by an ``end_mark``."""


def end_mark(height: int, rng: np.random.Generator) -> np.ndarray:
    """A mark that closes an amount so that nothing can be added: - = / # or .- (ink high, float32).

    Writers close amounts with any of these, and each must be learnt as no
    digit: a closing "/" looks like a 1, and a "#" like a 4.
    """
    kind = rng.choice(["dash", "double dash", "slash", "hash", "dot and dash"], p=[0.35, 0.15, 0.2, 0.15, 0.15])
    if kind == "dash":
        return _dash(height, rng)
    stroke = max(1, round(height * rng.uniform(0.06, 0.12)))
    h, w = int(height * rng.uniform(0.45, 0.9)), int(height * rng.uniform(0.4, 0.9))
    mark = np.zeros((h, w), np.float32)
    if kind == "double dash":
        for y in (h // 3, 2 * h // 3):
            cv2.line(mark, (0, y + int(rng.integers(-1, 2))), (w - 1, y), 1.0, stroke)
    elif kind == "slash":
        cv2.line(mark, (0, h - 1), (w - 1, 0), 1.0, stroke)
    elif kind == "hash":
        lean = w // 4
        for x in (w // 3, 2 * w // 3):
            cv2.line(mark, (x - lean // 2, h - 1), (x + lean // 2, 0), 1.0, stroke)
        for y in (h // 3, 2 * h // 3):
            cv2.line(mark, (0, y), (w - 1, y), 1.0, stroke)
    else:  # dot and dash
        cv2.circle(mark, (stroke, h - stroke - 1), stroke, 1.0, -1)
        cv2.line(mark, (w // 3, h // 2), (w - 1, h // 2), 1.0, stroke)
    return mark


def _dash(height: int, rng: np.random.Generator) -> np.ndarray:
    length = int(height * rng.uniform(0.3, 1.2))
    dash = np.zeros((max(2, height // 8), length), np.float32)
    dash[:] = 1.0
    return dash
