"""The Layouts page's API: a form's sample uploaded, fields drawn on it, tried by the workers, saved as a layout.

Only admins (``digits users add NAME --admin``) reach it; others get 403. A
sample is sent to the workers as it came (``digits.read_sample``), which check
it as they check an inbox file and send back its first page as a PNG; the
station keeps that page in Redis for ``SAMPLE_HOURS`` under an opaque id, and
never decodes an image or loads TensorFlow itself. Requests name samples by
that id and layouts by their name (letters, digits, '-' and '_'), never a path.
Saving writes ``<layouts>/<name>.toml`` beside its reference image, keeps the
layout it replaces as a version (``digits.layouts.save_layout``), and makes the
inbox folder ``<inbox>/<name>/``, which the ingester reads with it at once.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from urllib.parse import unquote

from redis import Redis
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from digits import reviewers
from digits.capacity import RedisFull, check_room
from digits.celery_app import NoWorker, make_app, read_sample
from digits.contracts import SampleResult, SampleTask
from digits.layouts import LayoutError, drawn_fields, entry_of, layout_names, layout_path, load_layout, save_layout
from digits.layouts import versions as versions_of
from digits.settings import Settings
from review.bodies import read_json

SAMPLE_KEY = "digits:designer:sample:{sample}"
"""Redis hash of an uploaded sample: its first page as a PNG (``png``), ``width`` and ``height``."""

SAMPLE_HOURS = 4
"""How long an uploaded sample is kept to draw on (each use keeps it that much longer)."""

WORKER_SECONDS = 90
"""How long the station waits for a worker to decode or read a sample."""

MAX_DESCRIPTION = 200
"""Longest description a layout drawn here may have."""

NOT_ADMIN = "only admins may draw layouts: an admin can make you one (digits users add NAME --admin)"

_SAMPLE_ID = re.compile(r"[0-9a-f]{32}")


class Designer:
    """The handlers of the Layouts page's API, over the service's Redis, workers and folders."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.celery = make_app(settings.redis_url)
        self.layouts = Path(settings.layouts)
        self.inbox = Path(settings.inbox)

    async def list(self, request: Request) -> Response:
        """Every layout: name, description, fields, whether it has a reference image, its kept versions."""
        return JSONResponse({"layouts": await run_in_threadpool(self._listed)})

    async def upload(self, request: Request) -> Response:
        """A sample (the body, as the file's bytes) decoded by a worker and kept to draw on: its id and size."""
        data = await request.body()
        if not data:
            raise HTTPException(400, "send the sample's bytes as the body (a PNG, JPEG, TIFF or PDF)")
        name = unquote(request.headers.get("x-sample-name", "sample"))[:100]
        return JSONResponse(await self._keep(data, name))

    async def open(self, request: Request) -> Response:
        """A saved layout to draw on again: its description and fields, and its reference image as a new sample."""
        name = _name(request)
        try:
            layout = await run_in_threadpool(load_layout, name, self.layouts)
        except LayoutError as problem:
            raise HTTPException(404, str(problem)) from None
        if layout.reference is None:
            raise HTTPException(409, f"layout {name} has no reference image: upload a sample of the form to draw on")
        kept = await self._keep(await run_in_threadpool(layout.reference.read_bytes), layout.reference.name)
        fields = [entry_of(field) for field in layout.fields]
        return JSONResponse(kept | {"name": name, "description": layout.description, "fields": fields})

    async def image(self, request: Request) -> Response:
        """The sample's first page, as the workers decoded it (a PNG)."""
        png = await run_in_threadpool(self.redis.hget, self._key(request), "png")
        if png is None:
            raise HTTPException(404, f"no such sample (samples are kept {SAMPLE_HOURS} h): upload it again")
        return Response(png, media_type="image/png")

    async def attempt(self, request: Request) -> Response:
        """The drawn fields as the workers read them on the sample: a row per field, as the service writes it."""
        body = await read_json(request)
        png = await run_in_threadpool(self._touched, self._key(request))
        fields = _drawn(body.get("fields"))
        task = SampleTask.carrying(png, source="sample", fields=[entry_of(field) for field in fields])
        result = await self._ask(task)
        rows = [
            {key: getattr(row, key) for key in ("field", "digits", "confidence", "status", "error", "boxes")}
            for row in result.rows
        ]
        return JSONResponse({"rows": rows, "width": result.width, "height": result.height})

    async def save(self, request: Request) -> Response:
        """Save the drawn fields as the layout ``name``, the sample as its reference; its version and inbox folder."""
        name = _name(request)
        body = await read_json(request)
        sample = body.get("sample")
        if not isinstance(sample, str) or not _SAMPLE_ID.fullmatch(sample):
            raise HTTPException(400, '"sample" is the id /api/samples gave')
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise HTTPException(400, f'"description" is text of at most {MAX_DESCRIPTION} characters')
        fields = _drawn(body.get("fields"))
        png = await run_in_threadpool(self._touched, SAMPLE_KEY.format(sample=sample))
        inbox = self.inbox / name
        try:
            version = await run_in_threadpool(save_layout, name, self.layouts, fields, description, png)
            await run_in_threadpool(lambda: inbox.mkdir(parents=True, exist_ok=True))
        except OSError as problem:
            raise HTTPException(
                500,
                f"cannot write the layout or its inbox folder ({problem}): point DIGITS_LAYOUTS at a folder the "
                "station may write and the workers and the ingester read, and make sure the inbox is writable",
            ) from None
        return JSONResponse({"name": name, "version": version, "inbox": f"{self.inbox.name}/{name}/"})

    async def _keep(self, data: bytes, source: str) -> dict:
        """Have a worker decode ``data``; keep its first page under a new sample id; the id and the page's size."""
        try:
            await run_in_threadpool(check_room, self.redis)
        except RedisFull as full:
            raise HTTPException(507, str(full)) from None
        result = await self._ask(SampleTask.carrying(data, source=source))
        sample = secrets.token_hex(16)
        key = SAMPLE_KEY.format(sample=sample)
        page = base64.b64decode(result.page)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping={"png": page, "width": result.width, "height": result.height})
            pipe.expire(key, SAMPLE_HOURS * 3600)
            await run_in_threadpool(pipe.execute)
        return {"sample": sample, "width": result.width, "height": result.height, "image": f"/api/samples/{sample}"}

    async def _ask(self, task: SampleTask) -> SampleResult:
        """The workers' answer to ``task``; 400 with their reason when the sample or fields cannot be read."""
        try:
            result = await run_in_threadpool(read_sample, self.celery, task, WORKER_SECONDS)
        except NoWorker as problem:
            raise HTTPException(503, str(problem)) from None
        except RuntimeError as problem:
            raise HTTPException(502, str(problem)) from None
        if result.error:
            raise HTTPException(400, result.error)
        return result

    def _key(self, request: Request) -> str:
        sample = request.path_params["sample"]
        if not _SAMPLE_ID.fullmatch(sample):
            raise HTTPException(404, "no such sample")
        return SAMPLE_KEY.format(sample=sample)

    def _touched(self, key: str) -> bytes:
        """A sample's page, kept ``SAMPLE_HOURS`` longer for being used; 404 if it is gone."""
        png = self.redis.hget(key, "png")
        if png is None:
            raise HTTPException(404, f"no such sample (samples are kept {SAMPLE_HOURS} h): upload it again")
        self.redis.expire(key, SAMPLE_HOURS * 3600)
        return png

    def _listed(self) -> list[dict]:
        listed = []
        for name in layout_names(self.layouts):
            try:
                layout = load_layout(name, self.layouts)
            except LayoutError as problem:
                listed.append({"name": name, "error": str(problem)})
                continue
            listed.append({
                "name": name, "description": layout.description, "fields": [f.name for f in layout.fields],
                "reference": layout.reference is not None, "versions": versions_of(name, self.layouts),
            })  # fmt: skip
        return listed


async def admin_only(redis: Redis, user: str) -> None:
    """403 unless ``user`` may draw layouts."""
    if not await run_in_threadpool(reviewers.is_admin, redis, user):
        raise HTTPException(403, NOT_ADMIN)


def _name(request: Request) -> str:
    name = request.path_params["name"]
    try:
        layout_path(name, Path("."))
    except LayoutError as problem:
        raise HTTPException(400, str(problem)) from None
    return name


def _drawn(entries: object) -> tuple:
    try:
        return drawn_fields(entries)
    except LayoutError as problem:
        raise HTTPException(400, str(problem)) from None
