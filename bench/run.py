"""``make bench``: the service's throughput against its own model's, latency, cold start and memory, in one run.

    python -m bench.run [--singles 1000] [--cheques 200] [--workers 2] [--rounds 3] [--out bench/results]

Generates its inputs: single-digit scans (MNIST test digits on paper when
../shared/data is there, drawn digits otherwise) and filled-in cheques of the
shipped layout (200 dpi, about 1200 x 550 pixels). Then, on this machine:

1. cold start: ``digits up --workers N`` launched with a file waiting in its inbox, until that file's row;
2. latency: single files dropped one at a time into the idle service, each until its row;
3. throughput, in ``--rounds`` turns on the same files: the service (all files of a kind
   dropped at once, until their last row), then in-process ``digits recognize`` (one
   process, reading in batches, timed from the end of its first batch), then, for the
   single digits, the model alone (``bench.model_only``: the classifier ensemble on the
   digits already cut, in batches of 64). The round with the median ratio of the service
   to the model alone is reported (for cheques, of the service to in-process);
4. a single digit's reading in one pool process (``bench.model_work``: one TensorFlow
   thread, model calls timed apart), which bounds what the service can reach against the
   model alone with the same readings.

Prints a table and writes ``bench.json`` and ``bench.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.drop import digit_images, free_port
from bench.rows import RowTail
from bench.soak import rss_mb, stack_processes
from digits.layouts import load_layout
from digits.samples import draw_page
from digits.settings import get_settings
from layouts import FOLDER

TARGETS = {
    "service_vs_model_only": 0.5,
    "service_vs_in_process": 0.8,
    "latency_p50_seconds": 1.0,
    "latency_p95_seconds": 2.0,
    "cold_start_seconds": 15.0,
}
"""What issues 6 and 20 ask: ratios at least (single digits), seconds at most."""

WAY_LABELS = {
    "model_only": "model alone\n(digits/s)",
    "service": "service",
    "in_process": "in-process",
}
"""How the chart names each way of reading."""

LATENCY_DROPS = 20
"""Single files dropped one at a time to measure latency."""

POLL_SECONDS = 0.01
"""How often the CSV is looked at while waiting for a row."""


def write_inputs(folder: Path, singles: int, cheques: int) -> dict[str, dict[str, str]]:
    """Write the scans; ``{kind: {file name: truth}}``, a cheque's truth being ``date/amount``."""
    rng = np.random.default_rng(6)
    truth: dict[str, dict[str, str]] = {"singles": {}, "cheques": {}}
    (folder / "singles").mkdir(parents=True)
    for i, (page, label) in enumerate(digit_images(singles + LATENCY_DROPS + 1)):
        name = f"digit-{i:05d}.png"
        cv2.imwrite(str(folder / "singles" / name), page)
        truth["singles"][name] = str(label)
    (folder / "cheques").mkdir()
    layout = load_layout("cheque", FOLDER)
    for i in range(cheques):
        date = f"{rng.integers(1, 29):02d}{rng.integers(1, 13):02d}{rng.integers(2020, 2030)}"
        amount = str(rng.integers(1, 10 ** rng.integers(1, 7)))
        name = f"cheque-{i:04d}.png"
        cv2.imwrite(str(folder / "cheques" / name), draw_page(layout, {"date": date, "amount": amount}, seed=i))
        truth["cheques"][name] = f"{date}/{amount}"
    return truth


class Service:
    """``digits up`` in a folder of its own, with a Redis of its own."""

    def __init__(self, workers: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="digits-bench-"))
        self.workers = workers
        self.env = dict(os.environ, DIGITS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", DIGITS_REVIEW_PORT="0")
        self.up: subprocess.Popen | None = None
        self.rows = RowTail(self.root / "results" / "inbox")
        (self.root / "inbox" / "cheque").mkdir(parents=True)
        (self.root / "staged").mkdir()

    def start(self) -> None:
        with open(self.root / "up.log", "wb") as log:
            self.up = subprocess.Popen(
                [sys.executable, "-m", "digits.cli", "up", "--workers", str(self.workers)],
                cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop(self) -> None:
        if self.up is not None:
            self.up.send_signal(signal.SIGTERM)
            self.up.wait(180)

    def stage(self, files: list[Path], prefix: str = "") -> list[Path]:
        """Copy files beside the inbox (names prefixed), so that dropping them is only a rename."""
        staged = []
        for path in files:
            shutil.copy(path, self.root / "staged" / f"{prefix}{path.name}")
            staged.append(self.root / "staged" / f"{prefix}{path.name}")
        return staged

    def drop(self, staged: list[Path], into: str = "") -> None:
        for path in staged:
            os.rename(path, self.root / "inbox" / into / path.name)  # appears whole, as a scanner's rename would

    def wait_for(self, sources: set[str], timeout: float = 1800) -> list[dict]:
        """The rows of ``sources`` once each has at least one."""
        deadline = time.monotonic() + timeout
        found: list[dict] = []
        while time.monotonic() < deadline:
            found += [row for row in self.rows.new_rows() if row["source"] in sources]
            if {row["source"] for row in found} >= sources:
                return found
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"not all {len(sources)} files had rows after {timeout} s; see {self.root}/up.log")

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of each process of the stack, by role (pool processes each on their own)."""
        memory: dict[str, float] = {}
        for pid, role in stack_processes(self.up.pid).items():
            size = rss_mb(pid)
            if size is not None:
                key = role if role not in memory else f"{role} {pid}"
                memory[key] = round(size, 1)
        return memory


def start_service(service: Service, inputs: Path, names: list[str]) -> dict:
    """Cold start with ``names[0]`` waiting in the inbox, then latency of the next ``LATENCY_DROPS`` files."""
    first = names[0]
    shutil.copy(inputs / "singles" / first, service.root / "inbox" / first)
    started = time.monotonic()
    service.start()
    service.wait_for({first}, timeout=300)
    cold_start = time.monotonic() - started
    latencies = []
    for name in names[1 : 1 + LATENCY_DROPS]:
        staged = service.stage([inputs / "singles" / name])
        time.sleep(0.5)  # idle
        dropped = time.monotonic()
        service.drop(staged)
        service.wait_for({name}, timeout=60)
        latencies.append(time.monotonic() - dropped)
    return {"cold_start_seconds": round(cold_start, 2), "latency_seconds": [round(s, 3) for s in latencies]}


def measure_service(service: Service, files: list[Path], into: str, prefix: str, truth: dict[str, str]) -> dict:
    """All ``files`` dropped at once into the warm service (names prefixed, so that they are new), until their rows."""
    staged = service.stage(files, prefix)
    dropped = time.monotonic()
    service.drop(staged, into)
    rows = service.wait_for({f"{into}/{path.name}" if into else path.name for path in staged})
    seconds = time.monotonic() - dropped
    return _throughput(len(files), seconds) | {"right": _right(_as_read(rows, prefix), truth)}


def measure_in_process(files: list[Path], layout: str | None, batch_size: int) -> tuple[dict, list[dict]]:
    """``digits recognize`` on ``files`` in one process, timed from the end of its first batch; and its rows.

    The command writes each batch's rows as soon as they are read, so the time
    each line arrives tells when its batch ended. The first batch pays for
    tracing the models' graphs, as the service's warm-up file does.
    """
    if len(files) <= batch_size:
        raise ValueError(f"in-process reading is timed after its first batch: give more than {batch_size} files")
    command = [sys.executable, "-m", "digits.cli", "recognize", *(["--layout", layout] if layout else [])]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([*command, *map(str, files)], env=env, stdout=subprocess.PIPE, text=True)
    header = next(csv.reader([process.stdout.readline()]))
    arrivals, rows = [], []
    for line in process.stdout:
        arrivals.append(time.monotonic())
        rows.append(dict(zip(header, next(csv.reader([line])), strict=True)))
    if process.wait() != 0:
        raise RuntimeError(f"digits recognize exited with {process.returncode}")
    second_batch = next(i for i, row in enumerate(rows) if row["source"] == files[batch_size].as_posix())
    seconds = arrivals[-1] - arrivals[second_batch - 1]
    return _throughput(len(files) - batch_size, seconds), rows


def _as_read(rows: list[dict], prefix: str = "") -> dict[str, str]:
    """``{file name without prefix: digits}``; a cheque's two fields joined as ``date/amount``."""
    fields: dict[str, dict[str, str]] = {}
    for row in rows:
        fields.setdefault(Path(row["source"]).name.removeprefix(prefix), {})[row["field"]] = row["digits"]
    return {name: f"{f['date']}/{f['amount']}" if "date" in f else f["all"] for name, f in fields.items()}


def _right(read: dict[str, str], truth: dict[str, str]) -> float:
    """Share of the files read whose digits are all right."""
    return round(sum(truth[name] == digits for name, digits in read.items()) / max(1, len(read)), 4)


def _median_round(runs: list[dict], against: str) -> dict:
    """The round whose ratio of the service's rate to the ``against`` way's is the median one."""
    ordered = sorted(runs, key=lambda r: _ratio(r, against))
    return ordered[len(ordered) // 2]


def _ratio(run: dict, against: str) -> float:
    return round(run["service"]["files_per_second"] / run[against]["files_per_second"], 3)


def _throughput(files: int, seconds: float) -> dict:
    return {"files": files, "seconds": round(seconds, 2), "files_per_second": round(files / seconds, 1)}


def measure_model_only(files: list[Path]) -> dict:
    """The classifier ensemble alone on the digits of ``files`` (``bench.model_only``), in digits/s."""
    report = _run_json("bench.model_only", files)
    return {"files": report["digits"], "seconds": report["seconds"], "files_per_second": report["digits_per_second"]}


def measure_model_work(files: list[Path]) -> dict:
    """A single file's reading in one pool process, split into model calls and the rest (``bench.model_work``)."""
    return _run_json("bench.model_work", files)


def _run_json(module: str, files: list[Path]) -> dict:
    """What ``python -m module FILE...`` prints, as JSON."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", module, *map(str, files)]
    return json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)


def machine() -> dict:
    """What the figures depend on. ``vector`` is the widest vector instructions the CPU has, on which
    TensorFlow's convolutions depend most: machines of one kind ran the model alone four times faster
    or slower (docs/speed.md)."""
    import importlib.metadata as metadata

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               platform.processor())  # fmt: skip
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "vector": next((name for name in ("avx512f", "avx2", "avx") if name in flags), "none"),
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "tensorflow": metadata.version("tensorflow"),
        "celery": metadata.version("celery"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=1000, help="single-digit scans for throughput")
    parser.add_argument("--cheques", type=int, default=200, help="cheque scans for throughput")
    parser.add_argument("--workers", type=int, default=2, help="pool processes of `digits up`")
    parser.add_argument("--rounds", type=int, default=3, help="turns of service and in-process; the median is kept")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    settings = get_settings()

    inputs = Path(tempfile.mkdtemp(prefix="digits-bench-inputs-"))
    truth = write_inputs(inputs, args.singles, args.cheques)
    names = sorted(truth["singles"])
    files = {
        "singles": [inputs / "singles" / n for n in names[1 + LATENCY_DROPS :][: args.singles]],
        "cheques": sorted((inputs / "cheques").iterdir()),
    }
    service = Service(args.workers)
    rounds: dict[str, list[dict]] = {kind: [] for kind in files}
    try:
        started = start_service(service, inputs, names)
        # Service and in-process take turns on the same files, round after round, so that
        # a busy spell of the machine falls on both; the idle service costs no CPU meanwhile.
        for number in range(args.rounds):
            for kind, layout in (("singles", None), ("cheques", "cheque")):
                served = measure_service(service, files[kind], layout or "", f"r{number}-", truth[kind])
                timed, rows = measure_in_process(files[kind], layout, settings.batch_size)
                in_process = timed | {"right": _right(_as_read(rows), truth[kind])}
                alone = {"model_only": measure_model_only(files[kind])} if kind == "singles" else {}
                rounds[kind].append({"service": served, "in_process": in_process} | alone)
        memory = service.memory_mb()
    finally:
        service.stop()
    work = measure_model_work(files["singles"])

    latencies = sorted(started["latency_seconds"])
    report = {
        "machine": machine(),
        "settings": {
            "workers": args.workers,
            "batch_size": settings.batch_size,
            "batch_wait": settings.batch_wait,
            "model": settings.model,
            "string_model": settings.string_model,
            "rounds": args.rounds,
        },
        "files_per_second": {
            "singles": _median_round(rounds["singles"], "model_only"),
            "cheques": _median_round(rounds["cheques"], "in_process"),
        },
        "service_vs_model_only_each_round": [_ratio(r, "model_only") for r in rounds["singles"]],
        "service_vs_in_process_each_round": {
            kind: [_ratio(r, "in_process") for r in runs] for kind, runs in rounds.items()
        },
        "latency_seconds": {
            "p50": round(float(np.percentile(latencies, 50)), 3),
            "p95": round(float(np.percentile(latencies, 95)), 3),
            "each": started["latency_seconds"],
        },
        "cold_start_seconds": started["cold_start_seconds"],
        "memory_mb": memory,
        "reading_one_file_ms": work,
    }
    rate = {kind: {way: r["files_per_second"] for way, r in ways.items()}
            for kind, ways in report["files_per_second"].items()}  # fmt: skip
    report["measured"] = {
        "service_vs_model_only": rate["singles"]["service"] / rate["singles"]["model_only"],  # the median round
        "service_vs_in_process": min(statistics.median(r) for r in report["service_vs_in_process_each_round"].values()),
        "latency_p50_seconds": report["latency_seconds"]["p50"],
        "latency_p95_seconds": report["latency_seconds"]["p95"],
        "cold_start_seconds": report["cold_start_seconds"],
    }
    report["targets"] = TARGETS
    report["met"] = {
        name: (value >= TARGETS[name]) if name.startswith("service") else (value <= TARGETS[name])
        for name, value in report["measured"].items()
    }
    args.out.mkdir(parents=True, exist_ok=True)
    before = _previous(args.out / "bench.json")
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(report, before)
    chart(report, args.out / "bench.png")
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")


def _previous(path: Path) -> dict | None:
    """The report this run replaces, if there is one: its figures are printed beside the new ones."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def print_table(report: dict, before: dict | None = None) -> None:
    """The report as two tables: throughput by way of reading, then each target against what was measured;
    a file's reading beside the figure of the report ``before``, if any (on its machine, which may differ)."""
    from rich.console import Console
    from rich.table import Table

    speed = Table(title="Throughput (files/s, warm; the model alone: digits/s)")
    for column in ("scans", "way", "files", "seconds", "files/s", "right"):
        speed.add_column(column, justify="left" if column in ("scans", "way") else "right")
    for kind, ways in report["files_per_second"].items():
        for way, result in ways.items():
            right = f"{result['right']:.2%}" if "right" in result else ""  # the model alone reads no files
            speed.add_row(kind, WAY_LABELS[way].replace("\n", " "), str(result["files"]), f"{result['seconds']:.2f}",
                          f"{result['files_per_second']:.1f}", right)  # fmt: skip
    targets = Table(title="Targets")
    for column in ("measure", "target", "measured", "met"):
        targets.add_column(column)
    for name, value in report["measured"].items():
        bound = "≥" if name.startswith("service") else "≤"
        targets.add_row(
            name, f"{bound} {report['targets'][name]:g}", f"{value:.3f}", "yes" if report["met"][name] else "NO"
        )
    console = Console()
    console.print(speed, targets)
    cheques = report["files_per_second"]["cheques"]
    console.print(f"cheques: the service at {_ratio(cheques, 'in_process'):g} of in-process")
    work, workers = report["reading_one_file_ms"], report["settings"]["workers"]
    ceiling = workers * 1000 / work["ms"]
    alone = report["files_per_second"]["singles"]["model_only"]["files_per_second"]
    console.print(
        f"a single digit's reading in one pool process: {work['ms']:.2f} ms (classifier {work['classifier_ms']:.2f}, "
        f"string models {work['string_models_ms']:.2f}, the rest {work['rest_ms']:.2f}); {workers} such processes "
        f"and nothing else would read {ceiling:.0f} files/s, {ceiling / alone:.2f} of the model alone"
    )
    if before and before.get("reading_one_file_ms"):
        was, machine_then = before["reading_one_file_ms"], before.get("machine", {})
        same = machine_then.get("cpu") == report["machine"]["cpu"]
        console.print(
            f"before ({before['settings']['model']} + {before['settings']['string_model']}): {was['ms']:.2f} ms "
            f"(classifier {was['classifier_ms']:.2f}, string models {was['string_models_ms']:.2f}, the rest "
            f"{was['rest_ms']:.2f}), now {work['ms'] / was['ms']:.2f} times that"
            + ("" if same else f"; measured on another CPU ({machine_then.get('cpu', 'unknown')}): compare with care")
        )
    console.print("memory (MB): " + ", ".join(f"{role} {mb:.0f}" for role, mb in report["memory_mb"].items()))


def chart(report: dict, path: Path) -> None:
    """Throughput bars by way of reading, and latency and cold start against their targets, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    labels, values, colours = [], [], []
    for kind, ways in report["files_per_second"].items():
        for way, result in ways.items():
            labels.append(f"{kind}\n{WAY_LABELS[way]}")
            values.append(result["files_per_second"])
            colours.append("#999999" if way == "model_only" else "#4477aa")
    bars = left.bar(labels, values, color=colours)
    alone = report["files_per_second"]["singles"]["model_only"]["files_per_second"]
    target = report["targets"]["service_vs_model_only"] * alone
    left.axhline(target, color="#cc3311", linestyle="--", linewidth=1, label="target for the service (single digits)")
    left.legend(loc="upper right", fontsize=8)
    left.tick_params(axis="x", labelsize=8)
    left.bar_label(bars, fmt="%.0f")
    left.set_ylabel("files per second")
    left.set_title("Throughput, warm, on the same files")
    seconds = report["latency_seconds"]
    names = ["latency p50", "latency p95", "cold start"]
    measured = [seconds["p50"], seconds["p95"], report["cold_start_seconds"]]
    target = [report["targets"][key] for key in ("latency_p50_seconds", "latency_p95_seconds", "cold_start_seconds")]
    right.bar(names, measured, color="#4477aa", label="measured")
    right.scatter(names, target, marker="_", s=900, color="#cc3311", label="target (at most)", zorder=3)
    right.set_yscale("log")
    right.set_ylabel("seconds")
    right.set_title("Latency and cold start")
    right.legend(loc="upper left")
    info = report["machine"]
    figure.suptitle(
        f"digits bench: {info['cores']} cores, {info['cpu']} ({info.get('vector', '?')}), "
        f"{report['settings']['workers']} workers"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
