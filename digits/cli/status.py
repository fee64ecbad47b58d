"""What ``digits status`` reports: queue depth, workers alive, throughput, files waiting, jobs pending, Redis memory."""

from __future__ import annotations

import os
from pathlib import Path

from redis import Redis

from digits.celery_app import PAGES_QUEUE, QUEUE, app
from digits.settings import get_settings, redacted
from digits.throughput import WRITTEN_TTL_SECONDS, files_written
from ingest.client import JOBS_KEY, Job

RECENT_JOBS = 50
"""How many of the newest jobs are checked for pending files."""

PRIORITY_SEPARATOR = "\x06\x16"
"""How kombu's Redis transport names the extra lists of a queue's priority levels."""

RATE_WINDOW_SECONDS = 10
"""Throughput is files written over this many whole seconds, divided by them."""


def count_files(folder: Path) -> int:
    """Files below ``folder`` (0 if it does not exist)."""
    return sum(len(files) for _, _, files in os.walk(folder))


def collect_status() -> dict[str, object]:
    """A snapshot of the service, as ``{label: value}``."""
    settings = get_settings()
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    workers = app.control.ping(timeout=1.0)
    recent = [job.decode() for job in redis.zrevrange(JOBS_KEY, 0, RECENT_JOBS - 1)]
    pending_jobs = 0
    for job_id in recent:
        try:
            pending_jobs += not Job.load(job_id).status().finished
        except KeyError:
            redis.zrem(JOBS_KEY, job_id)  # expired
    archive = settings.archive_dir
    return {
        "redis": redacted(settings.redis_url),
        "queued tasks": _queued(redis, QUEUE),
        "queued pages": _queued(redis, PAGES_QUEUE),
        "tasks in progress": redis.hlen("unacked"),
        "workers alive": len(workers),
        f"files/s ({RATE_WINDOW_SECONDS} s)": round(files_written(redis, RATE_WINDOW_SECONDS) / RATE_WINDOW_SECONDS, 1),
        "files in last hour": files_written(redis, WRITTEN_TTL_SECONDS - 1),
        "inbox files": count_files(settings.inbox),
        "processing files": count_files(archive / "processing"),
        "failed files": count_files(archive / "failed") // 2,  # each beside its .error.txt
        "jobs pending": pending_jobs,
        "redis memory": redis_memory(redis.info("memory")),
    }


def _queued(redis: Redis, queue: str) -> int:
    """Messages waiting in ``queue``, over all its priority levels."""
    return sum(redis.llen(key) for key in [queue, *(f"{queue}{PRIORITY_SEPARATOR}{p}" for p in (3, 6, 9))])


def redis_memory(info: dict) -> str:
    """Redis's memory in a line, from ``INFO memory``: used, its limit, and what happens when full.

    An evicting policy is called out: evicted marks would let a file's rows be written twice.
    """
    limit = f"of {info['maxmemory_human']}" if int(info.get("maxmemory", 0)) else "(no maxmemory set)"
    policy = info.get("maxmemory_policy", "?")
    said = f"{info['used_memory_human']} used {limit}, peak {info['used_memory_peak_human']}, {policy}"
    if policy != "noeviction":
        said += " — WARNING: it evicts keys when full; set maxmemory-policy noeviction"
    return said
