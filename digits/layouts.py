"""Layouts: the named fields of a cheque or a form, and where on the page each one is.

A layout is a TOML file in the layouts folder (``layouts/cheque.toml`` is the
layout ``cheque``). Regions are fractions of the page, so one layout fits a
scan at any resolution::

    description = "A personal cheque"
    reference = "cheque-sample.png"     # optional: the sample the layout was drawn from, beside this file

    [[fields]]
    name = "amount"
    region = [0.68, 0.36, 0.29, 0.17]   # left, top, width, height; fractions of the page
    max_digits = 10                     # optional: more digits than this go to review

    [[fields]]
    name = "date"
    region = [0.70, 0.08, 0.27, 0.12]
    comb = 8                            # optional: printed boxes, one digit each
    printed = [[0.93, 0.36, 0.04, 0.17]]  # optional: pre-printed text in the field (",00"), never read

With a ``reference``, regions are fractions of that image, and each page is
registered to it before its fields are cut (``digits.recognition.register``), so
that photos cropped, scaled, turned or seen at an angle still land their fields.

The station's layout designer saves layouts here (``save_layout``): saving over
one keeps the one before in ``versions/<name>/<n>/``, whole, with its reference.

No TensorFlow and no numpy here: the ingester and ``submit`` check layout names.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomli_w

LAYOUT_SUFFIX = ".toml"
"""File ending of a layout in the layouts folder."""

VERSIONS_FOLDER = "versions"
"""Folder of the layouts folder that keeps each layout saved over: ``versions/<name>/<n>/``."""

MAX_FIELDS = 64
"""Most fields a layout drawn in the station may have."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class LayoutError(ValueError):
    """A layout that does not exist or does not make sense; the message says which and why."""


@dataclass(frozen=True)
class Field:
    """One numeric field: its name (the CSV's ``field``), its region, and what to expect in it."""

    name: str
    region: tuple[float, float, float, float]
    """Left, top, width and height as fractions of the page's width and height."""
    digits: int | None = None
    """Exactly this many digits are expected; another count goes to review."""
    max_digits: int | None = None
    """At most this many digits are expected; more go to review."""
    comb: int | None = None
    """The field is a row of this many printed boxes, one digit in each."""
    printed: tuple[tuple[float, float, float, float], ...] = ()
    """Regions (fractions of the page, like ``region``) inside the field that hold pre-printed
    text, such as a currency sign or the cents ",00": erased before the field is read."""


@dataclass(frozen=True)
class Layout:
    """A named set of fields."""

    name: str
    fields: tuple[Field, ...]
    description: str = ""
    reference: Path | None = None
    """The sample image the layout was drawn from, beside the layout file: pages are registered to it."""


def layout_path(name: str, folder: Path) -> Path:
    """Where the layout called ``name`` lives (it may not exist)."""
    if not _NAME.match(name):
        raise LayoutError(f"layout name {name!r} must be letters, digits, '-' or '_' (it names a file)")
    return Path(folder) / f"{name}{LAYOUT_SUFFIX}"


def load_layout(name: str, folder: Path) -> Layout:
    """Read and check the layout called ``name`` from ``folder``."""
    path = layout_path(name, folder)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in Path(folder).glob(f"*{LAYOUT_SUFFIX}"))) or "none"
        raise LayoutError(f"no layout {name!r} in {folder} (layouts there: {known}); add {path.name} or pick one")
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as problem:
        raise LayoutError(f"{path}: not valid TOML ({problem}); fix the file") from None
    fields = fields_from(document.get("fields", []), str(path))
    return Layout(name, fields, str(document.get("description", "")), _reference(path, document.get("reference")))


def fields_from(entries: object, where: str) -> tuple[Field, ...]:
    """The fields a layout's ``[[fields]]`` entries describe, checked; ``where`` names them in errors."""
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise LayoutError(f"{where}: fields must be a list of tables ([[fields]])")
    fields = tuple(_field(where, i, entry) for i, entry in enumerate(entries))
    if not fields:
        raise LayoutError(f"{where}: no [[fields]]; a layout names at least one field")
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise LayoutError(f"{where}: field names repeat ({', '.join(names)}); each row needs its own name")
    return fields


def drawn_fields(entries: object) -> tuple[Field, ...]:
    """Fields drawn in the station's designer, checked as a layout file's are, and named as layouts are
    (letters, digits, '-' or '_'): their names go into CSVs and file names."""
    fields = fields_from(entries, "the drawn layout")
    if len(fields) > MAX_FIELDS:
        raise LayoutError(f"the drawn layout has {len(fields)} fields; at most {MAX_FIELDS}")
    for field in fields:
        if not _NAME.match(field.name):
            raise LayoutError(f"field name {field.name!r}: use letters, digits, '-' or '_' (up to 64)")
    return fields


def entry_of(field: Field) -> dict:
    """A field as its ``[[fields]]`` entry (what ``fields_from`` reads back as the same field)."""
    entry: dict = {"name": field.name, "region": [round(v, 5) for v in field.region]}
    for key in ("comb", "digits", "max_digits"):
        if getattr(field, key) is not None:
            entry[key] = getattr(field, key)
    if field.printed:
        entry["printed"] = [[round(v, 5) for v in part] for part in field.printed]
    return entry


def layout_names(folder: Path) -> list[str]:
    """The layouts in ``folder``, by name, sorted."""
    return sorted(p.stem for p in Path(folder).glob(f"*{LAYOUT_SUFFIX}") if _NAME.match(p.stem))


def versions(name: str, folder: Path) -> list[int]:
    """The numbers of the versions kept of a layout saved over, oldest first."""
    kept = Path(folder) / VERSIONS_FOLDER / layout_path(name, folder).stem
    return sorted(int(p.name) for p in kept.glob("*") if p.name.isdigit()) if kept.is_dir() else []


def save_layout(name: str, folder: Path, fields: tuple[Field, ...], description: str, reference: bytes) -> int:
    """Write the layout ``name`` and its reference image (PNG bytes) into ``folder``; its version number.

    A layout already there is first copied, whole, to ``versions/<name>/<n>/``,
    so nothing is overwritten unkept. Each version has a reference image of its
    own name (``<name>.v<n>.png``), and the layout file is replaced in one step:
    a worker reads either the old layout with its image or the new one with its
    own. Saves into one folder take turns (a lock file), so two at once both
    keep their layout, one as the current and one as a version.
    """
    path = layout_path(name, folder)
    document = {"description": description, "reference": "", "fields": [entry_of(f) for f in fields]}
    with _folder_lock(folder):
        kept = versions(name, folder)
        before = load_layout(name, folder) if path.exists() else None
        if before is not None:
            _keep(before, path, Path(folder) / VERSIONS_FOLDER / name / str((kept[-1] if kept else 0) + 1))
            kept = versions(name, folder)
        number = (kept[-1] if kept else 0) + 1
        image = path.with_name(f"{name}.v{number}.png")
        _write_atomically(image, reference)
        document["reference"] = image.name
        header = f"# Saved from the review station's layout designer; earlier versions: {VERSIONS_FOLDER}/{name}/.\n"
        _write_atomically(path, (header + tomli_w.dumps(document)).encode())
        if before is not None and before.reference is not None and before.reference != image:
            before.reference.unlink(missing_ok=True)  # kept with its version
    return number


def _keep(layout: Layout, path: Path, version: Path) -> None:
    """Copy a layout file and its reference image into the folder of one of its versions."""
    version.mkdir(parents=True)
    shutil.copy2(path, version / path.name)
    if layout.reference is not None:
        shutil.copy2(layout.reference, version / layout.reference.name)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on a layouts folder, between threads and processes alike (one open file each)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / ".saving.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: readers see the old file or the new, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def layout_for_inbox_path(relative: str, folder: Path) -> str | None:
    """The layout of a file dropped at ``relative`` (inbox-relative, ``/``-separated), if any.

    ``inbox/cheque/scan.tif`` uses the layout ``cheque`` when ``cheque.toml``
    exists; files at the top of the inbox, or in folders without a layout, have none.
    """
    parts = relative.split("/")
    if len(parts) < 2 or not _NAME.match(parts[0]):
        return None
    return parts[0] if layout_path(parts[0], folder).exists() else None


def _reference(path: Path, name: object) -> Path | None:
    """The reference image a layout names, checked to be a file beside it (a plain name: no folders, no "..")."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip(".") or ".." in name or "/" in name or "\\" in name:
        raise LayoutError(
            f"{path}: reference must be the plain file name of an image in the layout's folder "
            f'(reference = "sample.jpg"), not {name!r}; copy the image beside {path.name}'
        )
    image = path.parent / name
    if not image.is_file():
        raise LayoutError(
            f"{path}: its reference image {name} is not in {path.parent}; copy the sample the layout was "
            "drawn from there under that name, or remove the reference line"
        )
    return image


def _field(path: str, index: int, entry: dict) -> Field:
    where = f"{path}: field {index + 1}"
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise LayoutError(f'{where} has no name; give it `name = "amount"` or alike')
    region = entry.get("region")
    counts = {key: entry.get(key) for key in ("digits", "max_digits", "comb")}
    for key, value in counts.items():
        if value is not None and (not isinstance(value, int) or value < 1):
            raise LayoutError(f"{where} ({name}): {key} must be a whole number of at least 1")
    printed = entry.get("printed", [])
    if not isinstance(printed, list):
        raise LayoutError(f"{where} ({name}): printed must be a list of regions, [[left, top, width, height], …]")
    return Field(
        name,
        _region(f"{where} ({name}): region", region),
        printed=tuple(_region(f"{where} ({name}): printed region", part) for part in printed),
        **counts,
    )


def _region(what: str, region: object) -> tuple[float, float, float, float]:
    """``region`` checked to be [left, top, width, height] inside the page."""
    if not isinstance(region, list) or len(region) != 4 or not all(isinstance(v, int | float) for v in region):
        raise LayoutError(f"{what} must be [left, top, width, height], fractions of the page")
    left, top, width, height = (float(v) for v in region)
    if not (0 <= left < 1 and 0 <= top < 1 and width > 0 and height > 0 and left + width <= 1 and top + height <= 1):
        raise LayoutError(f"{what} {region} does not lie inside the page (0 to 1 each way)")
    return left, top, width, height
