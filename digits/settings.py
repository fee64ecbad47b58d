"""Settings, read from ``DIGITS_*`` environment variables (and the CLI flags that set them)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from layouts import FOLDER as LAYOUTS_FOLDER
from model_store import STORE

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
"""Where the broker and result store live unless DIGITS_REDIS_URL says otherwise."""

MEGABYTE = 1024 * 1024

DAY = 24 * 3600

PROMISED_ERROR = 0.005
"""The error rate among ``ok`` rows the service promises, at most: what the operating curve and the
promotion gate measure read rates at (``--target-error``)."""


class Settings(BaseSettings):
    """Everything a worker, the ingester or a client needs to know, in one place."""

    model_config = SettingsConfigDict(env_prefix="DIGITS_", use_attribute_docstrings=True)

    redis_url: str = DEFAULT_REDIS_URL
    """Redis used as Celery's broker and result backend."""

    allow_open_redis: bool = False
    """Accept a Redis without a password on another machine (only on a network you trust)."""

    inbox: Path = Path("inbox")
    """Folder watched for new scans (sub-folders included)."""

    results: Path = Path("results")
    """Folder the CSV results are written to (``inbox/`` and ``jobs/`` below it)."""

    archive: Path | None = None
    """Folder holding ``processing/``, ``done/`` and ``failed/``; by default the inbox's parent."""

    model: str = "digits-cnn@10,digits-cnn@11"
    """Digit model used by workers: ``name`` (newest version), ``name@version`` or a ``.keras``
    path; several, comma-separated, are an ensemble whose probabilities are averaged."""

    string_model: str = "digits-crnn@13,digits-crnn@15"
    """Model that reads whole lines (touching digits, separators); several, comma-separated,
    vote on each other's readings; empty for none."""

    model_store: Path = STORE
    """Folder of trained models."""

    layouts: Path = LAYOUTS_FOLDER
    """Folder of layouts (``<name>.toml``); an inbox sub-folder named like a layout uses it."""

    split_above_pages: int = Field(2, ge=1)
    """Documents with more pages than this are read one task per page, each rendering only its own
    page, by the page workers (``digits worker --pages``); shorter ones are read whole, in batches."""

    max_pages: int = Field(300, ge=1)
    """Documents (PDF pages, TIFF frames) with more pages than this get one ``error`` row instead of
    being read: a small file can hold thousands of pages."""

    max_process_mb: int = Field(2048, ge=0)
    """A worker pool process whose memory grew past this many MB is replaced once its task is done
    (each holds the models, about 1 GB); 0 for no limit."""

    result_days: float = Field(7, gt=0)
    """How long Redis keeps each file's result (what ``Job.rows()``, ``digits submit --wait`` and the
    ingester read) and each job's list of files."""

    mark_days: float = Field(30, gt=0)
    """How long Redis remembers each file it read: that its rows were written (so a message delivered
    again does not write them twice) and its content (so the same scan dropped again is a ``duplicate``)."""

    annotate: bool = False
    """Draw a review picture for every inbox row, not only for rows sent to ``review``."""

    review_threshold: float = Field(0.95, ge=0, le=1)
    """Rows whose ``confidence`` is below this get status ``review``. The default keeps the error
    among ``ok`` rows at most 0.5% on the held-out cheque amounts, where 0.9 let one in a hundred through
    (docs/recognition.md, "Accuracy on held-out files")."""

    max_file_mb: float = Field(25, gt=0)
    """Files larger than this are refused with an error row (they travel inside the task)."""

    stable_seconds: float = Field(0.5, ge=0)
    """How long a file's size and mtime must stay unchanged before it is taken."""

    rescan_seconds: float = Field(5.0, gt=0)
    """Interval of the full inbox rescan that catches files whose events were missed."""

    task_time_limit: int = Field(120, gt=0)
    """Seconds after which a stuck recognition task is killed; its file fails with that reason."""

    redeliver_seconds: int = Field(300, gt=0)
    """Seconds after which a task taken by a worker node that died as a whole (machine lost,
    kill -9 of the node) goes back to the queue for another node. Keep it above twice
    ``task_time_limit``: a task still running when it expires would be run twice (its
    rows are still written once), and a batch may wait behind one other in its process."""

    batch_size: int = Field(64, ge=1)
    """Most files a worker process reads together, every digit of them in one call per model."""

    batch_wait: float = Field(0.05, gt=0)
    """Longest a file waits in a worker, in seconds, for others to be read with it."""

    chunk_files: int = Field(16, ge=1)
    """Most files the ingester and ``submit`` put in one message when they arrive together. A
    worker pays for fetching and acknowledging a message once, however many files it carries;
    but each holds two batches' worth of messages per pool process, so larger chunks let one
    node hold more of a burst while another stands idle."""

    metrics_port: int = Field(9808, ge=0, le=65535)
    """Port on which each worker node serves Prometheus metrics at ``/metrics``; 0 for none. The page
    worker that ``digits up`` starts serves them on the next port."""

    metrics_host: str = "127.0.0.1"
    """Address the metrics listen on: this machine only, unless you choose otherwise (``0.0.0.0`` in a
    container, for Prometheus on the compose network)."""

    audit_share: float = Field(0.01, ge=0, le=1)
    """Share of ``ok`` rows that also go before a person, blind, to measure the error rate among them."""

    review_host: str = "127.0.0.1"
    """Address the review station listens on: this machine only, unless you choose otherwise
    (then put it behind a reverse proxy that speaks TLS)."""

    review_port: int = Field(8765, ge=0, le=65535)
    """Port of the review station (``digits up``, ``digits review``); 0 for none."""

    review_https: bool = False
    """The station is reached over HTTPS (behind a reverse proxy): its session cookie is then sent only over HTTPS."""

    review_trusted_proxies: str = ""
    """Addresses (or networks, ``10.0.0.0/8``) of the reverse proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` the station believes, comma-separated; none by default, so that no client
    can pick the address its failed logins are counted under."""

    review_hosts: str = ""
    """Host names the station answers to, comma-separated (``review.example.com``, ``*.example.com``);
    any by default. Set it when the station is reached through a name, against DNS rebinding."""

    review_lease_seconds: int = Field(300, ge=1)
    """How long a reviewer holds an item before it returns to the queue (a closed tab)."""

    log_format: Literal["text", "json"] = "text"
    """``json``: logs as one JSON object per line, for a log collector; ``text``: for people."""

    tf_threads: int | None = None
    """TensorFlow threads per worker process; by default cores divided by processes."""

    @model_validator(mode="after")
    def _redis_off_this_machine_needs_a_password(self) -> Settings:
        # Scans of cheques travel through Redis, and whoever can write to it queues work.
        parsed = urlparse(self.redis_url)
        host = parsed.hostname
        if host and not parsed.password and not _is_loopback(host) and not self.allow_open_redis:
            raise ValueError(
                f"DIGITS_REDIS_URL reaches Redis at {host} without a password, so anyone on that network could "
                f"read the scans and queue work. Give Redis a password (requirepass) and put it in the URL, "
                f"redis://:PASSWORD@{host}:{parsed.port or 6379}/0, or set DIGITS_ALLOW_OPEN_REDIS=true "
                "on a network you trust."
            )
        return self

    @property
    def archive_dir(self) -> Path:
        return self.archive if self.archive is not None else self.inbox.resolve().parent

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MEGABYTE)

    @property
    def result_seconds(self) -> int:
        return round(self.result_days * DAY)

    @property
    def mark_seconds(self) -> int:
        return round(self.mark_days * DAY)


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    parsed = urlparse(url)
    if not parsed.password:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
