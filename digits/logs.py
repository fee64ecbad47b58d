"""Log lines for people (``text``) or for a log collector (``json``, one object per line): ``DIGITS_LOG_FORMAT``."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Layout of a log line in ``text``."""

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(processName)s %(process)d %(message)s"
"""Fields of each JSON log line (an exception adds ``exc_info``)."""


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``DIGITS_LOG_FORMAT`` (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def configure(level: int, log_format: str) -> None:
    """Log to stderr at ``level`` in ``log_format`` (for ``digits up``, ``ingest``, ``submit``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def reformat(logger: logging.Logger, log_format: str) -> None:
    """Give every handler Celery set on ``logger`` our format (Celery's own is text)."""
    if log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(formatter(log_format))
