"""What every command does first: take its options as settings, and set up its logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from digits.store import ModelRef

DATA_ENV = "DIGITS_DATA"
"""Folder with mnist.npz (and usps-train.npz, ardis4-train.npz) for ``digits train``."""

DEFAULT_DATA = Path("../shared/data")
"""Where the training data lies beside a checkout of this repository."""

data_option = click.option(
    "--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), envvar=DATA_ENV, default=DEFAULT_DATA,
    show_default=True, help="Folder of the training data sets (mnist.npz, ...) [DIGITS_DATA].",
)  # fmt: skip
"""The ``--data`` option of the commands that train or measure models."""


def use_settings(**options: object) -> None:
    """Make CLI options the settings of this process and its children (as ``DIGITS_*`` variables)."""
    from digits.settings import get_settings

    for name, value in options.items():
        if value is not None:
            os.environ[f"DIGITS_{name.upper()}"] = str(value)
    get_settings.cache_clear()


def configure_logging(verbose: bool) -> None:
    """Log to stderr in the configured format: debug lines too with ``verbose``."""
    from digits.logs import configure
    from digits.settings import get_settings

    configure(logging.DEBUG if verbose else logging.INFO, get_settings().log_format)


def redis_client():
    """A client of the service's Redis that gives up connecting after 2 s (commands say when it is away)."""
    from redis import Redis

    from digits.settings import get_settings

    return Redis.from_url(get_settings().redis_url, socket_connect_timeout=2)


def saved(ref: ModelRef) -> str:
    """The line that reports a newly trained version: where it is and how long it took (its metadata's time)."""
    minutes = ref.metadata().get("training_seconds", 0) / 60
    return f"saved {ref.label} to {ref.path} (trained in {minutes:.1f} min)"
