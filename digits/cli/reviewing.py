"""The commands of the human half: ``digits review`` (the station), ``digits users``, ``digits export``.

None of them imports TensorFlow: the station shows the pictures workers
saved, and the export joins the result CSVs with the reviewers' decisions.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

from digits.cli.options import configure_logging, redis_client, use_settings


@click.group(invoke_without_command=True)
@click.option("--host", help="Address to listen on [DIGITS_REVIEW_HOST, 127.0.0.1: this machine only].")
@click.option("--port", type=int, help="Port to listen on [DIGITS_REVIEW_PORT, 8765].")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), help="Results folder [DIGITS_RESULTS].")
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
@click.pass_context
def review(ctx: click.Context, host: str | None, port: int | None, results: Path | None, verbose: bool) -> None:
    """Serve the review station, where people key the rows the machine doubts.

    It needs Redis and the results folder, and never TensorFlow. It listens on
    this machine only unless --host says otherwise; to serve it to a network,
    put it behind a reverse proxy that speaks TLS, and set DIGITS_REVIEW_HTTPS=true.
    """
    use_settings(review_host=host, review_port=port, results=results)
    if ctx.invoked_subcommand is not None:
        return
    configure_logging(verbose)
    import uvicorn

    from digits.settings import get_settings
    from review.app import create_app

    settings = get_settings()
    if not settings.review_port:
        raise click.ClickException("DIGITS_REVIEW_PORT is 0: give the station a port (--port 8765)")
    # Proxy headers are the app's to believe, from DIGITS_REVIEW_TRUSTED_PROXIES only: uvicorn's own
    # default would take them from anyone on this machine.
    uvicorn.run(
        create_app(settings), host=settings.review_host, port=settings.review_port, proxy_headers=False,
        log_level="info" if verbose else "warning", access_log=verbose,
    )  # fmt: skip


@review.command("stats")
def review_stats() -> None:
    """The queue, the decisions per reviewer, and the audit's error rate among ok rows, as JSON."""
    from digits.reviews import ReviewQueue
    from digits.settings import get_settings

    settings = get_settings()
    stats = ReviewQueue(redis_client(), settings.results, settings.review_lease_seconds).stats()
    click.echo(json.dumps(stats, indent=2))


@click.group()
def users() -> None:
    """The reviewers who may log in to the station."""


@users.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.option(
    "--admin/--no-admin", default=None,
    help="May (or may no longer) draw and save layouts in the station. Unsaid: a new reviewer may not, and one "
    "who exists keeps their role.",
)  # fmt: skip
def users_add(name: str, password_stdin: bool, admin: bool | None) -> None:
    """Add a reviewer, or set the password of one (it is stored as an argon2 hash)."""
    from digits import reviewers

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        reviewers.add(redis_client(), name, password, admin)
    except reviewers.ReviewerError as problem:
        raise click.ClickException(str(problem)) from None
    role = " and draw layouts" if reviewers.is_admin(redis_client(), name) else ""
    click.echo(f"{name} may log in to the review station{role}")


@users.command("list")
def users_list() -> None:
    """Every reviewer's name; admins (who may draw layouts) are marked so."""
    from digits import reviewers

    redis = redis_client()
    admins = set(reviewers.admins(redis))
    for name in reviewers.names(redis):
        click.echo(f"{name}\tadmin" if name in admins else name)


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove a reviewer: they can no longer log in, and their sessions end. Their decisions are kept."""
    from digits import reviewers

    if not reviewers.remove(redis_client(), name):
        raise click.ClickException(f"no reviewer {name!r}; `digits users list` shows them")
    click.echo(f"{name} removed")


@click.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only rows processed on or after this day (UTC).")
@click.option("--job", "job_id", help="Only the rows of this job.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of to stdout.")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), help="Results folder [DIGITS_RESULTS].")
def export(since: dt.datetime | None, job_id: str | None, out: Path | None, results: Path | None) -> None:
    """The final results: every row, with a person's reading where one decided.

    The result CSVs' 14 columns, in their order, then machine_digits, reviewer
    and reviewed_at. A row a person read has status verified (or unreadable),
    and digits as the person read them; machine_digits keeps what the machine read.
    """
    use_settings(results=results)
    from digits.results import job_csv
    from digits.reviews import export_rows, write_export
    from digits.settings import get_settings

    folder = get_settings().results
    if job_id:
        try:
            if not job_csv(folder, job_id).exists():
                raise click.ClickException(f"no rows of job {job_id} in {folder}/jobs; is DIGITS_RESULTS right?")
        except ValueError as problem:
            raise click.ClickException(str(problem)) from None
    count = write_export(export_rows(folder, since.date() if since else None, job_id), out)
    click.echo(f"{count} row(s)" + (f" written to {out}" if out else ""), err=True)
