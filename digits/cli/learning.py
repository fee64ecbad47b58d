"""The commands that close the loop: ``digits corrections``, fine-tuning on them, and ``digits models promote``.

``digits corrections`` never imports TensorFlow; fine-tuning and the promotion
gate do, inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from digits.cli.options import data_option, redis_client, saved, use_settings
from digits.settings import PROMISED_ERROR


@click.command()
@click.option("--snapshot", "write", is_flag=True, help="Write them as a dataset snapshot that training names.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Snapshot folder [results/corrections/<hash>]."
)
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), help="Results folder [DIGITS_RESULTS].")
def corrections(write: bool, out: Path | None, results: Path | None) -> None:
    """The reviewed fields collected so far, by kind and source; --snapshot writes them for training.

    Every field a person confirmed or corrected is an example: its crop and the
    digits the person read. Files are split by their hash: a fifth of them are
    held out to measure the models, never learnt from.
    """
    use_settings(results=results)
    from rich.console import Console
    from rich.table import Table

    from digits import corrections as loop
    from digits.settings import get_settings

    settings = get_settings()
    entries, left_out = loop.gather(settings.results, settings.layouts)
    examples = [example for _, example in entries]
    if write:
        snapshot = loop.write_snapshot(settings.results, entries, out)
    counts = loop.summary(examples)
    table = Table(title=f"reviewed fields in {settings.results}")
    for column in ("kind", "source", loop.TRAIN, loop.HELD_OUT, "corrected"):
        table.add_column(column, justify="left" if column in ("kind", "source") else "right")
    for kind, source in sorted({(k, s) for k, s, _ in counts}):
        corrected = sum(e.verdict == "corrected" for e in examples if (e.kind, e.source) == (kind, source))
        table.add_row(kind, source, str(counts[kind, source, loop.TRAIN]), str(counts[kind, source, loop.HELD_OUT]),
                      str(corrected))  # fmt: skip
    Console().print(table)
    if left_out:
        click.echo("left out: " + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())))
    if write:
        click.echo(f"snapshot {snapshot.hash[:12]} in {snapshot.folder}: {len(examples)} examples, "
                   f"manifest hash {snapshot.hash}")  # fmt: skip
        click.echo(f"fine-tune on it: digits train --corrections {snapshot.hash[:12]}")
    elif not examples:
        click.echo("no reviewed fields yet: people key them in the review station (digits review)")


def fine_tune_on(name: str, data_dir: Path, store: Path, epochs: int | None) -> None:
    """``digits train --corrections NAME``: fine-tune the models workers read with, and say how to promote them."""
    from redis.exceptions import RedisError

    from digits.corrections import latest_snapshot, load_snapshot
    from digits.rollout import Choice, active
    from digits.settings import get_settings
    from digits.store import ModelNotFound
    from digits.training.finetune import FINE_TUNE_EPOCHS, fine_tune

    settings = get_settings()
    if not (data_dir / "mnist.npz").exists():
        raise click.ClickException(f"fine-tuning mixes in the usual training data, and {data_dir}/mnist.npz is "
                                   "missing; pass --data or set DIGITS_DATA")  # fmt: skip
    try:
        snapshot = latest_snapshot(settings.results) if name == "latest" else load_snapshot(name, settings.results)
    except LookupError as problem:
        raise click.ClickException(str(problem)) from None
    if snapshot is None:
        raise click.ClickException("no corrections snapshot yet: write one with `digits corrections --snapshot`")
    try:
        current = active(redis_client(), settings)
    except RedisError:
        current = Choice(settings.model, settings.string_model)
        click.echo("Redis does not answer: fine-tuning the models the settings name", err=True)
    click.echo(f"fine-tuning {current.model} + {current.string_model or 'no string model'} "
               f"on snapshot {snapshot.hash[:12]} ({len(snapshot.examples)} examples)")  # fmt: skip
    try:
        tuned = fine_tune(snapshot, data_dir, store, current.model, current.string_model, epochs or FINE_TUNE_EPOCHS,
                          say=click.echo)  # fmt: skip
    except ModelNotFound as missing:
        raise click.ClickException(str(missing)) from None
    made = tuned.classifiers + tuned.string_models
    if not made:
        raise click.ClickException("nothing to fine-tune: too few corrections of any kind (see `digits corrections`)")
    for ref in made:
        click.echo(saved(ref))
    click.echo(f"compare and roll out: digits models promote {tuned.candidate(current.model, current.string_model)}")


@click.command("promote")
@click.argument("candidate")
@data_option
@click.option("--corrections", "snapshot_name", help="Snapshot whose held-out side is read [the one the candidate "
              "learnt from, else the latest].")  # fmt: skip
@click.option("--limit", type=int, help="Read at most this many files of each held-out set (a quicker, noisier gate).")
@click.option("--target-error", type=float, default=PROMISED_ERROR, show_default=True,
              help="Error rate among ok rows the read rate is measured at.")  # fmt: skip
@click.option("--force", is_flag=True, help="Roll it out even if the gate refuses (recorded with the roll-out).")
def promote(
    candidate: str, data_dir: Path, snapshot_name: str | None, limit: int | None, target_error: float, force: bool
) -> None:
    """Compare CANDIDATE with the models workers read with, on the same held-out files; roll it out if it reads more.

    CANDIDATE names digit models, string models or both, as DIGITS_MODEL does
    (name@version, comma-separated); each goes in the place of its kind. Both
    read the held-out corrections and the held-out sets of `digits evaluate`.
    The candidate is rolled out only when it is no worse on any set, beyond
    noise, and reads more of the held-out corrections; otherwise the command
    exits with status 1 and says which set got worse.
    """
    from rich.console import Console

    from digits.celery_app import app
    from digits.corrections import latest_snapshot, load_snapshot
    from digits.recognition.model import get_models
    from digits.rollout import Choice, active, roll_out
    from digits.settings import get_settings
    from digits.store import ModelNotFound, resolve_members
    from digits.training.evaluate import load_samples
    from digits.training.promotion import CORRECTIONS_SET, compare, correction_samples, verdict

    settings = get_settings()
    redis = redis_client()
    current = active(redis, settings)
    try:
        refs = resolve_members(candidate, settings.model_store)
    except ModelNotFound as missing:
        raise click.ClickException(str(missing)) from None
    lines = [ref for ref in refs if ref.metadata().get("architecture") == "crnn"]
    digits = [ref for ref in refs if ref not in lines]
    proposed = Choice(
        ",".join(ref.label for ref in digits) or current.model,
        ",".join(ref.label for ref in lines) or current.string_model,
    )
    if (proposed.model, proposed.string_model) == (current.model, current.string_model):
        raise click.ClickException(f"{candidate} is what workers read with already")
    wanted = snapshot_name or next(
        (r.metadata()["corrections"][:12] for r in refs if r.metadata().get("corrections")), None
    )
    try:
        snapshot = load_snapshot(wanted, settings.results) if wanted else latest_snapshot(settings.results)
    except LookupError as problem:
        raise click.ClickException(str(problem)) from None
    sets = {CORRECTIONS_SET: correction_samples(snapshot)} if snapshot else {}
    sets |= load_samples(data_dir, limit) if data_dir.exists() else {}

    def models_of(choice: Choice):
        return get_models(settings.model_copy(update={"model": choice.model, "string_model": choice.string_model}))

    now, then = f"{current.model} + {current.string_model}", f"{proposed.model} + {proposed.string_model}"
    click.echo(f"now: {now}\ncandidate: {then}\nreading {sum(map(len, sets.values()))} held-out files with each")
    comparisons = compare(models_of(current), models_of(proposed), sets, settings.review_threshold, target_error)
    Console().print(_side_by_side(comparisons, target_error))
    refused = verdict(comparisons)
    for reason in refused:
        click.echo(f"refused: {reason}", err=True)
    if refused and not force:
        click.echo(f"not rolled out: workers keep reading with {now}", err=True)
        raise SystemExit(1)
    note = "promoted with --force over the gate's refusal" if refused else "promoted: the gate passed"
    workers = roll_out(redis, app, Choice(proposed.model, proposed.string_model, note=note))
    click.echo(
        f"{note}; rolled out {then} to {', '.join(workers) or 'no worker running (they use it when they start)'}"
    )


def _side_by_side(comparisons: list, target: float):
    """The gate's table: accuracy and read rate of the models in use and of the candidate, set by set."""
    from rich.table import Table

    table = Table(title=f"read rate: share ok at the lowest threshold with errors among ok <= {target:.2%}")
    table.add_column("set", no_wrap=True)
    for column in ("files", "accuracy now", "candidate", "read rate now", "candidate"):
        table.add_column(column, justify="right")
    for c in comparisons:
        table.add_row(c.source, str(c.files), f"{c.current.accuracy:.2%}", f"{c.candidate.accuracy:.2%}",
                      f"{c.read_rate(c.current):.2%}", f"{c.read_rate(c.candidate):.2%}")  # fmt: skip
    return table
