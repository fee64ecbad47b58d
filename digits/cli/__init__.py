"""The ``digits`` command line.

Light commands (``submit``, ``status``, ``ingest``) never import TensorFlow;
heavy modules are imported inside the commands that need them. Options that
mirror a setting are written to the ``DIGITS_*`` environment before anything
reads the settings, so child processes inherit them too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from digits.cli.layouts import layouts
from digits.cli.learning import corrections, fine_tune_on, promote
from digits.cli.options import DATA_ENV, DEFAULT_DATA, configure_logging, data_option, redis_client, saved, use_settings
from digits.cli.reviewing import export, review, users
from digits.settings import PROMISED_ERROR


class _Commands(click.Group):
    """The command group: settings that make no sense, or Redis away, end a command with a message, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from pydantic import ValidationError
        from redis.exceptions import ConnectionError as RedisAway

        try:
            return super().invoke(ctx)
        except ValidationError as problem:
            messages = [error["msg"].removeprefix("Value error, ") for error in problem.errors()]
            raise click.ClickException("; ".join(messages)) from None
        except RedisAway as problem:
            from digits.settings import get_settings

            raise click.ClickException(
                f"Redis does not answer at {get_settings().redis_url} ({problem}): start the service "
                "(make up, or digits up), or point DIGITS_REDIS_URL at its Redis"
            ) from None


PAGE_WORKER_NICENESS = 10
"""How much lower a page worker's CPU priority is than a file worker's (``nice``)."""


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Recognise handwritten digits on scanned cheques and forms, in batches."""


@main.command()
@click.option("--inbox", type=click.Path(path_type=Path), help="Folder to watch [DIGITS_INBOX, ./inbox].")
@click.option("--results", type=click.Path(path_type=Path), help="Folder for CSVs [DIGITS_RESULTS, ./results].")
@click.option(
    "--workers", default=os.cpu_count() or 1, show_default="one per core",
    help="Worker pool processes (each holds the models, about 0.9 GB).",
)  # fmt: skip
@click.option(
    "--page-workers", default=1, show_default=True, type=click.IntRange(min=1),
    help="Pool processes that read the pages of long documents (more than DIGITS_SPLIT_ABOVE_PAGES pages).",
)  # fmt: skip
@click.option("--redis-url", help="Redis URL [DIGITS_REDIS_URL]; started privately if local and down.")
@click.option("-v", "--verbose", is_flag=True, help="Show everything: the worker's banner and logs, TensorFlow's own.")
def up(
    inbox: Path | None, results: Path | None, workers: int, page_workers: int, redis_url: str | None, verbose: bool
) -> None:
    """Run everything in the foreground: Redis if needed, the workers, the ingester and the review station.

    Where no Redis answers at a local DIGITS_REDIS_URL, a private one is started
    with its data in ./.digits/redis: redis-server if it is on PATH, else the
    Valkey server that comes with the Python dependencies. Ctrl-C stops
    everything in order; queued files wait on Redis for the next start.
    """
    use_settings(inbox=inbox, results=results, redis_url=redis_url)
    configure_logging(verbose)
    from digits.cli.redis_server import RedisUnavailable
    from digits.cli.up import run_up
    from digits.settings import get_settings

    try:
        sys.exit(run_up(get_settings(), workers, verbose, page_workers))
    except RedisUnavailable as problem:
        raise click.ClickException(str(problem)) from None


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--concurrency", default=os.cpu_count() or 1, show_default="one per core",
    help="Pool processes (each holds the models, about 0.9 GB).",
)  # fmt: skip
@click.option("--results", type=click.Path(path_type=Path), help="Folder for CSVs [DIGITS_RESULTS].")
@click.option("--pages", is_flag=True, help="Read the pages of long documents (queue digits.pages) instead of files.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No start-up banner.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    concurrency: int, results: Path | None, pages: bool, loglevel: str, quiet: bool, celery_args: tuple[str, ...]
) -> None:
    """Run a Celery worker that recognises files, or with --pages the pages of long documents.

    Every deployment needs both kinds. A page worker takes one page per pool
    process at a time (prefetch 1), so that pages wait on Redis, behind nothing,
    rather than in a worker; and it runs at a lower CPU priority, so that on a
    machine it shares with a file worker, a long document never slows the files.
    Extra arguments go to Celery.
    """
    use_settings(results=results, worker_processes=concurrency, worker_pages=1 if pages else None)
    if pages:
        os.nice(PAGE_WORKER_NICENESS)  # its pool processes inherit it
    from digits.celery_app import PAGES_QUEUE, QUEUE, app

    queue = ["--queues", PAGES_QUEUE, "--prefetch-multiplier", "1"] if pages else ["--queues", QUEUE]
    app.worker_main(
        [*(["--quiet"] if quiet else []), "worker", *queue, "--concurrency", str(concurrency),
         "--loglevel", loglevel, "--hostname", "digits-pages@%h" if pages else "digits@%h", *celery_args]
    )  # fmt: skip


@main.command()
@click.option("--inbox", type=click.Path(path_type=Path), help="Folder to watch [DIGITS_INBOX].")
@click.option("--results", type=click.Path(path_type=Path), help="Folder for CSVs [DIGITS_RESULTS].")
@click.option("-v", "--verbose", is_flag=True)
def ingest(inbox: Path | None, results: Path | None, verbose: bool) -> None:
    """Watch the inbox and queue each new scan (workers may run elsewhere)."""
    use_settings(inbox=inbox, results=results)
    configure_logging(verbose)
    import signal
    import threading

    from digits.celery_app import app
    from digits.settings import get_settings
    from ingest.watcher import Ingester

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    Ingester(get_settings(), app).run(stopping)


SUBMIT_FAILED_FILES = 3
"""Exit status of ``digits submit --wait`` when some files could not be read."""

SUBMIT_TIMED_OUT = 4
"""Exit status of ``digits submit --wait --timeout`` when time ran out."""

FAILED_FILES_SHOWN = 10
"""Failed files ``digits submit --wait`` names with their reasons (the CSV has them all)."""


@main.command(
    epilog=f"""\b
Exit status:
  0  queued; with --wait, every file was read (rows may still say review)
  1  nothing was queued: a file too large, an unknown layout, Redis unreachable
  2  wrong usage
  {SUBMIT_FAILED_FILES}  with --wait, some files could not be read (their error rows say why)
  {SUBMIT_TIMED_OUT}  with --wait --timeout, time ran out (the job goes on)"""
)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", "wait_", is_flag=True, help="Wait for the results, with a progress bar.")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds.")
@click.option("--layout", help="Layout whose fields are read, one row each (default: each page is one field).")
@click.option("--annotate", is_flag=True, help="A review picture for every row, not only for rows to review.")
def submit(files: tuple[Path, ...], wait_: bool, timeout: float | None, layout: str | None, annotate: bool) -> None:
    """Queue files as one job and print the CSV its rows go to."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    from digits.capacity import RedisFull
    from digits.contracts import ERROR
    from digits.settings import get_settings, redacted
    from ingest.client import JobTimeout
    from ingest.client import submit as submit_job

    try:
        job = submit_job(files, layout=layout, annotate=annotate)
    except (ValueError, RedisFull) as problem:  # a layout that does not exist, a file over the size limit
        raise click.ClickException(str(problem)) from None
    except (RedisError, OperationalError) as problem:
        url = redacted(get_settings().redis_url)
        raise click.ClickException(
            f"cannot reach Redis at {url} ({problem}); start the service (`digits up`) or set DIGITS_REDIS_URL"
        ) from None
    click.echo(f"job {job.id}: {len(files)} file(s) queued", err=True)
    if not wait_:
        click.echo(job.csv_path)
        return
    from rich.progress import Progress

    with Progress(transient=False, console=_stderr_console()) as progress:
        bar = progress.add_task("recognising", total=len(files))
        try:
            job.wait(timeout, progress=lambda s: progress.update(bar, completed=s.done + s.failed))
        except JobTimeout as problem:
            click.echo(f"{problem}; run `digits status` to see the queue", err=True)
            click.echo(job.csv_path)
            sys.exit(SUBMIT_TIMED_OUT)
    status = job.status()
    click.echo(f"{status.done} done, {status.failed} failed", err=True)
    for row in [row for row in job.rows() if row["status"] == ERROR][:FAILED_FILES_SHOWN]:
        click.echo(f"  {row['error']}", err=True)
    click.echo(job.csv_path)
    if status.failed:
        sys.exit(SUBMIT_FAILED_FILES)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", help="Model name, name@version or .keras path [DIGITS_MODEL].")
@click.option("--layout", help="Layout whose fields are read, one row each (default: each page is one field).")
@click.option(
    "--pictures",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to put review pictures in (annotations/ below it); none without it.",
)
@click.option("--annotate", is_flag=True, help="With --pictures: a picture for every row, not only for rows to review.")
@click.option(
    "--max-pages", type=click.IntRange(min=1),
    help="Documents with more pages get one error row [DIGITS_MAX_PAGES, 300].",
)  # fmt: skip
def recognize(
    files: tuple[Path, ...],
    model: str | None,
    layout: str | None,
    pictures: Path | None,
    annotate: bool,
    max_pages: int | None,
) -> None:
    """Recognise files in this process (no Redis) and write CSV rows to stdout.

    Long documents are read a batch of pages at a time, so memory does not grow with their length.
    """
    use_settings(model=model, max_pages=max_pages)
    import uuid

    from digits.layouts import LayoutError, load_layout
    from digits.results import encode_rows
    from digits.settings import get_settings

    settings = get_settings()
    try:
        chosen = load_layout(layout, settings.layouts) if layout else None
    except LayoutError as problem:
        raise click.ClickException(str(problem)) from None
    from digits.recognition.annotate import Pictures
    from digits.recognition.model import get_models
    from digits.recognition.pipeline import recognize_files

    models = get_models(settings)
    drawn = Pictures(pictures, every_row=annotate) if pictures else None
    job_id = str(uuid.uuid4())
    out = sys.stdout.buffer
    out.write(encode_rows([], header=True))
    # Files are read a batch at a time, as a worker reads them: one model call per batch.
    for start in range(0, len(files), settings.batch_size):
        batch = [(path.read_bytes(), path.as_posix()) for path in files[start : start + settings.batch_size]]
        read = recognize_files(batch, job_id, models, settings.review_threshold, chosen, drawn, settings.max_pages)
        for rows in read:
            out.write(encode_rows(rows, header=False))
        out.flush()


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default=Path("samples"))
def samples(out: Path) -> None:
    """Write sample scans of the shipped layouts (PNG/TIFF and PDF) and their truth.csv into OUT."""
    from digits.samples import write_samples
    from digits.settings import get_settings

    for path in write_samples(out, get_settings().layouts):
        click.echo(path)
    click.echo(f"try: digits recognize --layout cheque {out}/cheque.png", err=True)


@main.command()
@click.option("--watch", is_flag=True, help="Keep the figures on screen, refreshed, until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes with --watch.")
def status(watch: bool, interval: float) -> None:
    """Queue depth, workers alive, throughput, files in the inbox and in processing, jobs pending."""
    from digits.cli.status import collect_status

    if not watch:
        for name, value in collect_status().items():
            click.echo(f"{name:>20}: {value}")
        return
    import time

    from rich.live import Live
    from rich.table import Table

    def table() -> Table:
        shown = Table(title=f"digits status (every {interval:g} s; Ctrl-C to stop)", show_header=False)
        for name, value in collect_status().items():
            shown.add_row(name, str(value))
        return shown

    with Live(table(), auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(table(), refresh=True)
        except KeyboardInterrupt:
            pass


@main.group()
def models() -> None:
    """The models in the store, and which of them the running workers read with."""


@models.command("list")
def models_list() -> None:
    """Every model in the store, its held-out accuracy, and the models workers read with now."""
    from digits.rollout import active
    from digits.settings import get_settings
    from digits.store import list_models

    settings = get_settings()
    for ref in list_models(settings.model_store):
        meta = ref.metadata()
        accuracy = ", ".join(f"{source} {value:.2%}" for source, value in meta.get("held_out_accuracy", {}).items())
        click.echo(f"{ref.label:<22} {meta.get('architecture', '?'):<9} {accuracy}")
    choice = active(redis_client(), settings)
    click.echo(f"workers read with: {choice.model} (digits), {choice.string_model or 'none'} (lines)"
               + (f", rolled out {choice.since}" if choice.since else ", as the settings say")
               + (f"; {choice.note}" if choice.note else ""))  # fmt: skip


@models.command("rollout")
@click.option("--model", "model_spec", help="Digit models, as DIGITS_MODEL (name@version, comma-separated).")
@click.option("--string-model", "string_spec", help="String models, as DIGITS_STRING_MODEL ('' for none).")
def models_rollout(model_spec: str | None, string_spec: str | None) -> None:
    """Make running workers read with other models: each pool process finishes its batch, then loads them."""
    from digits.celery_app import app
    from digits.rollout import Choice, active, roll_out
    from digits.settings import get_settings
    from digits.store import ModelNotFound, resolve_members

    settings = get_settings()
    redis = redis_client()
    current = active(redis, settings)
    choice = Choice(model_spec or current.model, current.string_model if string_spec is None else string_spec)
    try:
        for spec in (choice.model, choice.string_model):
            if spec:
                resolve_members(spec, settings.model_store)
    except ModelNotFound as missing:
        raise click.ClickException(str(missing)) from None
    workers = roll_out(redis, app, choice)
    answered = ", ".join(workers) or "none running (they will use it when they start)"
    click.echo(f"rolled out {choice.model} + {choice.string_model or 'no string model'} to {answered}")


@models.command("rollback")
def models_rollback() -> None:
    """Go back to the models the workers read with before the last roll-out."""
    from digits.celery_app import app
    from digits.rollout import roll_back
    from digits.settings import get_settings

    settings = get_settings()
    try:
        choice, workers = roll_back(redis_client(), app, settings)
    except LookupError as nothing:
        raise click.ClickException(str(nothing)) from None
    answered = ", ".join(workers) or "none running"
    click.echo(f"rolled back to {choice.model} + {choice.string_model or 'no string model'} on {answered}")


@main.command()
@click.option(
    "--arch",
    type=click.Choice(["cnn", "seed-mlp", "crnn", "choice"]),
    default="cnn",
    show_default=True,
    help="cnn (digits), seed-mlp (the tutorial's baseline), crnn (whole lines; needs ORAND data), or choice "
    "(calibrate, for the models in use, which reading stands where cutting and the string models disagree).",
)
@data_option
@click.option(
    "--epochs", type=int, help="Passes over the data [cnn 12, seed-mlp 3, crnn 12; --from 3 (crnn 8), fine-tuning 3]."
)
@click.option("--name", help="Model name (default digits-cnn, or digits-<arch>).")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), help="Model store [DIGITS_MODEL_STORE].")
@click.option("--limit", type=int, help="Train on this many digits only (for a quick try).")
@click.option("--seed", type=int, help="Seed of the weights and the data order (to train members of an ensemble).")
@click.option(
    "--corrections", "snapshot", is_flag=False, flag_value="latest",
    help="Fine-tune the models workers read with on a corrections snapshot (its hash's start or folder; "
    "alone, the latest) instead of training from scratch; --arch is then not used.",
)  # fmt: skip
@click.option(
    "--from", "start", metavar="MODEL",
    help="Go on training this model (name@version: a digit classifier, or a string model with --arch crnn) with "
    "today's recipe, from its own weights at a lower rate, instead of from fresh weights; the new version is of "
    "its name. A string model learns only the register rows this model reads as labelled.",
)  # fmt: skip
def train(
    arch: str,
    data_dir: Path,
    epochs: int | None,
    name: str | None,
    store: Path | None,
    limit: int | None,
    seed: int | None,
    snapshot: str | None,
    start: str | None,
) -> None:
    """Train a model and save it as the next version in the model store."""
    from digits.settings import get_settings
    from digits.store import ModelNotFound, resolve
    from digits.training.classifier import CONTINUE_EPOCHS
    from digits.training.classifier import train as run_training
    from digits.training.data import ORAND_DIR
    from digits.training.strings import CONTINUE_EPOCHS as LINE_CONTINUE_EPOCHS
    from digits.training.strings import STRING_EPOCHS, train_strings

    store = store or get_settings().model_store
    if start and arch == "choice":
        raise click.UsageError("--from goes on from a trained model, not --arch choice")
    if snapshot:
        fine_tune_on(snapshot, data_dir, store, epochs)
        return
    if arch == "choice":
        from digits.recognition.model import get_models
        from digits.training.choice import calibrate

        calibrate(data_dir, store, get_models(get_settings()), say=click.echo)
        click.echo(f"saved the reading choice to {store}/reading-choice.json")
        return
    extra = {"seed": seed} if seed is not None else {}
    if start:
        try:
            extra |= {"start": resolve(start, store)}
        except ModelNotFound as missing:
            raise click.ClickException(str(missing)) from None
    if arch == "crnn":
        if not (data_dir / ORAND_DIR / "labels.json").exists():
            raise click.ClickException(f"the string model needs {data_dir / ORAND_DIR}; pass --data")
        epochs = epochs or (LINE_CONTINUE_EPOCHS if start else STRING_EPOCHS)
        ref = train_strings(data_dir, store, epochs, name=name or "digits-crnn", **extra)
        click.echo(saved(ref))
        return
    if not (data_dir / "mnist.npz").exists():
        click.echo(f"{data_dir}/mnist.npz not found: downloading MNIST through keras", err=True)
        data_dir = None
    if start:
        epochs = epochs or CONTINUE_EPOCHS
    ref = run_training(arch, data_dir, store, epochs, name=name, limit=limit, **extra)
    click.echo(saved(ref))


@main.command()
@click.option("--model", help="Model name, name@version or .keras path [DIGITS_MODEL].")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    envvar=DATA_ENV,
    default=DEFAULT_DATA,
    show_default=True,
    help="Folder with the data sets whose held-out parts are read [DIGITS_DATA].",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("evaluation"), show_default=True)
@click.option("--limit", type=int, help="Read at most this many files per source.")
@click.option("--target-error", type=float, default=PROMISED_ERROR, show_default=True,
              help="Error rate among ok rows the operating curve finds a threshold for.")  # fmt: skip
def evaluate(model: str | None, data_dir: Path, out: Path, limit: int | None, target_error: float) -> None:
    """Per-source accuracy through the real pipeline, and the operating curve; confusion matrix and mistakes in --out.

    The operating curve is the read rate (share of rows ok) against the error
    among ok rows as the review threshold varies; for each source it names the
    lowest threshold that keeps that error at most --target-error. The review
    station's blind audit, where Redis answers, is the production point.
    """
    use_settings(model=model)
    from rich.console import Console
    from rich.table import Table

    from digits.recognition.model import get_models
    from digits.settings import get_settings
    from digits.training.evaluate import evaluate as run_evaluation
    from digits.training.evaluate import load_samples

    settings = get_settings()
    models = get_models(settings)
    sets = load_samples(data_dir, limit)
    if not sets:
        raise click.ClickException(f"no data sets in {data_dir}; pass --data or set DIGITS_DATA")
    reports = run_evaluation(models, sets, out, settings.review_threshold)
    readers = " + ".join(m.label for m in (models.classifier, models.reader) if m)
    table = Table(title=f"{readers} on held-out files")
    # Source names are never cut short, even in a narrow terminal; the other headers wrap.
    table.add_column("source", no_wrap=True, min_width=max(len(r.source) for r in reports))
    for column in ("files", "accuracy", "error rate among ok", "sent to review"):
        table.add_column(column, justify="right")
    for r in reports:
        table.add_row(r.source, str(r.files), f"{r.accuracy:.2%}", f"{r.ok_error_rate:.2%}", f"{r.review_share:.1%}")
    Console().print(table)
    Console().print(_operating_curve(reports, target_error))
    audit = _production_point()
    if audit:
        click.echo(f"{audit}, at the review threshold {settings.review_threshold}")
    click.echo(f"confusion matrix, mistakes and summary.json (with each curve) in {out}/")


def _operating_curve(reports: list, target: float):
    """The point of each source's operating curve that meets ``target``: the lowest such threshold and its read rate."""
    from rich.table import Table

    table = Table(title=f"operating curve: the lowest review threshold keeping errors among ok <= {target:.2%}")
    table.add_column("source", no_wrap=True, min_width=max(len(r.source) for r in reports))
    for column in ("threshold", "read rate (ok)", "error among ok"):
        table.add_column(column, justify="right")
    for r in reports:
        met = r.curve.meeting(target)
        if met is None:
            table.add_row(r.source, "none", "0%", "")
            continue
        rate, error = r.curve.at(met[0])
        table.add_row(r.source, f"{met[0]:.4f}", f"{rate:.1%}", f"{error:.2%}")
    return table


def _production_point() -> str | None:
    """The review station's blind audit of ok rows, if Redis answers and people have checked some."""
    from redis.exceptions import RedisError

    from digits.reviews import ReviewQueue
    from digits.settings import get_settings

    settings = get_settings()
    try:
        audit = ReviewQueue(redis_client(), settings.results, settings.review_lease_seconds).stats()["audit"]
    except RedisError:
        return None
    if not audit["checked"]:
        return None
    low, high = audit["ci95"]
    return (f"production (the review station's blind audit): {audit['checked']} ok rows checked, {audit['wrong']} "
            f"wrong: {audit['error_rate']:.2%} (95% interval {low:.2%} to {high:.2%})")  # fmt: skip


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# The human half's commands live in a module of their own.
main.add_command(review)
main.add_command(users)
main.add_command(export)
main.add_command(layouts)
main.add_command(corrections)
models.add_command(promote)
