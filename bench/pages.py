"""Long documents: memory against page count, and the latency of ordinary scans while one is read.

    python -m bench.pages [--pages 10,100,1000] [--frames 0] [--workers 2] [--in-process] [--out bench/results]

Inputs are PDFs of blank Letter pages (a few hundred bytes of file per page, a
full page of pixels each, as a careless scanner or an attacker sends them).

1. In one process: ``digits recognize`` on each PDF, each in a process of its
   own; its peak resident memory (the kernel's ``ru_maxrss``) and seconds.
2. The service: ``digits up --workers N`` (and its page worker), warm; each PDF
   dropped in turn and read to its last row, while the resident memory of every
   process of the service, summed, is sampled; during the longest, a single-digit
   scan is dropped every ``ORDINARY_EVERY_SECONDS`` and timed until its row.
   With ``--frames F``, a TIFF of F tiny frames is dropped beside the longest PDF
   (``--pages 3000 --frames 2000 --no-in-process``: the page bombs of issue 21).

Prints the report and writes ``pages.json`` into ``--out``. The memory of
both should not grow with the page count.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.drop import digit_images
from bench.run import POLL_SECONDS, Service
from digits.recognition.imaging import count_pages

ORDINARY_EVERY_SECONDS = 1.0
"""How often a single-digit scan is dropped while the longest document is read."""

SAMPLE_SECONDS = 0.5
"""How often the service's memory is sampled."""


def blank_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` blank Letter pages: a few hundred bytes of file per page, a full page of pixels each."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(612, 792)  # points: 8.5 x 11 inches
    out = io.BytesIO()
    document.save(out)
    document.close()
    return out.getvalue()


def tiny_frames_tiff(frames: int) -> bytes:
    """A TIFF of ``frames`` blank 20 x 20 frames."""
    ok, data = cv2.imencodemulti(".tiff", [np.full((20, 20), 255, np.uint8)] * frames)
    if not ok:
        raise RuntimeError("OpenCV could not write a multi-frame TIFF")
    return data.tobytes()


def in_process(pdf: Path, pages: int) -> dict:
    """``digits recognize`` on ``pdf`` in a process of its own: its peak memory and time."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "digits.cli", "recognize", "--max-pages", str(pages), str(pdf)],
            stdout=out, stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not the largest child's so far
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        rows = out.read().count(b"\n") - 1
    return {
        "pages": pages,
        "exit_code": process.returncode,
        "rows": rows,
        "seconds": round(time.monotonic() - started, 1),
        "peak_mb": round(usage.ru_maxrss / 1024, 1),
    }


def service_memory(service: Service) -> float:
    return sum(service.memory_mb().values())


def in_service(service: Service, pdfs: dict[int, Path], longest: int, tiff: Path | None) -> list[dict]:
    """Each PDF dropped into the warm service and read to its last row, its memory sampled.

    Ordinary scans are dropped beside the longest and timed to their rows.
    """
    warm = service_memory(service)
    digits = iter(digit_images(10_000))
    report = []
    for pages, pdf in pdfs.items():
        beside = [tiff] if tiff and pages == longest else []
        service.drop(service.stage([pdf, *beside]))
        expected = {pdf.name: pages} | {path.name: count_pages(path.read_bytes()) for path in beside}
        all_rows = sum(expected.values())
        peak, latencies, waiting, rows = warm, [], {}, 0
        started = last_drop = next_sample = time.monotonic()
        done_at = None
        while rows < all_rows or waiting:
            now = time.monotonic()
            if pages == longest and rows < all_rows and now - last_drop >= ORDINARY_EVERY_SECONDS:
                image, _ = next(digits)
                name = f"plain-{len(latencies) + len(waiting):04d}.png"
                cv2.imwrite(str(service.root / "staged" / name), image)
                os.rename(service.root / "staged" / name, service.root / "inbox" / name)
                waiting[name], last_drop = now, now
            for row in service.rows.new_rows():
                if row["source"] in expected:
                    rows += 1
                    done_at = time.monotonic() if rows == all_rows else done_at
                elif row["source"] in waiting:
                    latencies.append(time.monotonic() - waiting.pop(row["source"]))
            if now >= next_sample:
                peak, next_sample = max(peak, service_memory(service)), now + SAMPLE_SECONDS
            time.sleep(POLL_SECONDS)
        entry = {
            "documents": expected,
            "seconds_to_last_row": round(done_at - started, 1),
            "warm_mb": round(warm, 1),
            "peak_mb": round(peak, 1),
            "growth_mb": round(peak - warm, 1),
        }
        if latencies:
            entry |= {
                "ordinary_files": len(latencies),
                "ordinary_p50_seconds": round(statistics.median(latencies), 2),
                "ordinary_p95_seconds": round(statistics.quantiles(latencies, n=20)[-1], 2),
            }
        report.append(entry)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", default="10,100,1000", help="page counts, comma-separated")
    parser.add_argument("--frames", type=int, default=0, help="a TIFF of this many frames beside the longest PDF")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-in-process", dest="in_process", action="store_false", help="the service only")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    counts = [int(count) for count in args.pages.split(",")]

    folder = Path(tempfile.mkdtemp(prefix="digits-pages-"))
    pdfs = {}
    for pages in counts:
        pdfs[pages] = folder / f"blank-{pages}.pdf"
        pdfs[pages].write_bytes(blank_pdf(pages))
    tiff = None
    if args.frames:
        tiff = folder / f"frames-{args.frames}.tif"
        tiff.write_bytes(tiny_frames_tiff(args.frames))
    report = {"in_process": [in_process(pdfs[pages], pages) for pages in counts] if args.in_process else []}
    service = Service(args.workers)
    service.env["DIGITS_MAX_PAGES"] = str(max([*counts, args.frames]))
    service.start()
    try:
        [warm_up] = service.stage([_single(folder)])
        service.drop([warm_up])
        service.wait_for({warm_up.name}, timeout=300)
        while b"the page worker is warm" not in (service.root / "up.log").read_bytes():
            time.sleep(POLL_SECONDS)
        time.sleep(3)  # the larger batch sizes are traced after the first file
        report["service"] = in_service(service, pdfs, max(counts), tiff)
    finally:
        service.stop()
    report["workers"] = args.workers
    print(json.dumps(report, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pages.json").write_text(json.dumps(report, indent=2) + "\n")


def _single(folder: Path) -> Path:
    image, _ = digit_images(1)[0]
    path = folder / "warm-up.png"
    cv2.imwrite(str(path), image)
    return path


if __name__ == "__main__":
    main()
