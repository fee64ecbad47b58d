"""Reviewed fields as training data: what people decided, gathered into a dataset snapshot a training run names.

Every standing decision with digits (confirmed or corrected, from the review
queue or the blind audit) is a labelled example from the site's own scans: the
field's crop as it was read, and what a person read on it. A snapshot copies
those crops into a folder with a manifest whose hash depends on the examples
only, so that the same corrections always give the same hash and a model's
metadata says exactly which corrections it learnt from.

Each example is on one side of a split, chosen by its file's hash: every field
of a file lands on the same side, so that a model is never measured on a file
it learnt from. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from digits.contracts import CONFIRMED, CORRECTED
from digits.layouts import LAYOUT_SUFFIX, LayoutError, load_layout
from digits.reviews import standing_decisions

DIGIT, LINE, COMB = "digit", "line", "comb"
"""Kinds of example: a single digit (the classifier's), an amount or other line of digits
(the string models'), and a comb field (printed boxes, a digit in each)."""

TRAIN, HELD_OUT = "train", "held-out"
"""The two sides of the split."""

HELD_OUT_SHARE = 0.2
"""Share of files whose fields are held out, to measure a model fine-tuned on the rest."""

SNAPSHOTS_FOLDER = "corrections"
"""Folder of the results folder that holds the snapshots, one folder each, named by the hash's start."""

MANIFEST = "manifest.json"
"""A snapshot's list of examples, with its hash."""

FORMAT = 1
"""Version of the manifest's layout; part of the hash."""


@dataclass(frozen=True)
class Example:
    """One reviewed field: its crop, what a person read on it, and where it came from."""

    crop: str
    """Within the snapshot: ``crops/<sha256 of the PNG>.png``."""
    label: str
    kind: str
    split: str
    file_sha256: str
    """The scanned file's hash, which chooses the split."""
    source: str
    """``inbox`` or ``jobs``: where the file came in."""
    verdict: str
    machine_digits: str


@dataclass(frozen=True)
class Snapshot:
    """A written snapshot: its folder, hash and examples."""

    folder: Path
    hash: str
    examples: list[Example]

    def of(self, split: str, kinds: Iterable[str] = (DIGIT, LINE, COMB)) -> list[Example]:
        """The examples on one side of the split, of the given kinds."""
        return [e for e in self.examples if e.split == split and e.kind in set(kinds)]

    def path(self, example: Example) -> Path:
        return self.folder / example.crop


def split_of(file_sha256: str) -> str:
    """The side of the split every field of the file with this hash lands on."""
    return HELD_OUT if int(file_sha256[:8], 16) % 1000 < HELD_OUT_SHARE * 1000 else TRAIN


def comb_fields(layouts: Path) -> set[str]:
    """Names of the comb fields of every layout in ``layouts``."""
    names = set()
    for path in sorted(Path(layouts).glob(f"*{LAYOUT_SUFFIX}")):
        try:
            names |= {field.name for field in load_layout(path.stem, layouts).fields if field.comb}
        except LayoutError:
            continue  # a broken layout reads nothing, so it has no corrections either
    return names


def kind_of(label: str, field: str, combs: set[str]) -> str:
    """Whether a labelled field teaches the classifier (one digit, a comb) or the string models (a line)."""
    if field in combs:
        return COMB
    return DIGIT if len(label) == 1 else LINE


def gather(results: Path, layouts: Path) -> tuple[list[tuple[bytes, Example]], Counter]:
    """The usable standing decisions, each as (its crop's PNG, its example), in a fixed order; and why others are not.

    Usable: confirmed or corrected, with digits, and with its crop still in the
    results folder. Unreadable fields teach no digit and are left out.
    """
    combs = comb_fields(layouts)
    entries, left_out = [], Counter()
    for decision in standing_decisions(results).values():
        crop = Path(results) / decision["crop"]
        if decision["verdict"] not in (CONFIRMED, CORRECTED) or not decision["digits"].isdigit():
            left_out["unreadable"] += 1
            continue
        if not crop.resolve().is_relative_to(Path(results).resolve()) or not crop.is_file():
            left_out["crop missing"] += 1
            continue
        data = crop.read_bytes()
        example = Example(
            crop=f"crops/{hashlib.sha256(data).hexdigest()}.png",
            label=decision["digits"],
            kind=kind_of(decision["digits"], decision["field"], combs),
            split=split_of(decision["sha256"]),
            file_sha256=decision["sha256"],
            source=Path(decision["crop"]).parts[0],
            verdict=decision["verdict"],
            machine_digits=decision["machine_digits"],
        )
        entries.append((data, example))
    entries.sort(key=lambda entry: (entry[1].crop, entry[1].label))
    return entries, left_out


def write_snapshot(results: Path, entries: list[tuple[bytes, Example]], out: Path | None = None) -> Snapshot:
    """Copy the corrections' crops and a manifest into a snapshot folder: the same corrections, the same hash.

    Args:
        results: The results folder.
        entries: What ``gather`` found there.
        out: Folder to write into; default ``results/corrections/<hash start>``.

    Returns:
        The snapshot. An existing snapshot with the same hash is left as it is.
    """
    examples = [example for _, example in entries]
    digest = manifest_hash(examples)
    folder = Path(out) if out else Path(results) / SNAPSHOTS_FOLDER / digest[:12]
    if not (folder / MANIFEST).exists():
        (folder / "crops").mkdir(parents=True, exist_ok=True)
        for data, example in entries:
            (folder / example.crop).write_bytes(data)
        manifest = {"format": FORMAT, "hash": digest, "examples": [asdict(e) for e in examples]}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return Snapshot(folder, digest, examples)


def manifest_hash(examples: list[Example]) -> str:
    """The hash of a snapshot: of its examples (crops named by their content) and the manifest's format."""
    canonical = json.dumps({"format": FORMAT, "examples": [asdict(e) for e in examples]}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_snapshot(name: str | Path, results: Path) -> Snapshot:
    """A snapshot by its folder, or by the start of its hash (in ``results/corrections/``); checks its hash.

    Raises:
        LookupError: no such snapshot, or one whose manifest does not match its hash.
    """
    folder = Path(name)
    if not (folder / MANIFEST).exists():
        found = sorted((Path(results) / SNAPSHOTS_FOLDER).glob(f"{name}*/{MANIFEST}"))
        if len(found) != 1:
            known = ", ".join(p.parent.name for p in (Path(results) / SNAPSHOTS_FOLDER).glob(f"*/{MANIFEST}"))
            raise LookupError(f"no single corrections snapshot {name!r} (snapshots: {known or 'none'}); "
                              "write one with `digits corrections --snapshot`")  # fmt: skip
        folder = found[0].parent
    manifest = json.loads((folder / MANIFEST).read_text())
    examples = [Example(**entry) for entry in manifest["examples"]]
    if manifest_hash(examples) != manifest["hash"]:
        raise LookupError(f"{folder / MANIFEST} does not match its hash: it was changed; write a new snapshot")
    return Snapshot(folder, manifest["hash"], examples)


def latest_snapshot(results: Path) -> Snapshot | None:
    """The snapshot written last in ``results/corrections/``, if any."""
    manifests = sorted((Path(results) / SNAPSHOTS_FOLDER).glob(f"*/{MANIFEST}"), key=lambda p: p.stat().st_mtime)
    return load_snapshot(manifests[-1].parent, results) if manifests else None


def summary(examples: list[Example]) -> Counter:
    """How many examples there are, by (kind, source, split)."""
    return Counter((e.kind, e.source, e.split) for e in examples)
