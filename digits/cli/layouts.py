"""``digits layouts``: the layouts the service reads forms with, and a check of one on a sample.

Neither command imports TensorFlow: ``check`` has the workers read the sample
(``digits.read_sample``), as the station's layout designer does.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def layouts() -> None:
    """The layouts in the layouts folder [DIGITS_LAYOUTS]; draw new ones in the review station's Layouts page."""


@layouts.command("list")
def layouts_list() -> None:
    """Each layout: its name, fields, reference image and kept versions; one that cannot be read says why."""
    from digits.layouts import LayoutError, layout_names, load_layout, versions
    from digits.settings import get_settings

    folder = get_settings().layouts
    names = layout_names(folder)
    if not names:
        click.echo(f"no layouts in {folder}", err=True)
    for name in names:
        try:
            layout = load_layout(name, folder)
        except LayoutError as problem:
            click.echo(f"{name}\tcannot be read: {problem}")
            continue
        kept = versions(name, folder)
        reference = f"reference {layout.reference.name}" if layout.reference else "no reference"
        earlier = f"{len(kept)} earlier version(s)" if kept else "no earlier versions"
        fields = ", ".join(field.name for field in layout.fields)
        click.echo(f"{name}\t{fields}\t{reference}\t{earlier}\t{layout.description}")


@layouts.command("check")
@click.argument("name")
@click.argument("sample", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for a worker to read it.")
def layouts_check(name: str, sample: Path, timeout: float) -> None:
    """Read the first page of SAMPLE with the layout NAME, through the workers; print each field as read.

    Nothing is written: no CSV row, no review item. Exits 1 when the layout or
    the sample cannot be read, or no worker answers.
    """
    from rich.console import Console
    from rich.table import Table

    from digits.celery_app import NoWorker, app, read_sample
    from digits.contracts import SampleTask
    from digits.layouts import LayoutError, load_layout
    from digits.settings import get_settings

    try:
        load_layout(name, get_settings().layouts)
    except LayoutError as problem:
        raise click.ClickException(str(problem)) from None
    task = SampleTask.carrying(sample.read_bytes(), source=sample.name, layout=name)
    try:
        result = read_sample(app, task, timeout)
    except (NoWorker, RuntimeError) as problem:
        raise click.ClickException(str(problem)) from None
    if result.error:
        raise click.ClickException(result.error)
    table = Table("field", "digits", "confidence", "status", "why", title=f"{sample.name} read with {name}")
    for row in result.rows:
        table.add_row(row.field, row.digits, row.confidence, row.status, row.error)
    Console().print(table)
