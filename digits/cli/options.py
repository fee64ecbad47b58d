"""What every command does first: take its options as settings, and set up its logging."""

from __future__ import annotations

import logging
import os


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
