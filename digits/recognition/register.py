"""Register a page to the reference image its layout was drawn from, so that the layout's regions land on its fields.

A layout drawn on one sample fits other photos of the same form only once each is
brought into that sample's frame: photos differ in crop, scale, perspective, light,
and some are upside down. ``register_page`` finds the homography from the page to
the reference (``match_page``) and warps the page with it. How, and why each step:

1. Both images are brought to ``WORK_SIDE`` on their long side (a tiny photo is
   enlarged) and their contrast is evened out (CLAHE), so that ORB finds keypoints
   in the print of dark, unevenly lit and small photos alike.
2. Each page keypoint is matched to its ``MATCHES_PER_KEYPOINT`` nearest reference
   keypoints by descriptor. Forms repeat the same boxes, bubbles and whole
   sections, so the right partner is often not the nearest, and a ratio test would
   throw the repeated print away.
3. Each match alone says how the page is turned, scaled and shifted (an ORB
   keypoint has an angle and a size): the matches vote in coarse bins of that (a
   Hough transform). The right transform gathers votes from all over the form,
   a wrong one only from print that repeats.
4. The best-voted bins each give a homography (RANSAC on their matches, then again
   on every match it explains). The one under which the page's ink agrees best with
   the reference's wins (``agreement``): a shift by one repeated section leaves
   the header and one section without partners.
5. The winner is refined by ECC on the blurred ink of both (``ecc_refined``), to a
   pixel or two of the reduced copy, where keypoints alone may be several off
   (a photo's paper is seldom flat).
6. It is checked (``plausible``; ``Match.trusted``: by ``MIN_LEAD`` better than the
   best homography that places the page elsewhere), then the full-resolution page is warped.

The reference's keypoints and ink are computed once per process (``reference``):
a layout is read for thousands of pages.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digits.layouts import LayoutError
from digits.recognition.imaging import UnreadableImage, decode_pages, rescaled

WORK_SIDE = 1000
"""Long side, in pixels, of the copies keypoints are found on: the print of a form is distinct at this size,
and matching costs grow with it."""

KEYPOINTS = 4000
"""ORB keypoints found on each copy: enough that the print, not only the handwriting, is well covered."""

MATCHES_PER_KEYPOINT = 3
"""Reference keypoints each page keypoint is paired with, nearest descriptors first (see step 2)."""

MAX_DESCRIPTOR_DISTANCE = 64
"""A pair whose ORB descriptors differ in more of their 256 bits than this is no match."""

ANGLE_BIN = 30.0
"""Width in degrees of a vote bin for the page's turn: ORB's keypoint angles are rough."""

SCALE_BIN = 0.5
"""Width of a vote bin for the page's scale, in powers of two."""

SHIFT_BIN = 0.1
"""Width of a vote bin for where the page's centre lands, as a share of the reference's long side."""

HYPOTHESES = 6
"""Best-voted bins tried: a form's repeated sections give a few strong wrong ones."""

RANSAC_PIXELS = 5.0
"""A match is explained by a homography if it lands this close (pixels of the work copy)."""

GATHER_PIXELS = 15.0
"""Matches of every bin that land this close under a bin's homography join it for the second fit."""

MIN_INLIERS = 15
"""Fewer matches explained than this: the page is not matched."""

AGREEMENT_SIDE = 250
"""Long side of the ink maps hypotheses are compared on: coarse enough to forgive a few pixels."""

ECC_SIDE = 500
"""Long side of the ink maps the chosen homography is refined on last."""

STROKE_WINDOW = 9
"""Marks narrower than this (pixels of the work copy) are ink: strokes and printed lines, not the sheet's edge."""

INK_CONTRAST = 20
"""Grey levels a mark must be darker than its surroundings (after CLAHE) to be ink, not paper's grain."""

INK_BLUR = 1.5
"""Blur (sigma, pixels at ``AGREEMENT_SIDE``; scaled with the side) of the ink maps: it widens the basin of
agreement, so that nearly right homographies score nearly as well as right ones and ECC can climb to them."""

MIN_AGREEMENT = 0.3
"""Least correlation between the registered page's ink and the reference's: a page of the same form agrees
well above it though its handwriting and folds differ. Another form's print can agree with part of it as
well, which is why the page must also cover the form (``plausible``)."""

MIN_COVERAGE = 0.7
"""Least share of the reference's frame the page must cover: a field off the page cannot be read, and a
smaller piece of print (another form's header) can agree with part of a form by itself."""

MIN_LEAD = 0.02
"""Least margin of agreement by which the winning homography must beat the best one that places the page
elsewhere (``RIVAL_DISTANCE`` away): on a small or slanted photo, the form shifted by one of its repeated
sections can agree as well, and a field would be read from its neighbour's boxes. Right placements of the
C1 photos, however changed, lead by 0.035 or more; the wrong ones seen led by nothing."""

RIVAL_DISTANCE = 0.1
"""How far (a share of the reference's long side) another homography must put the page's centre to place the
page elsewhere: two fits of one placement land within a few pixels of each other."""

MAX_PAGE_AREA = 16.0
"""Most area of the page's outline in the reference's frame, as a multiple of the reference's: the form
in a quarter of the photo's width and height."""


@dataclass(frozen=True)
class Keypoints:
    """ORB keypoints of a work copy: where (n, 2), their angle (degrees) and size, and descriptors (n, 32)."""

    points: np.ndarray
    angles: np.ndarray
    sizes: np.ndarray
    descriptors: np.ndarray


@dataclass(frozen=True)
class Reference:
    """What registration needs of a layout's reference image, computed once per process (``reference``)."""

    shape: tuple[int, int]
    """Height and width of the reference image: the frame pages are warped into."""
    scale: float
    """Work copy pixels per reference pixel."""
    work: np.ndarray
    keypoints: Keypoints
    ink: dict[int, np.ndarray]
    """Blurred ink of the work copy, by long side (``AGREEMENT_SIDE``, ``ECC_SIDE``)."""


@dataclass(frozen=True)
class Match:
    """How a page was matched to a reference, and whether that can be trusted."""

    homography: np.ndarray
    """From the page's pixels to the reference's, 3 x 3."""
    inliers: int
    """Keypoint matches the homography explains."""
    agreement: float
    """Correlation of the registered page's ink with the reference's (``agreement``)."""
    plausible: bool
    """Whether the homography could be a photo of the form at all (``plausible``)."""
    lead: float
    """How much better the page agrees under it than under the best homography that places it elsewhere
    (``MIN_LEAD``); its whole agreement where there is none."""

    @property
    def trusted(self) -> bool:
        sure = self.inliers >= MIN_INLIERS and self.agreement >= MIN_AGREEMENT and self.lead >= MIN_LEAD
        return self.plausible and sure


@dataclass(frozen=True)
class Registered:
    """A page warped into the reference's frame, and where the photo ends in it."""

    page: np.ndarray
    outline: np.ndarray
    """The photo's corners in ``page``'s pixels, (4, 2) float32: beyond them the page is paper-grey filling,
    for the photo held none of the form there."""


def register_page(gray: np.ndarray, reference_path: Path) -> Registered | None:
    """The page warped into the frame of the layout's reference image; None where it cannot be matched to it.

    The result has the reference's shape, enlarged by how much finer the page
    is, if it is: fields are read at the page's own resolution where that is
    finer, and never below the reference's, the one the layout was drawn and
    checked on (a small photo is enlarged to it). Raises ``LayoutError`` where the
    reference image cannot be read.
    """
    ref = reference(reference_path)
    match = match_page(gray, ref)
    if match is None or not match.trusted:
        return None
    height, width = ref.shape
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    on_page = cv2.perspectiveTransform(corners[None], np.linalg.inv(match.homography))[0]
    finer = max(1.0, float(np.sqrt(cv2.contourArea(on_page) / (width * height))))
    to_output = resized(finer) @ match.homography
    size = (round(width * finer), round(height * finer))
    paper = int(np.median(gray))
    page = cv2.warpPerspective(gray, to_output, size, flags=cv2.INTER_LINEAR, borderValue=paper)
    photo = np.float32([[0, 0], [gray.shape[1], 0], [gray.shape[1], gray.shape[0]], [0, gray.shape[0]]])
    return Registered(page, cv2.perspectiveTransform(photo[None], to_output)[0])


def share_on_photo(outline: np.ndarray, left: int, top: int, right: int, bottom: int) -> float:
    """How much of the rectangle (page pixels, right and bottom exclusive) lies inside the photo's ``outline``."""
    area = float(max(0, right - left) * max(0, bottom - top))
    if area == 0:
        return 1.0
    rectangle = np.float32([[left, top], [right, top], [right, bottom], [left, bottom]])
    inside, _ = cv2.intersectConvexConvex(np.asarray(outline, np.float32), rectangle)
    return float(inside) / area


def match_page(gray: np.ndarray, ref: Reference) -> Match | None:
    """The best homography from the page to the reference, refined (see the module's steps); None if there is none."""
    work, scale = work_copy(gray)
    found = keypoints(work)
    if found is None:
        return None
    page_ink = ink_maps(work)
    scored = [
        (agreement(h, page_ink[AGREEMENT_SIDE], ref.ink[AGREEMENT_SIDE]), h, n)
        for h, n in hypotheses(found, ref, work.shape)
    ]
    if not scored:
        return None
    scored.sort(key=lambda entry: entry[0], reverse=True)
    _, homography, inliers = scored[0]
    homography = _refined(homography, page_ink, ref)
    agreed = agreement(homography, page_ink[AGREEMENT_SIDE], ref.ink[AGREEMENT_SIDE])
    # Only the best rival is refined too: refining costs more than the rest of the matching.
    rival = next((h for _, h, _ in scored[1:] if _elsewhere(h, homography, work.shape, ref)), None)
    if rival is not None:
        rival = _refined(rival, page_ink, ref)
    lead = agreed - (agreement(rival, page_ink[AGREEMENT_SIDE], ref.ink[AGREEMENT_SIDE]) if rival is not None else 0.0)
    full = resized(1 / ref.scale) @ homography @ resized(scale)
    return Match(full, inliers, agreed, plausible(full, gray.shape, ref.shape), lead)


def _refined(homography: np.ndarray, page_ink: dict[int, np.ndarray], ref: Reference) -> np.ndarray:
    """``homography`` refined by ECC on the ink maps, coarse then fine (``ecc_refined``)."""
    for side in (AGREEMENT_SIDE, ECC_SIDE):
        homography = ecc_refined(homography, page_ink[side], ref.ink[side])
    return homography


def _elsewhere(homography: np.ndarray, other: np.ndarray, work_shape: tuple[int, ...], ref: Reference) -> bool:
    """Whether two homographies (work copy to work copy) put the page's centre ``RIVAL_DISTANCE`` apart or more."""
    centre = np.float32([[[work_shape[1] / 2, work_shape[0] / 2]]])
    a, b = (cv2.perspectiveTransform(centre, h.astype(np.float64))[0, 0] for h in (homography, other))
    return float(np.linalg.norm(a - b)) >= RIVAL_DISTANCE * max(ref.work.shape)


def reference(path: Path) -> Reference:
    """The reference image at ``path`` ready for registration, computed once per process while the file is unchanged."""
    try:
        stat = path.stat()
    except OSError as problem:
        raise LayoutError(f"the layout's reference image {path} cannot be read ({problem}); put it back") from None
    return _reference(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _reference(path: str, _mtime_ns: int, _size: int) -> Reference:
    """``reference`` by path and the file's state, so that an edited reference is read again."""
    try:
        gray = decode_pages(Path(path).read_bytes(), range(1, 2))[0]
    except (OSError, UnreadableImage) as problem:
        raise LayoutError(
            f"the layout's reference image {path} cannot be read ({problem}); replace it with the sample "
            "image (PNG, JPEG, TIFF, PDF) the layout was drawn from"
        ) from None
    work, scale = work_copy(gray)
    found = keypoints(work)
    if found is None:
        raise LayoutError(
            f"the layout's reference image {path} shows nothing to match pages to; use a sample of the form"
        )
    return Reference((gray.shape[0], gray.shape[1]), scale, work, found, ink_maps(work))


def work_copy(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """The page at ``WORK_SIDE`` on its long side with its contrast evened out, and the scale it was brought to."""
    scale = WORK_SIDE / max(gray.shape)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(rescaled(gray, scale)), scale


def keypoints(work: np.ndarray) -> Keypoints | None:
    """ORB keypoints of a work copy; None where it has too few to match."""
    found, descriptors = cv2.ORB_create(nfeatures=KEYPOINTS).detectAndCompute(work, None)
    if descriptors is None or len(found) < MIN_INLIERS:
        return None
    return Keypoints(
        np.float32([k.pt for k in found]),
        np.float32([k.angle for k in found]),
        np.float32([k.size for k in found]),
        descriptors,
    )


def ink_maps(work: np.ndarray) -> dict[int, np.ndarray]:
    """How much of each pixel is ink, in the work copy brought to each side it is compared at, blurred.

    Ink is thin and darker than what surrounds it (a black top-hat): print and
    handwriting, whatever the light across the photo, but not the edge of the
    sheet against a darker table, which would pull the sheet's outline onto the
    reference's frame.
    """
    stroke = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (STROKE_WINDOW, STROKE_WINDOW))
    ink = (cv2.morphologyEx(work, cv2.MORPH_BLACKHAT, stroke) > INK_CONTRAST).astype(np.float32)
    maps = {}
    for side in (AGREEMENT_SIDE, ECC_SIDE):
        scale = side / max(work.shape)
        small = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        maps[side] = cv2.GaussianBlur(small, (0, 0), INK_BLUR * side / AGREEMENT_SIDE)
    return maps


def hypotheses(page: Keypoints, ref: Reference, page_shape: tuple[int, ...]) -> list[tuple[np.ndarray, int]]:
    """Homographies (work copy to work copy) of the best-voted bins, each with the number of matches it explains."""
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = [
        (m.queryIdx, m.trainIdx)
        for near in matcher.knnMatch(page.descriptors, ref.keypoints.descriptors, k=MATCHES_PER_KEYPOINT)
        for m in near
        if m.distance <= MAX_DESCRIPTOR_DISTANCE
    ]
    if len(pairs) < MIN_INLIERS:
        return []
    ours, theirs = (np.array(side) for side in zip(*pairs, strict=True))
    bins = vote_bins(page, ref, ours, theirs, page_shape)
    keys, counts = np.unique(bins, axis=0, return_counts=True)
    source, target = page.points[ours], ref.keypoints.points[theirs]
    found = []
    for key in keys[np.argsort(-counts)[:HYPOTHESES]]:
        homography, inliers = _fit(source[_near_bin(bins, key)], target[_near_bin(bins, key)])
        if homography is None:
            continue
        # Matches of neighbouring bins that this homography explains too (ORB's angles are rough).
        landed = cv2.perspectiveTransform(source[None], homography)[0]
        gathered = np.linalg.norm(landed - target, axis=1) < GATHER_PIXELS
        refitted, more = _fit(source[gathered], target[gathered])
        found.append((refitted, more) if refitted is not None else (homography, inliers))
    return found


def vote_bins(
    page: Keypoints, ref: Reference, ours: np.ndarray, theirs: np.ndarray, page_shape: tuple[int, ...]
) -> np.ndarray:
    """The vote bin of each match (turn, scale, and where the page's centre lands), shape (n, 4)."""
    turn = np.deg2rad(ref.keypoints.angles[theirs] - page.angles[ours])
    scale = ref.keypoints.sizes[theirs] / page.sizes[ours]
    centre = np.float32([page_shape[1] / 2, page_shape[0] / 2])
    dx, dy = (page.points[ours] - centre).T
    cos, sin = np.cos(turn), np.sin(turn)
    landed = ref.keypoints.points[theirs] - scale[:, None] * np.stack([cos * dx - sin * dy, sin * dx + cos * dy], 1)
    shift = SHIFT_BIN * max(ref.work.shape)
    return np.stack(
        [
            np.floor(np.mod(np.rad2deg(turn), 360) / ANGLE_BIN),
            np.floor(np.log2(scale) / SCALE_BIN),
            np.floor(landed[:, 0] / shift),
            np.floor(landed[:, 1] / shift),
        ],
        axis=1,
    ).astype(np.int64)


def _near_bin(bins: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Which matches voted for ``key`` or a bin next to it (turns wrap round)."""
    turns = round(360 / ANGLE_BIN)
    apart = np.abs(bins - key)
    apart[:, 0] = np.minimum(apart[:, 0], turns - apart[:, 0])
    return (apart <= 1).all(axis=1)


def _fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray | None, int]:
    """A homography from ``source`` to ``target`` points by RANSAC, and how many pairs it explains."""
    if len(source) < MIN_INLIERS:
        return None, 0
    homography, inliers = cv2.findHomography(source, target, cv2.RANSAC, RANSAC_PIXELS, maxIters=2000, confidence=0.995)
    if homography is None:
        return None, 0
    return homography, int(inliers.sum())


def agreement(homography: np.ndarray, page_ink: np.ndarray, ref_ink: np.ndarray) -> float:
    """Correlation of the reference's ink with the page's ink warped by ``homography`` (work copy to work copy).

    Where the page does not reach, it counts as paper: a page that covers only
    part of the form agrees less.
    """
    warp = _between_maps(homography, ref_ink)
    warped = cv2.warpPerspective(page_ink, warp, ref_ink.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=0)
    a, b = warped - warped.mean(), ref_ink - ref_ink.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def ecc_refined(homography: np.ndarray, page_ink: np.ndarray, ref_ink: np.ndarray) -> np.ndarray:
    """``homography`` refined by ECC on the ink maps, where that raises their agreement; else as it was."""
    warp = _between_maps(homography, ref_ink)
    try:
        # ECC's warp maps the template's (reference's) pixels to the input's (page's).
        start = np.linalg.inv(warp)
        start = (start / start[2, 2]).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
        _, found = cv2.findTransformECC(ref_ink, page_ink, start, cv2.MOTION_HOMOGRAPHY, criteria, None, 1)
        refined_warp = np.linalg.inv(found.astype(np.float64))
    except (cv2.error, np.linalg.LinAlgError):
        return homography
    refined = _from_maps(refined_warp, ref_ink)
    better = agreement(refined, page_ink, ref_ink) > agreement(homography, page_ink, ref_ink)
    return refined if better else homography


def _between_maps(homography: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """``homography`` (work copy to work copy) as a map between ink maps of the shape of ``ink``.

    Both work copies are ``WORK_SIDE`` long, so both maps of one side are scaled alike.
    """
    scale = max(ink.shape) / WORK_SIDE
    return resized(scale) @ homography @ resized(1 / scale)


def _from_maps(warp: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """``_between_maps`` turned round."""
    scale = max(ink.shape) / WORK_SIDE
    return resized(1 / scale) @ warp @ resized(scale)


def resized(scale: float) -> np.ndarray:
    """Where the pixels of an image land in the same image resized by ``scale``, as a homography.

    Pixels are squares with their centres at whole coordinates, as OpenCV
    resizes and warps them: a plain scaling would be off by up to half a pixel
    of the smaller image, and a page turned round doubles that instead of cancelling it.
    """
    shift = (scale - 1) / 2
    return np.array([[scale, 0.0, shift], [0.0, scale, shift], [0.0, 0.0, 1.0]])


def plausible(homography: np.ndarray, page_shape: tuple[int, ...], ref_shape: tuple[int, int]) -> bool:
    """Whether ``homography`` (page pixels to reference pixels) could be a photo of the form.

    The page's outline must land in front of the camera, as a convex
    quadrilateral turning the same way (paper is not seen from behind), covering
    ``MIN_COVERAGE`` of the reference's frame and at most ``MAX_PAGE_AREA`` times its area.
    """
    if not np.isfinite(homography).all():
        return False
    height, width = page_shape[:2]
    corners = np.float64([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]])
    mapped = corners @ homography.T
    if (mapped[:, 2] <= 0).any():
        return False
    outline = (mapped[:, :2] / mapped[:, 2:]).astype(np.float32)
    if not cv2.isContourConvex(outline):
        return False
    signed = cv2.contourArea(outline, oriented=True)
    if np.sign(signed) != np.sign(cv2.contourArea(corners[:, :2].astype(np.float32), oriented=True)):
        return False
    frame = np.float32([[0, 0], [ref_shape[1], 0], [ref_shape[1], ref_shape[0]], [0, ref_shape[0]]])
    covered, _ = cv2.intersectConvexConvex(outline, frame)
    area = float(ref_shape[0] * ref_shape[1])
    return covered >= MIN_COVERAGE * area and abs(signed) <= MAX_PAGE_AREA * area
