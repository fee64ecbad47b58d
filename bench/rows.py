"""Follow the result CSVs of a running service, reading only what was appended since the last look."""

from __future__ import annotations

import csv
from pathlib import Path

from digits.contracts import COLUMNS


class RowTail:
    """The rows appended to the ``*.csv`` files of one folder, a look at a time.

    Waiting for rows must cost the service no CPU: parsing whole CSVs at every
    look would take more and more of it from the service as they grow.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._offsets: dict[Path, int] = {}

    def new_rows(self) -> list[dict]:
        """Rows appended since the last call (only those bytes are read and parsed)."""
        rows = []
        for path in sorted(self.folder.glob("*.csv")):
            start = self._offsets.get(path, 0)
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read()
            end = chunk.rfind(b"\n") + 1  # whole lines only: a block may be half-written
            lines = chunk[:end].decode("utf-8").splitlines()[1 if start == 0 else 0 :]  # no header
            rows += csv.DictReader(lines, fieldnames=COLUMNS)
            self._offsets[path] = start + end
        return rows
