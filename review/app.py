"""The review station's web application: pages for people, and the JSON API they (and keying tools) use.

Every route but the login and the static files answers 401 without a session,
and the Layouts page and its API (``review.designer``) 403 to all but admins;
sessions live in Redis (``starsessions``), so that a logout, a new password or
a removed reviewer ends them on every station. Every request that changes
something needs the session's CSRF token in the ``X-CSRF-Token`` header, and
sends JSON. Bodies are small and shallow, or refused before they are read
(only a form's sample, uploaded to draw a layout on, may be as large as an
inbox file).
Items are named by opaque ids, never by a file, and their pictures are served
only from the results folder, never cached. Every answer, errors included, is
JSON or a page, with ``HEADERS``.
"""

from __future__ import annotations

import fnmatch
import logging
import secrets
from pathlib import Path

import anyio
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starsessions import SessionMiddleware, load_session, regenerate_session_id
from starsessions.session import get_session_handler
from starsessions.stores.redis import RedisStore
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from digits import reviewers
from digits.contracts import AUDIT_KIND, REVIEW_KIND, ReviewItem
from digits.reviews import Conflict, ReviewQueue, UnknownItem
from digits.settings import Settings
from review.bodies import read_json
from review.designer import NOT_ADMIN, Designer, admin_only
from review.throttle import LoginThrottle

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

SESSION_KEYS = "digits:review:session:"
"""Prefix of the Redis keys that hold the sessions."""

SESSION_HOURS = 12
"""How long a login lasts."""

MAX_BODY_BYTES = 64 * 1024
"""Largest request body read; a larger one is refused (413) before it is read whole."""

UPLOADS = "/api/samples"
"""The one route whose bodies may be as large as an inbox file (``DIGITS_MAX_FILE_MB``): a form's sample."""

PASSWORD_CHECKS = 1
"""Password checks (argon2, deliberately slow: a fifth of a second of CPU) run at once: a flood of
logins waits among itself, never in the threads that serve reviewers, and leaves them a core."""

GROUP_SIZE = 24
"""Single digits the group view shows at once."""

GROUP_LOOKAHEAD = 400
"""Waiting items looked through to find single digits read alike."""

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every answer: nothing from elsewhere runs in a page, nothing is framed, nothing is kept by a cache."""


def create_app(settings: Settings) -> ASGIApp:
    """The station for the service ``settings`` describe (its Redis and results folder)."""
    redis = Redis.from_url(settings.redis_url)
    shared = AsyncRedis.from_url(settings.redis_url)
    sessions = _Sessions(connection=shared, prefix=SESSION_KEYS)
    queue = ReviewQueue(redis, settings.results, settings.review_lease_seconds)
    written = queue.write_unwritten()
    if written:
        log.warning("appended %d decision line(s) a station had taken but not written (it stopped meanwhile)", written)
    station = Station(redis, queue, settings, sessions, LoginThrottle(shared))
    designer = Designer(redis, settings)
    routes = [
        Route("/", station.page("station.html"), methods=["GET"]),
        Route("/group", station.page("group.html"), methods=["GET"]),
        Route("/stats", station.page("stats.html"), methods=["GET"]),
        Route("/layouts", station.page("layouts.html", admin=True), methods=["GET"]),
        Route("/api/layouts", station.admin(designer.list), methods=["GET"]),
        Route("/api/layouts/{name}", station.admin(designer.save), methods=["POST"]),
        Route("/api/layouts/{name}/open", station.admin(designer.open), methods=["POST"]),
        Route(UPLOADS, station.admin(designer.upload), methods=["POST"]),
        Route(UPLOADS + "/{sample}", station.admin(designer.image), methods=["GET"]),
        Route(UPLOADS + "/{sample}/try", station.admin(designer.attempt), methods=["POST"]),
        Route("/api/login", station.login, methods=["POST"]),
        Route("/api/logout", station.logout, methods=["POST"]),
        Route("/api/next", station.next_item, methods=["GET"]),
        Route("/api/items/{item}", station.decide, methods=["POST"]),
        Route("/api/items/{item}/skip", station.skip, methods=["POST"]),
        Route("/api/items/{item}/undo", station.undo, methods=["POST"]),
        Route("/api/items/{item}/image", station.image("crop"), methods=["GET"]),
        Route("/api/items/{item}/page", station.image("page_image"), methods=["GET"]),
        Route("/api/group", station.group, methods=["GET"]),
        Route("/api/group", station.decide_group, methods=["POST"]),
        Route("/api/stats", station.stats, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_Guard, hosts=_names(settings.review_hosts), larger={UPLOADS: settings.max_file_bytes}),
        Middleware(
            SessionMiddleware,
            store=sessions,
            cookie_name="digits_review",
            lifetime=SESSION_HOURS * 3600,
            cookie_same_site="strict",
            cookie_https_only=settings.review_https,
        ),
    ]
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _as_json, Exception: _crashed}
    )
    if settings.review_trusted_proxies:
        # Only the proxies the user names may say who the client is (the login throttle counts by it).
        return ProxyHeadersMiddleware(app, trusted_hosts=_names(settings.review_trusted_proxies))
    return app


class Station:
    """The handlers, over one review queue."""

    def __init__(
        self, redis: Redis, queue: ReviewQueue, settings: Settings, sessions: _Sessions, throttle: LoginThrottle
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.results = Path(settings.results).resolve()
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.sessions = sessions
        self.throttle = throttle
        self.password_checks = anyio.CapacityLimiter(PASSWORD_CHECKS)

    def page(self, template: str, admin: bool = False):
        async def show(request: Request) -> Response:
            user = await self._user(request)
            if user is None:
                return self.templates.TemplateResponse(request, "login.html", {}, status_code=401)
            is_admin = await run_in_threadpool(reviewers.is_admin, self.redis, user)
            if admin and not is_admin:
                raise HTTPException(403, NOT_ADMIN)
            shown = {"user": user, "csrf": request.session["csrf"], "admin": is_admin}
            return self.templates.TemplateResponse(request, template, shown)

        return show

    def admin(self, handler):
        """``handler`` for admins only: 401 without a session, 403 for others, and a CSRF token for any change."""

        async def guarded(request: Request) -> Response:
            user = await (self._reviewer(request) if request.method == "GET" else self._changing(request))
            await admin_only(self.redis, user)
            return await handler(request)

        return guarded

    async def login(self, request: Request) -> Response:
        body = await read_json(request)
        name, password = str(body.get("username", "")), str(body.get("password", ""))
        address = request.client.host if request.client else ""
        wait = await self.throttle.refusal(name, address)
        if wait is not None:
            return JSONResponse(
                {"error": f"too many failed logins: try again in {wait} s, or ask an administrator"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        accepted = await anyio.to_thread.run_sync(
            reviewers.check, self.redis, name, password, limiter=self.password_checks
        )
        if not accepted:
            await self.throttle.failed(address)
            return JSONResponse({"error": "wrong name or password"}, status_code=401)
        await self.throttle.succeeded(name)
        await load_session(request)
        await get_session_handler(request).destroy()  # a session from before the login never carries over
        await self.sessions.start(regenerate_session_id(request))
        epoch = await run_in_threadpool(reviewers.epoch, self.redis, name)
        request.session.clear()
        request.session.update(user=name, csrf=secrets.token_urlsafe(32), epoch=epoch)
        return JSONResponse({"csrf": request.session["csrf"], "user": name})

    async def logout(self, request: Request) -> Response:
        await self._changing(request)
        request.session.clear()  # the session is removed from Redis as the answer goes
        return JSONResponse({})

    async def next_item(self, request: Request) -> Response:
        user = await self._reviewer(request)
        kind = request.query_params.get("kind")
        if kind not in (None, REVIEW_KIND, AUDIT_KIND):
            raise HTTPException(400, "kind is review or audit")
        item = await run_in_threadpool(self.queue.next, user, kind)
        if item is None:
            return Response(status_code=204)
        left = await run_in_threadpool(self.queue.left)
        return JSONResponse(_shown(item) | {"left": left})

    async def decide(self, request: Request) -> Response:
        user = await self._changing(request)
        item = request.path_params["item"]
        body = await read_json(request)
        if body.get("unreadable") is True:
            digits = None
        else:
            digits = str(body.get("digits", ""))
            if not digits.isascii() or not digits.isdigit():
                raise HTTPException(400, 'digits are 0-9 only; send {"unreadable": true} for none')
        decision = await self._on_item(self.queue.decide, item, user, digits)
        return JSONResponse({"id": item, "verdict": decision.verdict, "digits": decision.digits})

    async def skip(self, request: Request) -> Response:
        user = await self._changing(request)
        await self._on_item(self.queue.skip, request.path_params["item"], user)
        return JSONResponse({})

    async def undo(self, request: Request) -> Response:
        user = await self._changing(request)
        item = await self._on_item(self.queue.undo, request.path_params["item"], user)
        left = await run_in_threadpool(self.queue.left)
        return JSONResponse(_shown(item) | {"left": left})

    def image(self, which: str):
        async def send(request: Request) -> Response:
            await self._reviewer(request)
            try:
                item = await run_in_threadpool(self.queue.item, request.path_params["item"])
            except UnknownItem:
                raise HTTPException(404, "no such item") from None
            path = (self.results / getattr(item, which)).resolve()
            # The path comes from Redis, not from the request; still, only PNGs of the results folder are sent.
            if not path.is_relative_to(self.results) or path.suffix != ".png" or not path.is_file():
                raise HTTPException(404, "the item's picture is missing")
            return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

        return send

    async def group(self, request: Request) -> Response:
        """Waiting single digits that the machine read as the same digit, leased to the reviewer together."""
        user = await self._reviewer(request)
        items = await run_in_threadpool(self.queue.lease_group, user, GROUP_SIZE, GROUP_LOOKAHEAD)
        return JSONResponse({"digit": items[0].digits if items else None, "items": [_shown(i) for i in items]})

    async def decide_group(self, request: Request) -> Response:
        """Confirm the group's items the reviewer left alone; give the ones marked wrong back, to be keyed alone."""
        user = await self._changing(request)
        body = await read_json(request)
        confirm, wrong = _ids(body, "confirm"), _ids(body, "wrong")
        if set(confirm) & set(wrong):
            raise HTTPException(400, "an item is either confirmed or wrong, not both")
        await self._on_item(self.queue.decide_group, user, confirm, wrong)
        return JSONResponse({"confirmed": len(confirm), "returned": len(wrong)})

    async def stats(self, request: Request) -> Response:
        await self._reviewer(request)
        return JSONResponse(await run_in_threadpool(self.queue.stats))

    async def _user(self, request: Request) -> str | None:
        """The reviewer whose session the request carries, if it stands (they exist, with the same password)."""
        await load_session(request)
        user, epoch = request.session.get("user"), request.session.get("epoch")
        if user and epoch and epoch == await run_in_threadpool(reviewers.epoch, self.redis, user):
            return user
        return None

    async def _reviewer(self, request: Request) -> str:
        user = await self._user(request)
        if user is None:
            raise HTTPException(401, "log in first: POST /api/login")
        return user

    async def _changing(self, request: Request) -> str:
        """The reviewer of a request that changes something, once its CSRF token is checked."""
        user = await self._reviewer(request)
        token = request.headers.get("x-csrf-token", "")
        if not secrets.compare_digest(token, request.session.get("csrf", "")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token: send the token /api/login returned")
        return user

    async def _on_item(self, action, *args: object):
        try:
            return await run_in_threadpool(action, *args)
        except UnknownItem:
            raise HTTPException(404, "no such item") from None
        except Conflict as conflict:
            raise HTTPException(409, str(conflict)) from None


def _shown(item: ReviewItem) -> dict:
    """What a reviewer is sent of an item: an audit item comes blind, without the machine's reading."""
    blind = item.kind == AUDIT_KIND
    return {
        "id": item.id,
        "kind": item.kind,
        "source": item.source,
        "page": item.page,
        "field": item.field,
        "digits": None if blind else item.digits,
        "confidences": None if blind else item.confidences,
        "reason": None if blind else item.reason,
        "image": f"/api/items/{item.id}/image",
        "page_image": f"/api/items/{item.id}/page",
    }


class _Sessions(RedisStore):
    """starsessions' Redis store, where only a login starts a session (``start``).

    Every answer writes its session back; a request still in flight when its
    session ends (a logout) must not bring it back, so a write only replaces a
    session that still exists.
    """

    async def start(self, session_id: str) -> None:
        await self._connection.set(self.prefix(session_id), b"{}", ex=SESSION_HOURS * 3600, nx=True)

    async def write(self, session_id: str, data: bytes, lifetime: int, ttl: int) -> str:
        await self._connection.set(self.prefix(session_id), data, ex=max(1, ttl), xx=True)
        return session_id


def _ids(body: dict, key: str) -> list[str]:
    """The item ids a JSON body lists under ``key`` (none if absent); 400 for anything but a list of ids."""
    ids = body.get(key, [])
    if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise HTTPException(400, f'"{key}" is a list of item ids')
    if len(ids) > GROUP_SIZE:
        raise HTTPException(400, f"a group holds at most {GROUP_SIZE} items")
    return ids


def _names(listed: str) -> list[str]:
    """A comma-separated setting as a list, blanks left out."""
    return [name.strip() for name in listed.split(",") if name.strip()]


async def _as_json(request: Request, problem: HTTPException) -> Response:
    """An error as JSON, ``{"error": what to do}``, with its status."""
    return JSONResponse({"error": problem.detail}, status_code=problem.status_code, headers=problem.headers)


async def _crashed(request: Request, problem: Exception) -> Response:
    """A failure of the station itself, as JSON (logged with its traceback by the server)."""
    return JSONResponse(
        {"error": "the station failed to answer: its log says why; try again, or tell its administrator"},
        status_code=500,
        headers=HEADERS,
    )


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        size = f"{limit // 1024} KB" if limit < 1024 * 1024 else f"{limit / 1024 / 1024:g} MB"
        super().__init__(413, f"the request body is larger than {size}")


class _Guard:
    """Before anything else: refuses Host names not allowed, and bodies over ``MAX_BODY_BYTES`` unread (or
    over their own limit, for the paths ``larger`` names); adds ``HEADERS`` to every answer."""

    def __init__(self, app: ASGIApp, hosts: list[str], larger: dict[str, int]) -> None:
        self.app = app
        self.hosts = hosts
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] += [
                    (name.lower().encode(), value.encode())
                    for name, value in HEADERS.items()
                    if name.lower().encode() not in present
                ]
            await send(message)

        headers = Headers(scope=scope)
        host = headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
        if self.hosts and not any(fnmatch.fnmatchcase(host, allowed.lower()) for allowed in self.hosts):
            refusal = {"error": f"this station does not answer to the host name {host!r} (DIGITS_REVIEW_HOSTS)"}
            await JSONResponse(refusal, status_code=400)(scope, receive, with_headers)
            return
        limit = self.larger.get(scope["path"], MAX_BODY_BYTES)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            problem = _BodyTooLarge(limit)
            await JSONResponse({"error": problem.detail}, status_code=413)(scope, receive, with_headers)
            return
        received = 0

        async def counted() -> Message:
            # A body sent without its length (chunked) is counted as it comes.
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge(limit)
            return message

        await self.app(scope, counted, with_headers)
